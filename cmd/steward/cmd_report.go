package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/report"
)

type reportOptions struct {
	From    string
	To      string
	Service string
	Format  string
	Out     string
	Key     string

	now func() time.Time // tests pin the clock
}

func (o *reportOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.From, "from", "", "start of the period: YYYY-MM-DD (midnight UTC) or RFC 3339 (required)")
	f.StringVar(&o.To, "to", "", "end of the period: YYYY-MM-DD (through the end of that day, UTC) or RFC 3339 (default: now)")
	f.StringVar(&o.Service, "service", "", "only this service (default: every service)")
	f.StringVar(&o.Format, "format", "html", "report format: html (one self-contained file that prints well), md or json")
	f.StringVar(&o.Out, "out", "", "folder to write the report, audit.jsonl, checkpoint.txt, audit.pub and VERIFY.md into (required)")
	f.StringVar(&o.Key, "key", "", "checkpoint verifier key to check the checkpoint with and copy as audit.pub (default: DATA_DIR/audit.pub)")
}

func newReportCmd(g *globalOptions) *cobra.Command {
	o := &reportOptions{}
	cmd := &cobra.Command{
		Use:   "report --from DATE [--to DATE] [--service S] [--format html|md|json] --out DIR",
		Short: "Export the evidence of a period for auditors, with the signed checkpoint that lets them verify it (read-only)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReport(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// reportPeriod parses --from and --to.
func (o *reportOptions) period(now time.Time) (time.Time, time.Time, error) {
	if o.From == "" {
		return time.Time{}, time.Time{}, usagef("--from is required: the start of the period, e.g. --from 2026-01-01")
	}
	from, err := report.ParseDate(o.From, false)
	if err != nil {
		return time.Time{}, time.Time{}, usagef("--from: %v", err)
	}
	to := now.UTC().Truncate(time.Microsecond)
	if o.To != "" {
		if to, err = report.ParseDate(o.To, true); err != nil {
			return time.Time{}, time.Time{}, usagef("--to: %v", err)
		}
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, usagef("--from %s is not before --to %s: the period is empty; swap them or widen it", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}

// runReport builds and writes the evidence report. It reads the store and
// writes only the files in --out: no audit event, no checkpoint. When no
// stored checkpoint covers the evidence it still writes the report, says so
// and exits 1.
func runReport(ctx context.Context, g *globalOptions, o *reportOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	now := time.Now
	if o.now != nil {
		now = o.now
	}
	from, to, err := o.period(now())
	if err != nil {
		return err
	}
	format, err := report.ParseFormat(o.Format)
	if err != nil {
		return usagef("--format: %v", err)
	}
	if o.Out == "" {
		return usagef("--out is required: the folder to write the report into")
	}
	if fi, err := os.Stat(o.Out); err == nil && !fi.IsDir() {
		return usagef("--out %s is a file; name a folder", o.Out)
	}
	return g.withApp(ctx, auth.PermAuditRead, func(a *app) error {
		if err := a.actor.Require(auth.PermRead); err != nil {
			return err
		}
		keyPath := o.Key
		if keyPath == "" {
			keyPath = filepath.Join(a.cfg.Steward.DataDir, "audit.pub")
		}
		pub, err := os.ReadFile(keyPath)
		if err != nil {
			return usagef("checkpoint verifier key %s: %v; pass --key with the audit.pub of this Steward", keyPath, err)
		}
		verifier, err := loadVerifier(keyPath)
		if err != nil {
			return err
		}
		// The scorecard as of the end of the period, evaluated read-only:
		// without an audit log the evaluator records nothing.
		cfg := a.cfg
		ev := &readiness.Evaluator{Store: a.store, Config: func() *config.Config { return cfg }, Verifier: verifier,
			Logger: a.log.With("component", "readiness"), Now: func() time.Time { return to }}
		rep, err := report.Build(ctx, report.Deps{Store: a.store, Config: a.cfg, Verifier: verifier, Scorecard: ev.Evaluate}, report.Options{
			From: from, To: to, Service: o.Service, Actor: a.actor.Actor(), Now: now,
		})
		switch {
		case errors.Is(err, report.ErrUnknownService), errors.Is(err, report.ErrBadPeriod):
			return usageError{err}
		case err != nil:
			return err
		}
		b, err := report.Write(ctx, a.store, rep, format, o.Out, pub)
		if err != nil {
			return err
		}
		if g.json() {
			if err := printJSON(out, map[string]any{"bundle": b, "coverage": rep.Coverage, "checkpoint": rep.Checkpoint, "verify": report.VerifyCommand}); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(out, "wrote %s: %d evidence item(s) in %d section(s), %d audited (highest event %d)\n",
				filepath.Join(o.Out, format.FileName()), rep.Coverage.Items, len(rep.Sections), rep.Coverage.Audited, rep.Coverage.MaxSeq)
			if rep.Checkpoint != nil {
				fmt.Fprintf(out, "checkpoint %d at size %d (%s); audit.jsonl holds events 1 to %d\n", rep.Checkpoint.ID, rep.Checkpoint.Size, short(rep.Checkpoint.Hash), b.Events)
				fmt.Fprintf(out, "verify: cd %s && %s\n", o.Out, report.VerifyCommand)
			}
		}
		if rep.Coverage.Problem != "" {
			return fmt.Errorf("%w: report written, but %s", errFailed, rep.Coverage.Problem)
		}
		return nil
	})
}
