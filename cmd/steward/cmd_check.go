package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/integrity"
)

func newCheckCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "check", Short: "Run integrity checks of operative data and see their history"}
	cmd.AddCommand(newCheckRunCmd(g), newCheckHistoryCmd(g))
	return cmd
}

// checkDeps builds what checks need on the app's store, audit log and
// outbox.
func (a *app) checkDeps() (integrity.Deps, error) {
	ob, err := a.outbox(nil)
	if err != nil {
		return integrity.Deps{}, err
	}
	return integrity.Deps{Store: a.store, Audit: a.auditFunc(), Notifier: ob, Logger: a.log.With("component", "checks")}, nil
}

// serviceCheck resolves SERVICE[/CHECK]; check is empty for all checks.
func serviceCheck(cfg *config.Config, arg string, needCheck bool) (*config.Service, string, error) {
	svcName, checkName, _ := strings.Cut(arg, "/")
	if svcName == "" || needCheck && checkName == "" {
		return nil, "", usagef("%q: want SERVICE/CHECK, e.g. shop/orders-amount", arg)
	}
	svc := cfg.Service(svcName)
	if svc == nil {
		return nil, "", usagef("unknown service %q", svcName)
	}
	if checkName != "" && svc.Check(checkName) == nil {
		var names []string
		for _, c := range svc.Checks {
			names = append(names, c.Name)
		}
		return nil, "", usagef("service %s has no check %q (configured: %s)", svcName, checkName, strings.Join(names, ", "))
	}
	if checkName == "" && len(svc.Checks) == 0 {
		return nil, "", usagef("service %s has no checks", svcName)
	}
	return svc, checkName, nil
}

func newCheckRunCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "run SERVICE[/CHECK]",
		Short: "Run a service's checks (or one) now, record and audit the results (exit 1 when a check fails or could not run)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd.Context(), g, args[0], cmd.OutOrStdout())
		},
	}
}

func runCheck(ctx context.Context, g *globalOptions, arg string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	svc, name, err := serviceCheck(a.cfg, arg, false)
	if err != nil {
		return err
	}
	if err := a.actor.Require(auth.PermOperate); err != nil {
		return err
	}
	deps, err := a.checkDeps()
	if err != nil {
		return err
	}
	var names []string
	if name != "" {
		names = []string{name}
	}
	results, runErr := integrity.Run(ctx, deps, svc, names, a.actor.Actor())
	if results == nil {
		return runErr
	}
	if g.json() {
		if err := printJSON(out, results); err != nil {
			return err
		}
	} else {
		printCheckResults(out, results)
	}
	if runErr != nil {
		return runErr
	}
	for _, r := range results {
		if r.Failed() {
			return silentError{exitFailed}
		}
	}
	return nil
}

func printCheckResults(out io.Writer, results []integrity.Result) {
	for _, r := range results {
		fmt.Fprintf(out, "%-5s %s/%s (%s on %s, %d ms)", strings.ToUpper(r.Status), r.Service, r.Check, r.Type, r.Database, r.DurationMS)
		if r.Status == integrity.StatusFail || r.Status == integrity.StatusWarn {
			fmt.Fprintf(out, ": %d violations", r.Violations)
		}
		fmt.Fprintln(out)
		if r.Detail != "" {
			fmt.Fprintf(out, "      %s\n", r.Detail)
		}
		if r.Error != "" {
			fmt.Fprintf(out, "      error: %s\n", r.Error)
		}
		if r.New+r.Persisting+r.Resolved > 0 {
			fmt.Fprintf(out, "      new %d, persisting %d, resolved %d\n", r.New, r.Persisting, r.Resolved)
		}
		for i, row := range r.Sample {
			b, _ := json.Marshal(row)
			line := "      " + string(b)
			if i < len(r.Keys) && !r.Keys[i].New {
				line += fmt.Sprintf("  (since %s)", time.Duration(r.Keys[i].AgeSeconds*float64(time.Second)).Round(time.Second))
			}
			fmt.Fprintln(out, line)
		}
		if int64(len(r.Sample)) < r.Violations && len(r.Sample) > 0 {
			fmt.Fprintf(out, "      … %d more\n", r.Violations-int64(len(r.Sample)))
		}
	}
}

type checkHistoryOptions struct {
	Limit int
}

func (o *checkHistoryOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().IntVar(&o.Limit, "limit", 20, "at most this many runs")
}

func newCheckHistoryCmd(g *globalOptions) *cobra.Command {
	o := &checkHistoryOptions{}
	cmd := &cobra.Command{
		Use:   "history SERVICE/CHECK",
		Short: "Show the recorded runs of a check, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheckHistory(cmd.Context(), g, o, args[0], cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func runCheckHistory(ctx context.Context, g *globalOptions, o *checkHistoryOptions, arg string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	svc, name, err := serviceCheck(a.cfg, arg, true)
	if err != nil {
		return err
	}
	if err := a.actor.Require(auth.PermRead); err != nil {
		return err
	}
	runs, err := integrity.History(ctx, a.store, svc.Name, name, o.Limit)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(out, runs)
	}
	if len(runs) == 0 {
		fmt.Fprintf(out, "no runs of %s/%s yet: steward check run %s/%s\n", svc.Name, name, svc.Name, name)
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tSTATUS\tVIOLATIONS\tDURATION\tERROR")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d ms\t%s\n", r.RunID, r.StartedAt.Format(time.RFC3339), strings.ToUpper(r.Status), r.Violations, r.DurationMS, r.Error)
	}
	return tw.Flush()
}
