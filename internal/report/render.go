package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/readiness"
)

// Format is an output format of the report.
type Format string

// The formats.
const (
	HTML     Format = "html"
	Markdown Format = "md"
	JSON     Format = "json"
)

// Formats lists the formats in the order the CLI documents them.
var Formats = []Format{HTML, Markdown, JSON}

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("format %q: use html, md or json", s)
}

// FileName is the report's file name in the bundle.
func (f Format) FileName() string { return "report." + string(f) }

// Render writes the report in format f.
func (r *Report) Render(w io.Writer, f Format) error {
	switch f {
	case HTML:
		return htmlTemplate.Execute(w, r)
	case Markdown:
		_, err := io.WriteString(w, r.markdown())
		return err
	case JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return fmt.Errorf("format %q: use html, md or json", f)
}

//go:embed report.html.tmpl
var htmlText string

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"ts":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"refs":    refsText,
	"count":   func(s Section) int { return s.count() },
	"anchor":  anchor,
	"seqText": seqText,
}).Parse(htmlText))

// count is how many evidence items a section holds.
func (s Section) count() int {
	n := 0
	for _, c := range s.Controls {
		n += len(c.Evidence)
	}
	return n
}

func anchor(s Section) string {
	if s.Service == "" {
		return "steward"
	}
	return "svc-" + s.Service
}

func seqText(e readiness.Evidence) string {
	if e.AuditSeq == 0 {
		return "—"
	}
	return fmt.Sprint(e.AuditSeq)
}

// refsText renders framework references grouped by framework.
func refsText(refs []readiness.Ref) string {
	var parts []string
	var cur string
	for _, r := range refs {
		if r.Framework != cur {
			parts = append(parts, r.Framework+" "+r.Clause)
			cur = r.Framework
			continue
		}
		parts[len(parts)-1] += ", " + r.Clause
	}
	return strings.Join(parts, "; ")
}

// mdEscape makes text safe in a Markdown table cell.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;", "*", `\*`, "_", `\_`, "`", "'").Replace(s)
}

func (r *Report) markdown() string {
	var b bytes.Buffer
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
	fmt.Fprintf(&b, "# %s\n\n", r.Title)
	fmt.Fprintf(&b, "- Period: %s to %s (UTC)\n", ts(r.From), ts(r.To))
	if r.Service != "" {
		fmt.Fprintf(&b, "- Service: %s\n", mdEscape(r.Service))
	}
	fmt.Fprintf(&b, "- Generated: %s by %s\n", ts(r.GeneratedAt), mdEscape(r.GeneratedBy))
	fmt.Fprintf(&b, "- Evidence items: %d, %d recorded by an audit event (highest seq %d)\n", r.Coverage.Items, r.Coverage.Audited, r.Coverage.MaxSeq)
	b.WriteString("\n## Signed checkpoint\n\n")
	if r.Checkpoint != nil {
		fmt.Fprintf(&b, "Checkpoint %d of `%s` at size **%d** (events 1 to %d), head hash `%s`, signed %s. ", r.Checkpoint.ID, r.Checkpoint.Origin,
			r.Checkpoint.Size, r.Checkpoint.Size, r.Checkpoint.Hash, ts(r.Checkpoint.CreatedAt))
		if r.Coverage.Covered {
			b.WriteString("It covers every audit event this report cites.\n\n")
		} else {
			b.WriteString("\n\n")
		}
		b.WriteString("```\n" + r.Checkpoint.Note + "```\n\n")
	}
	if r.Coverage.Problem != "" {
		fmt.Fprintf(&b, "> **Not fully verifiable:** %s\n\n", r.Coverage.Problem)
	}
	b.WriteString("Verify with: `steward audit verify --file audit.jsonl --checkpoint checkpoint.txt --key audit.pub` (see VERIFY.md).\n\n")
	if r.ScorecardNote != "" {
		fmt.Fprintf(&b, "Scorecard: %s\n\n", r.ScorecardNote)
	} else if r.Scorecard != nil {
		fmt.Fprintf(&b, "Readiness scorecard as of %s, evaluated read-only from the evidence in the store: overall %.1f%%. Each control below shows its status and reason.\n\n",
			ts(r.Scorecard.EvaluatedAt), r.Scorecard.Score)
	}
	b.WriteString("## Contents\n\n")
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "- %s: %d item(s)\n", mdEscape(s.Title), s.count())
	}
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "\n## %s\n\n", mdEscape(s.Title))
		if s.Tier > 0 {
			fmt.Fprintf(&b, "Tier %d", s.Tier)
			if len(s.Owners) > 0 {
				fmt.Fprintf(&b, ", owners %s", mdEscape(strings.Join(s.Owners, ", ")))
			}
			b.WriteString(". ")
		}
		if s.Description != "" {
			b.WriteString(mdEscape(s.Description))
		}
		b.WriteString("\n")
		if s.Card != nil {
			fmt.Fprintf(&b, "\nReadiness score %.1f%%.\n", s.Card.Score)
		}
		for _, c := range s.Controls {
			fmt.Fprintf(&b, "\n### %d. %s\n\n", c.Control.Number, mdEscape(c.Control.Title))
			fmt.Fprintf(&b, "Maps to: %s\n\n", mdEscape(refsText(c.Control.Refs)))
			if c.Status != "" {
				fmt.Fprintf(&b, "Status: **%s**: %s\n\n", c.Status, mdEscape(c.Reason))
			}
			if c.Waiver != nil {
				fmt.Fprintf(&b, "Waiver: %s (owner %s, expires %s)\n\n", mdEscape(c.Waiver.Reason), mdEscape(c.Waiver.Owner), ts(c.Waiver.Expires))
			}
			for _, n := range c.Notes {
				fmt.Fprintf(&b, "- %s\n", mdEscape(n))
			}
			if len(c.Notes) > 0 {
				b.WriteString("\n")
			}
			if len(c.Evidence) == 0 {
				b.WriteString("No evidence in the period.\n")
				continue
			}
			b.WriteString("| When (UTC) | Kind | ID | Evidence | Actor | Audit seq | Audit hash |\n| --- | --- | --- | --- | --- | --- | --- |\n")
			for _, e := range c.Evidence {
				hash := ""
				if e.AuditHash != "" {
					hash = "`" + e.AuditHash + "`"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", ts(e.At), mdEscape(e.Kind), mdEscape(e.ID), mdEscape(e.Summary),
					mdEscape(e.Actor), seqText(e), hash)
			}
		}
	}
	return b.String()
}
