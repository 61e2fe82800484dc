package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

// scoreOptions are the flags of steward score.
type scoreOptions struct {
	FailUnder float64
	Record    bool
}

func (o *scoreOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Float64Var(&o.FailUnder, "fail-under", 0, "exit 1 when the score (of SERVICE, or overall) is below this percentage, for CI")
	f.BoolVar(&o.Record, "record", false, "store this evaluation in the history (the server does so on readiness.schedule); local store only")
}

func newScoreCmd(g *globalOptions) *cobra.Command {
	o := &scoreOptions{}
	cmd := &cobra.Command{
		Use:   "score [SERVICE]",
		Short: "Evaluate the readiness scorecard: every control per service with status, reason and fix (exit 1 below --fail-under)",
		Long: `Evaluate the readiness controls of every service (or of SERVICE) from the evidence in the store,
the config and the audit log, and print each control's status, reason and fix, a score per service
and overall, and the trend versus about 30 days ago. --output table (default), json or md (for a
pull request). Works on the local store, or with --server through GET /api/v1/score.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := ""
			if len(args) == 1 {
				service = args[0]
			}
			return runScore(cmd.Context(), g, o, service, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	cmd.AddCommand(newScoreHistoryCmd(g))
	return cmd
}

// scoreFormats are the --output values steward score accepts; text is
// the table.
var scoreFormats = []string{"text", "table", "json", "md"}

// newEvaluator builds the readiness evaluator on the app's store, audit
// log and config (cfg follows reloads when given).
func newEvaluator(a *app, cfg func() *config.Config) *readiness.Evaluator {
	if cfg == nil {
		c := a.cfg
		cfg = func() *config.Config { return c }
	}
	e := &readiness.Evaluator{Store: a.store, Config: cfg, Audit: a.audit, Logger: a.log.With("component", "readiness"),
		SLO: sloSource{store: a.store, cfg: cfg}}
	// The checkpoints' signatures are re-checked when the verifier key is
	// there; a store without checkpoints has none yet.
	if v, err := loadVerifier(filepath.Join(a.cfg.Steward.DataDir, "audit.pub")); err == nil {
		e.Verifier = v
	}
	return e
}

// sloSource adapts the SLO evaluator (internal/probe/slowatch) to
// readiness.SLOSource: the state of every objective of a service, computed
// from the stored probe results.
type sloSource struct {
	store *store.Store
	cfg   func() *config.Config
}

var _ readiness.SLOSource = sloSource{}

func (s sloSource) ServiceSLOs(ctx context.Context, service string) ([]readiness.SLOSummary, error) {
	st, err := slowatch.Report(ctx, s.store, s.cfg(), service, time.Now())
	if err != nil {
		return nil, err
	}
	var out []readiness.SLOSummary
	for _, o := range st.Objectives {
		if o.Service != service {
			continue
		}
		out = append(out, readiness.SLOSummary{Probe: o.Probe, Kind: o.Objective, Checks: o.Counted, Objective: o.Target / 100,
			Window: o.Window, Availability: o.SLI, BudgetRemaining: o.BudgetRemaining})
	}
	return out, nil
}

func runScore(ctx context.Context, g *globalOptions, o *scoreOptions, service string, out io.Writer) error {
	if err := g.validate(scoreFormats...); err != nil {
		return err
	}
	if o.FailUnder < 0 || o.FailUnder > 100 {
		return usagef("--fail-under %g: want a percentage from 0 to 100", o.FailUnder)
	}
	var card *readiness.Scorecard
	if g.Server != "" {
		if o.Record {
			return usagef("--record works on the local store; the server records the scorecard on readiness.schedule")
		}
		path := "/api/v1/score"
		if service != "" {
			path += "?service=" + url.QueryEscape(service)
		}
		card = &readiness.Scorecard{}
		if err := g.apiGet(ctx, path, card); err != nil {
			return err
		}
	} else {
		err := g.withApp(ctx, auth.PermRead, func(a *app) error {
			if service != "" && a.cfg.Service(service) == nil {
				return usagef("unknown service %q%s", service, serviceHint(a.cfg))
			}
			var err error
			card, err = newEvaluator(a, nil).Evaluate(ctx, service)
			if err != nil {
				return err
			}
			if o.Record {
				return readiness.Record(ctx, a.store, card)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := printScorecard(out, g.Output, card); err != nil {
		return err
	}
	if o.FailUnder > 0 && card.Score < o.FailUnder {
		fmt.Fprintf(g.stderr, "steward: readiness score %.1f is below --fail-under %g\n", card.Score, o.FailUnder)
		return silentError{exitFailed}
	}
	return nil
}

// serviceHint lists the configured services for an error message.
func serviceHint(cfg *config.Config) string {
	var names []string
	for _, s := range cfg.Services {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return " (no services are configured)"
	}
	return " (configured: " + strings.Join(names, ", ") + ")"
}

// printScorecard writes card as a table, JSON or Markdown.
func printScorecard(out io.Writer, format string, card *readiness.Scorecard) error {
	switch format {
	case "json":
		return printJSON(out, card)
	case "md":
		printScorecardMarkdown(out, card)
	default:
		printScorecardTable(out, card)
	}
	return nil
}

// trend formats a score against its previous value.
func trend(score float64, prev *float64) string {
	if prev == nil {
		return "no score from 30 days ago"
	}
	return fmt.Sprintf("%+.1f vs %.1f 30 days ago", score-*prev, *prev)
}

// statusLabel is the status as printed in tables: upper case, marked when
// waived.
func statusLabel(r readiness.Result) string {
	s := strings.ToUpper(string(r.Status))
	if r.Waived {
		s += "*"
	}
	return s
}

func printScorecardTable(out io.Writer, card *readiness.Scorecard) {
	fmt.Fprintf(out, "Readiness %.1f/100 (%s), evaluated %s\n", card.Score, trend(card.Score, card.Previous), card.EvaluatedAt.Format("2006-01-02 15:04 UTC"))
	waived := false
	for _, sc := range card.Services {
		fmt.Fprintf(out, "\n%s (tier %d): %.1f/100 (%s)\n", sc.Service, sc.Tier, sc.Score, trend(sc.Score, sc.Previous))
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tCONTROL\tSTATUS\tREASON")
		for _, r := range sc.Results {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", r.Control.Number, r.Control.ID, statusLabel(r), r.Reason)
			if r.Fix != "" {
				fmt.Fprintf(tw, "\t\t\tfix: %s\n", r.Fix)
			}
			waived = waived || r.Waived
		}
		tw.Flush()
	}
	if waived {
		fmt.Fprintln(out, "\n* waived: see the reason; waivers are set in readiness.waivers and expire")
	}
}

// mdEscape makes s safe inside a Markdown table cell.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

var statusEmoji = map[readiness.Status]string{readiness.Pass: "✅", readiness.Warn: "⚠️", readiness.Fail: "❌", readiness.Unknown: "❔"}

func printScorecardMarkdown(out io.Writer, card *readiness.Scorecard) {
	fmt.Fprintf(out, "## Readiness: %.1f / 100\n\n", card.Score)
	fmt.Fprintf(out, "Evaluated %s; %s.\n", card.EvaluatedAt.Format("2006-01-02 15:04 UTC"), trend(card.Score, card.Previous))
	for _, sc := range card.Services {
		fmt.Fprintf(out, "\n### %s (tier %d): %.1f / 100\n\n", mdEscape(sc.Service), sc.Tier, sc.Score)
		fmt.Fprintln(out, "| # | Control | Status | Reason | Fix |")
		fmt.Fprintln(out, "|---|---|---|---|---|")
		for _, r := range sc.Results {
			status := statusEmoji[r.Status] + " " + string(r.Status)
			if r.Waived {
				status += " (waived)"
			}
			fmt.Fprintf(out, "| %d | %s | %s | %s | %s |\n", r.Control.Number, mdEscape(r.Control.Title), status, mdEscape(r.Reason), mdEscape(r.Fix))
		}
	}
}

// scoreHistoryOptions are the flags of steward score history.
type scoreHistoryOptions struct {
	Control string
	Since   string
}

func (o *scoreHistoryOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Control, "control", "", "only this control (an ID such as backups; see docs/readiness.md)")
	f.StringVar(&o.Since, "since", "", "only evaluations within this duration, like 30d (default: all); local store only")
}

func newScoreHistoryCmd(g *globalOptions) *cobra.Command {
	o := &scoreHistoryOptions{}
	cmd := &cobra.Command{
		Use:   "history SERVICE",
		Short: "Show when each control of a service changed status (\"when did this go red?\") from the stored scorecards",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScoreHistory(cmd.Context(), g, o, args[0], cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func runScoreHistory(ctx context.Context, g *globalOptions, o *scoreHistoryOptions, service string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	if o.Control != "" {
		if _, ok := readiness.Lookup(o.Control); !ok {
			return usagef("--control %q: unknown control; the controls are %s", o.Control, strings.Join(readiness.IDs(), ", "))
		}
	}
	var from time.Time
	if o.Since != "" {
		d, err := config.ParseDuration(o.Since)
		if err != nil {
			return usagef("--since: %v", err)
		}
		from = time.Now().Add(-d)
	}
	var h *readiness.History
	if g.Server != "" {
		if o.Since != "" {
			return usagef("--since works on the local store; the server answers the whole history")
		}
		q := url.Values{"service": {service}}
		if o.Control != "" {
			q.Set("control", o.Control)
		}
		h = &readiness.History{}
		if err := g.apiGet(ctx, "/api/v1/score/history?"+q.Encode(), h); err != nil {
			return err
		}
	} else {
		err := g.withApp(ctx, auth.PermRead, func(a *app) error {
			if a.cfg.Service(service) == nil {
				return usagef("unknown service %q%s", service, serviceHint(a.cfg))
			}
			var err error
			h, err = readiness.LoadHistory(ctx, a.store, service, o.Control, from)
			return err
		})
		if err != nil {
			return err
		}
	}
	if g.json() {
		return printJSON(out, h)
	}
	printScoreHistory(out, h, o.Control)
	return nil
}

func printScoreHistory(out io.Writer, h *readiness.History, control string) {
	if len(h.Points) == 0 {
		fmt.Fprintf(out, "%s: no stored evaluations yet; the server stores one on readiness.schedule (or run steward score --record)\n", h.Service)
		return
	}
	first, last := h.Points[0], h.Points[len(h.Points)-1]
	fmt.Fprintf(out, "%s: %d evaluations from %s to %s; score %.1f then, %.1f now\n", h.Service, len(h.Points),
		first.At.Format("2006-01-02 15:04"), last.At.Format("2006-01-02 15:04 UTC"), first.Score, last.Score)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WHEN\tCONTROL\tFROM\tTO\tREASON")
	for _, c := range h.Changes {
		from := string(c.From)
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.At.Format("2006-01-02 15:04"), c.Control, from, c.To, c.Reason)
	}
	tw.Flush()
	if control != "" {
		if st, ok := h.Current[control]; ok {
			fmt.Fprintf(out, "%s is %s now\n", control, st)
		}
	}
}
