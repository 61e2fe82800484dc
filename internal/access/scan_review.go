package access

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// Report is the evidence for a periodic access review: every grant that
// was requested or live in the period and every standing-privilege scan
// run in it.
type Report struct {
	From        time.Time       `json:"from"`
	To          time.Time       `json:"to"`
	GeneratedAt time.Time       `json:"generated_at"`
	Summary     ReportSummary   `json:"summary"`
	Grants      []ReviewGrant   `json:"grants"`
	Scans       []ReviewScan    `json:"scans"`
	Open        []ReviewFinding `json:"open_findings"`
}

// ReportSummary counts what the report holds.
type ReportSummary struct {
	Grants            int `json:"grants"`
	BreakGlass        int `json:"break_glass"`
	Revoked           int `json:"revoked"`
	NotRevoked        int `json:"not_revoked"` // still active or revoking at the end of the period
	Scans             int `json:"scans"`
	ScansWithFindings int `json:"scans_with_findings"`
	ScanErrors        int `json:"scan_errors"`
	OpenFindings      int `json:"open_findings"`
}

// ReviewGrant is one grant: who, what, why, who approved, and its life.
type ReviewGrant struct {
	ID         int64           `json:"id"`
	ActionID   *int64          `json:"action_id,omitempty"`
	Service    string          `json:"service"`
	Database   string          `json:"database"`
	Profile    string          `json:"profile"`
	Role       string          `json:"role"`
	Requester  string          `json:"requester"`
	Reason     string          `json:"reason"`
	BreakGlass bool            `json:"break_glass"`
	Approvers  []string        `json:"approvers"`
	Rejecters  []string        `json:"rejecters,omitempty"`
	State      string          `json:"state"`
	Requested  time.Time       `json:"requested"`
	Issued     *time.Time      `json:"issued,omitempty"`
	Expires    time.Time       `json:"expires"`
	Revoked    *time.Time      `json:"revoked,omitempty"`
	LastError  string          `json:"last_error,omitempty"`
	Revocation json.RawMessage `json:"revocation,omitempty"`
}

// ReviewScan is one scan of one database with its findings.
type ReviewScan struct {
	ID         int64     `json:"id"`
	Service    string    `json:"service"`
	Database   string    `json:"database"`
	Status     string    `json:"status"`
	Actor      string    `json:"actor"`
	StartedAt  time.Time `json:"started_at"`
	Principals int       `json:"principals"`
	Findings   []Finding `json:"findings"`
	Note       string    `json:"note,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// ReviewFinding is a finding of the last scan of a database in the period.
type ReviewFinding struct {
	Service  string `json:"service"`
	Database string `json:"database"`
	ScanID   int64  `json:"scan_id"`
	Finding
}

// ReviewReport gathers the grants and scans of [from, to) from the store.
func ReviewReport(ctx context.Context, st *store.Store, from, to time.Time) (Report, error) {
	if !from.Before(to) {
		return Report{}, fmt.Errorf("review period: from %s is not before to %s", from.Format(time.DateOnly), to.Format(time.DateOnly))
	}
	rep := Report{From: from.UTC(), To: to.UTC(), GeneratedAt: time.Now().UTC().Truncate(time.Second), Grants: []ReviewGrant{}, Scans: []ReviewScan{}, Open: []ReviewFinding{}}
	grants, err := st.AccessReviewGrants(ctx, from, to)
	if err != nil {
		return Report{}, err
	}
	for _, g := range grants {
		rg := ReviewGrant{ID: g.ID, ActionID: g.ActionID, Service: g.Service, Database: g.Database, Profile: g.Profile, Role: g.RoleName,
			Requester: g.Requester, Reason: g.Reason, BreakGlass: g.BreakGlass, State: g.State, Requested: g.CreatedAt, Issued: g.IssuedAt,
			Expires: g.ExpiresAt, Revoked: g.RevokedAt, LastError: g.LastError, Approvers: []string{}}
		if rv := strings.TrimSpace(g.Revocation); rv != "" && rv != "{}" && json.Valid([]byte(rv)) {
			rg.Revocation = json.RawMessage(rv)
		}
		for _, v := range g.Approvals {
			if v.Decision == "reject" {
				rg.Rejecters = append(rg.Rejecters, v.User)
			} else {
				rg.Approvers = append(rg.Approvers, v.User)
			}
		}
		rep.Summary.Grants++
		if g.BreakGlass {
			rep.Summary.BreakGlass++
		}
		if g.RevokedAt != nil && g.RevokedAt.Before(to) {
			rep.Summary.Revoked++
		} else if g.IssuedAt != nil {
			rep.Summary.NotRevoked++
		}
		rep.Grants = append(rep.Grants, rg)
	}
	rows, err := st.ListAccessScans(ctx, store.AccessScanFilter{From: from, To: to, Oldest: true, Limit: 10000})
	if err != nil {
		return Report{}, err
	}
	last := map[string]ReviewScan{}
	for _, row := range rows {
		var r ScanReport
		_ = json.Unmarshal([]byte(row.Report), &r)
		s := ReviewScan{ID: row.ID, Service: row.Service, Database: row.Database, Status: row.Status, Actor: row.Actor, StartedAt: row.StartedAt,
			Principals: len(r.Principals), Findings: r.Findings, Note: r.Note, Error: row.Error}
		if s.Findings == nil {
			s.Findings = []Finding{}
		}
		rep.Summary.Scans++
		switch row.Status {
		case ScanFindings:
			rep.Summary.ScansWithFindings++
		case ScanError:
			rep.Summary.ScanErrors++
		}
		rep.Scans = append(rep.Scans, s)
		if row.Status != ScanError {
			last[row.Service+"/"+row.Database] = s
		}
	}
	for _, k := range slices.Sorted(maps.Keys(last)) {
		s := last[k]
		for _, f := range s.Findings {
			rep.Open = append(rep.Open, ReviewFinding{Service: s.Service, Database: s.Database, ScanID: s.ID, Finding: f})
		}
	}
	rep.Summary.OpenFindings = len(rep.Open)
	return rep, nil
}

// WriteMarkdown renders the report for auditors.
func (r Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	ts := func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	}
	cell := func(s string) string {
		s = strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
		if s == "" {
			return "—"
		}
		return s
	}
	last := r.To.Add(-time.Nanosecond)
	fmt.Fprintf(&b, "# Access review %s to %s\n\n", day(r.From), day(last))
	fmt.Fprintf(&b, "Generated %s by Steward. The period includes %s and %s.\n\n", r.GeneratedAt.UTC().Format(time.RFC3339), day(r.From), day(last))
	s := r.Summary
	b.WriteString("## Summary\n\n")
	fmt.Fprintf(&b, "- Grants requested or live: %d (break-glass: %d)\n", s.Grants, s.BreakGlass)
	fmt.Fprintf(&b, "- Revoked with proof: %d; not revoked by the end of the period: %d\n", s.Revoked, s.NotRevoked)
	fmt.Fprintf(&b, "- Standing-privilege scans: %d (with findings: %d, could not run: %d)\n", s.Scans, s.ScansWithFindings, s.ScanErrors)
	fmt.Fprintf(&b, "- Findings open at the last scan of each database: %d\n\n", s.OpenFindings)

	b.WriteString("## Grants\n\n")
	if len(r.Grants) == 0 {
		b.WriteString("No grants in the period.\n\n")
	} else {
		b.WriteString("| ID | Database | Profile | Role | Requester | Reason | Approvers | Requested | Issued | Expires | Revoked | State |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, g := range r.Grants {
			approvers := strings.Join(g.Approvers, ", ")
			if g.BreakGlass {
				approvers = strings.TrimPrefix(approvers+", ", ", ") + "**break-glass**"
			}
			fmt.Fprintf(&b, "| %d | %s/%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", g.ID, cell(g.Service), cell(g.Database), cell(g.Profile),
				cell(g.Role), cell(g.Requester), cell(g.Reason), cell(strings.TrimSuffix(approvers, ", ")), ts(&g.Requested), ts(g.Issued), ts(&g.Expires),
				ts(g.Revoked), cell(g.State))
		}
		b.WriteString("\n")
		for _, g := range r.Grants {
			steps := scanRevocationSteps(g.Revocation)
			if len(steps) == 0 && g.LastError == "" {
				continue
			}
			fmt.Fprintf(&b, "### Revocation of grant %d (%s)\n\n", g.ID, cell(g.Role))
			for _, st := range steps {
				fmt.Fprintf(&b, "- %s\n", st)
			}
			if g.LastError != "" {
				fmt.Fprintf(&b, "- last error: %s\n", cell(g.LastError))
			}
			b.WriteString("\n")
		}
	}

	b.WriteString("## Standing-privilege scans\n\n")
	if len(r.Scans) == 0 {
		b.WriteString("No scans in the period.\n\n")
	} else {
		b.WriteString("| Scan | Started | Database | Status | Logins | Findings | Actor |\n|---|---|---|---|---|---|---|\n")
		for _, sc := range r.Scans {
			fmt.Fprintf(&b, "| %d | %s | %s/%s | %s | %d | %d | %s |\n", sc.ID, ts(&sc.StartedAt), cell(sc.Service), cell(sc.Database), sc.Status,
				sc.Principals, len(sc.Findings), cell(sc.Actor))
		}
		b.WriteString("\n")
		for _, sc := range r.Scans {
			if len(sc.Findings) == 0 && sc.Error == "" {
				continue
			}
			fmt.Fprintf(&b, "### Scan %d of %s/%s (%s)\n\n", sc.ID, sc.Service, sc.Database, ts(&sc.StartedAt))
			if sc.Error != "" {
				fmt.Fprintf(&b, "Could not run: %s\n\n", cell(sc.Error))
			}
			for _, f := range sc.Findings {
				fmt.Fprintf(&b, "- **%s** `%s`: %s\n", strings.ToUpper(f.Severity), f.Principal, cell(strings.Join(f.Reasons, "; ")))
			}
			b.WriteString("\n")
		}
	}

	b.WriteString("## Open findings\n\n")
	if len(r.Open) == 0 {
		b.WriteString("None: at the last scan of each database, every login with privileges was allow-listed or a live grant.\n")
	} else {
		b.WriteString("| Database | Principal | Severity | Scan | Reasons |\n|---|---|---|---|---|\n")
		for _, f := range r.Open {
			fmt.Fprintf(&b, "| %s/%s | %s | %s | %d | %s |\n", cell(f.Service), cell(f.Database), cell(f.Principal), f.Severity, f.ScanID, cell(strings.Join(f.Reasons, "; ")))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// scanRevocationSteps renders a revocation record's steps, whatever fields the
// grants code gives them: a name (step or name), a time (at, time,
// done_at, finished_at) and the rest as key=value.
func scanRevocationSteps(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var rec map[string]any
	if json.Unmarshal(raw, &rec) != nil {
		return nil
	}
	steps, _ := rec["steps"].([]any)
	var out []string
	for _, s := range steps {
		m, ok := s.(map[string]any)
		if !ok {
			out = append(out, fmt.Sprint(s))
			continue
		}
		name := scanFirstString(m, "step", "name")
		at := scanFirstString(m, "at", "time", "done_at", "finished_at")
		var rest []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			switch k {
			case "step", "name", "at", "time", "done_at", "finished_at":
				continue
			}
			rest = append(rest, fmt.Sprintf("%s=%v", k, m[k]))
		}
		line := name
		if at != "" {
			line += " at " + at
		}
		if len(rest) > 0 {
			line += " (" + strings.Join(rest, ", ") + ")"
		}
		out = append(out, strings.TrimSpace(line))
	}
	return out
}

func scanFirstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
	}
	return ""
}
