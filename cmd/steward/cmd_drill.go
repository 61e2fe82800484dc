package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	dbxall "github.com/stewardhq/steward/internal/dbx/all"
	"github.com/stewardhq/steward/internal/drill"
)

func newDrillCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "drill", Short: "Rehearse restores: run drills, see their history and RTO trend, print the runbook"}
	cmd.AddCommand(newDrillRunCmd(g), newDrillHistoryCmd(g), newDrillRunbookCmd(g), newDrillCleanupCmd(g))
	return cmd
}

// drillDeps builds what drills need on the app's store, audit log and
// outbox. progress receives one line per phase (nil: none).
func (a *app) drillDeps(progress io.Writer) (drill.Deps, error) {
	ob, err := a.outbox(nil)
	if err != nil {
		return drill.Deps{}, err
	}
	cfg := a.cfg
	return drill.Deps{
		Store: a.store, Engines: dbxall.Registry(), Audit: a.auditFunc(), Notifier: ob,
		Logger: a.log.With("component", "drill"), WorkDir: filepath.Join(cfg.Steward.DataDir, "scratch"),
		Progress: progress, Config: func() *config.Config { return cfg },
	}, nil
}

// serviceDrill resolves SERVICE/DRILL against the config.
func serviceDrill(cfg *config.Config, arg string) (*config.Service, *config.Drill, error) {
	svcName, drillName, ok := strings.Cut(arg, "/")
	if !ok || svcName == "" || drillName == "" {
		return nil, nil, usagef("%q: want SERVICE/DRILL, e.g. shop/weekly", arg)
	}
	svc := cfg.Service(svcName)
	if svc == nil {
		return nil, nil, usagef("unknown service %q", svcName)
	}
	d := svc.Drill(drillName)
	if d == nil {
		var names []string
		for _, x := range svc.Drills {
			names = append(names, x.Name)
		}
		return nil, nil, usagef("service %s has no drill %q (configured: %s)", svcName, drillName, strings.Join(names, ", "))
	}
	return svc, d, nil
}

type drillRunOptions struct {
	Backup string
}

func (o *drillRunOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Backup, "backup", "", "restore this backup (ID or SERVICE/BACKUP/ID) instead of the drill's pick")
}

func newDrillRunCmd(g *globalOptions) *cobra.Command {
	o := &drillRunOptions{}
	cmd := &cobra.Command{
		Use:   "run SERVICE/DRILL",
		Short: "Run a restore drill now: restore into scratch, verify, measure RTO/RPO, tear down (exit 1 when it fails)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDrill(cmd.Context(), g, o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func runDrill(ctx context.Context, g *globalOptions, o *drillRunOptions, arg string, out, errOut io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	svc, d, err := serviceDrill(a.cfg, arg)
	if err != nil {
		return err
	}
	if err := a.actor.Require(auth.PermOperate); err != nil {
		return err
	}
	deps, err := a.drillDeps(errOut)
	if err != nil {
		return err
	}
	// Whatever a crashed Steward left behind goes first.
	if _, err := drill.CleanLeftovers(ctx, deps); err != nil {
		a.log.Warn("clean drill leftovers", "err", err)
	}
	rep, runErr := drill.Run(ctx, deps, svc, d, drill.RunOptions{BackupID: o.Backup, Actor: a.actor.Actor()})
	if rep == nil {
		return runErr
	}
	if g.json() {
		if err := printJSON(out, rep); err != nil {
			return err
		}
	} else {
		printReport(out, rep)
	}
	switch {
	case runErr == nil:
		return nil
	case errors.Is(runErr, drill.ErrFailed):
		return silentError{exitFailed}
	case errors.Is(runErr, drill.ErrNotRun):
		return silentError{exitRuntime}
	}
	return runErr
}

func printReport(out io.Writer, r *drill.Report) {
	what := "drill " + r.Service + "/" + r.Drill
	if r.Mode == "restore" {
		what = "restore of " + r.Service + "/" + r.Database
	}
	fmt.Fprintf(out, "%s: %s (run %d)\n", what, strings.ToUpper(r.Status), r.RunID)
	if r.BackupRef != "" {
		fmt.Fprintf(out, "  backup:  %s (%s)\n", r.BackupRef, fmtBytes(r.BackupBytes))
	}
	if r.Scratch != "" {
		fmt.Fprintf(out, "  into:    %s\n", r.Scratch)
	}
	fmt.Fprintf(out, "  RTO:     %s (objective %s)\n", fmtSecs(r.RTOSeconds), fmtSecs(r.Objectives.RTOSeconds))
	fmt.Fprintf(out, "  RPO:     %s (objective %s), from %s\n", fmtSecs(r.RPOSeconds), fmtSecs(r.Objectives.RPOSeconds), orDash(r.RPOSource))
	if r.Error != "" {
		fmt.Fprintf(out, "  reason:  %s\n", r.Error)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PHASE\tSECONDS\tBYTES\tMB/S")
	for _, p := range r.Phases {
		mb := ""
		if p.MBPerS > 0 {
			mb = fmt.Sprintf("%.1f", p.MBPerS)
		}
		by := ""
		if p.Bytes > 0 {
			by = fmtBytes(p.Bytes)
		}
		fmt.Fprintf(tw, "  %s\t%.3f\t%s\t%s\n", p.Name, p.Seconds, by, mb)
	}
	tw.Flush()
	for _, v := range r.Verifications {
		fmt.Fprintf(out, "  [%s] %s: %s\n", v.Status, v.Name, v.Detail)
	}
}

func fmtSecs(s *float64) string {
	if s == nil {
		return "—"
	}
	d := time.Duration(*s * float64(time.Second))
	if d < time.Minute {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

type drillHistoryOptions struct {
	Limit int
}

func newDrillHistoryCmd(g *globalOptions) *cobra.Command {
	o := &drillHistoryOptions{}
	cmd := &cobra.Command{
		Use:   "history SERVICE/DRILL",
		Short: "Show a drill's RTO and RPO over time and when the RTO objective will be missed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDrillHistory(cmd.Context(), g, o, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVar(&o.Limit, "limit", 30, "at most this many runs")
	return cmd
}

func runDrillHistory(ctx context.Context, g *globalOptions, o *drillHistoryOptions, arg string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	svc, d, err := serviceDrill(a.cfg, arg)
	if err != nil {
		return err
	}
	runs, err := drill.History(ctx, a.store, svc.Name, d.Name, o.Limit)
	if err != nil {
		return err
	}
	growth := backupGrowth(ctx, svc, d)
	proj := drill.Trend(runs, growth, time.Now())
	if g.json() {
		if runs == nil {
			runs = []drill.RunRecord{}
		}
		for i := range runs {
			runs[i].Report = nil // the list stays small; `drill run -o json` has reports
		}
		return printJSON(out, map[string]any{"runs": runs, "projection": proj})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tSTATUS\tBACKUP\tRTO\tRPO\tRPO FROM\tBY\tERROR")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.StartedAt.Local().Format("2006-01-02 15:04"), r.State, orDash(r.BackupID),
			fmtSecs(r.RTOSeconds), fmtSecs(r.RPOSeconds), orDash(r.RPOSource), r.Actor, oneLine(r.Error, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(runs) == 0 {
		fmt.Fprintf(out, "no runs yet: steward drill run %s/%s\n", svc.Name, d.Name)
	}
	fmt.Fprintf(out, "\ntrend: %s\n", proj.Summary)
	return nil
}

// backupGrowth reads backup sizes over time from the repository's
// manifests; nil when it cannot (the trend then uses the drills' sizes).
func backupGrowth(ctx context.Context, svc *config.Service, d *config.Drill) []drill.SizePoint {
	b := svc.Backup(d.Backup)
	if b == nil || b.Repository == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	repo, err := backup.OpenRepository(ctx, b.Repository)
	if err != nil {
		return nil
	}
	defer repo.Close()
	ms, err := repo.List(ctx, svc.Name, b.Name)
	if err != nil {
		return nil
	}
	var out []drill.SizePoint
	for _, m := range ms {
		out = append(out, drill.SizePoint{Time: m.Time(), Bytes: m.Size})
	}
	return out
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func newDrillRunbookCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "runbook SERVICE/DRILL",
		Short: "Print the Markdown restore runbook generated from the drill's last successful run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDrillRunbook(cmd.Context(), g, args[0], cmd.OutOrStdout())
		},
	}
}

func runDrillRunbook(ctx context.Context, g *globalOptions, arg string, out io.Writer) error {
	if err := g.validate("text"); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	svc, d, err := serviceDrill(a.cfg, arg)
	if err != nil {
		return err
	}
	runs, err := drill.History(ctx, a.store, svc.Name, d.Name, 200)
	if err != nil {
		return err
	}
	last := drill.LastPassed(runs)
	if last == nil {
		return usagef("no passed run of drill %s/%s to write the runbook from: run `steward drill run %s/%s` first", svc.Name, d.Name, svc.Name, d.Name)
	}
	var m *backup.Manifest
	if b := svc.Backup(d.Backup); b != nil && b.Repository != "" && last.Report.BackupRef != "" {
		if repo, err := backup.OpenRepository(ctx, b.Repository); err == nil {
			if got, err := repo.Get(ctx, last.Report.BackupRef); err == nil {
				m = &got
			}
			repo.Close()
		}
	}
	md, err := drill.Runbook(svc, d, last.Report, m)
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, md)
	return err
}

func newDrillCleanupCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "cleanup",
		Short: "Remove scratch left by a crash and mark drills interrupted mid-run (also done before every drill and at server start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := g.validate(); err != nil {
				return err
			}
			a, err := g.openApp(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			deps, err := a.drillDeps(nil)
			if err != nil {
				return err
			}
			rep, cerr := drill.CleanLeftovers(ctx, deps)
			if g.json() {
				if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
				return cerr
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d scratch resource(s) %v; marked %d interrupted run(s) %v\n", len(rep.Removed), rep.Removed, len(rep.Interrupted), rep.Interrupted)
			return cerr
		},
	}
}
