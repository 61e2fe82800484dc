package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/integrity"
	"github.com/stewardhq/steward/internal/policy"
)

func newCheckCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "check", Short: "Run integrity checks of operative data and see their history"}
	cmd.AddCommand(newCheckRunCmd(g), newCheckHistoryCmd(g), newCheckProposeFixCmd(g))
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
	fmt.Fprintln(tw, "RUN\tSTARTED\tSTATUS\tVIOLATIONS\tDURATION\tAFTER FIX\tERROR")
	for _, r := range runs {
		after := ""
		if r.FixAction != nil {
			after = fmt.Sprintf("action %d", *r.FixAction)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d ms\t%s\t%s\n", r.RunID, r.StartedAt.Format(time.RFC3339), strings.ToUpper(r.Status), r.Violations, r.DurationMS, after, r.Error)
	}
	return tw.Flush()
}

type checkProposeFixOptions struct {
	Reason string
	Ticket string
	Limit  int
}

func (o *checkProposeFixOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.Reason, "reason", "r", "", `why; default "remedy for check SERVICE/CHECK: N violations"`)
	cmd.Flags().StringVar(&o.Ticket, "ticket", "", "ticket reference")
	cmd.Flags().IntVar(&o.Limit, "limit", 10, "at most this many fix requests (a list parameter covers every violation in one)")
}

func newCheckProposeFixCmd(g *globalOptions) *cobra.Command {
	o := &checkProposeFixOptions{}
	cmd := &cobra.Command{
		Use:   "propose-fix SERVICE/CHECK",
		Short: "Run a check now and request its remedy fix for the violations found, as fix.apply actions awaiting approval",
		Long: `Run a check now and request its remedy fix for the violations found.

The check must name a fix as its remedy (remedy: FIX). Each fix parameter
takes its value from a column of the violating rows (remedy_params maps
parameter to column; default the column of the same name). Rows with the
same values share a request; a list parameter ([]int, ...) collects the keys
of every violating row into one request. The requests go through the action
pipeline like steward fix request. Once one is applied, the check re-runs and
the run is linked to the action (steward check history shows it).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheckProposeFix(cmd.Context(), g, o, args[0], cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// proposedFix is one fix.apply action propose-fix created.
type proposedFix struct {
	Action   *action.Action  `json:"action"`
	Decision policy.Decision `json:"decision"`
	Rows     int             `json:"rows"`
}

// proposeFixResult is what propose-fix prints with --output json.
type proposeFixResult struct {
	Check   integrity.Result  `json:"check"`
	Remedy  *integrity.Remedy `json:"remedy"`
	Actions []proposedFix     `json:"actions"`
	Errors  []string          `json:"errors,omitempty"`
}

func runCheckProposeFix(ctx context.Context, g *globalOptions, o *checkProposeFixOptions, arg string, out io.Writer) error {
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
	if err := a.actor.Require(auth.PermOperate); err != nil {
		return err
	}
	if c := svc.Check(name); c.Remedy == "" {
		return usagef("check %s/%s has no remedy: name the fix that repairs it with remedy: FIX in its config", svc.Name, name)
	}
	deps, err := a.checkDeps()
	if err != nil {
		return err
	}
	results, err := integrity.Run(ctx, deps, svc, []string{name}, a.actor.Actor())
	if err != nil {
		return err
	}
	res := results[0]
	rem, err := integrity.ProposeRemedy(svc, res, o.Limit)
	if errors.Is(err, integrity.ErrRemedyMapping) {
		return usageError{err}
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errFailed, err)
	}
	report := proposeFixResult{Check: res, Remedy: rem, Actions: []proposedFix{}}
	if len(rem.Requests) > 0 {
		p, err := a.pipeline()
		if err != nil {
			return err
		}
		reason := o.Reason
		if strings.TrimSpace(reason) == "" {
			reason = fmt.Sprintf("remedy for check %s/%s: %d violations", svc.Name, name, res.Violations)
		}
		for _, rq := range rem.Requests {
			req := rq.Request(reason)
			req.Ticket = o.Ticket
			act, err := p.Create(ctx, a.actor, req)
			if err != nil {
				b, _ := json.Marshal(rq.Params.Params)
				report.Errors = append(report.Errors, fmt.Sprintf("fix %s/%s %s: %v", svc.Name, rem.Fix, b, err))
				continue
			}
			d, err := p.Decision(ctx, act)
			if err != nil {
				return err
			}
			report.Actions = append(report.Actions, proposedFix{Action: act, Decision: d, Rows: rq.Rows})
		}
	}
	if g.json() {
		if err := printJSON(out, report); err != nil {
			return err
		}
	} else {
		printProposal(out, report)
	}
	if len(report.Errors) > 0 {
		return silentError{exitFailed}
	}
	return nil
}

func printProposal(out io.Writer, r proposeFixResult) {
	id := r.Check.Service + "/" + r.Check.Check
	if r.Check.Violations == 0 {
		fmt.Fprintf(out, "check %s passes (run %d): nothing to fix\n", id, r.Check.RunID)
		return
	}
	fmt.Fprintf(out, "check %s: %d violations (run %d); remedy fix %s\n", id, r.Check.Violations, r.Check.RunID, r.Remedy.Fix)
	for _, p := range r.Actions {
		b, _ := json.Marshal(p.Action.Plan.Details["params"])
		fmt.Fprintf(out, "  action %d  %s  %s  params %s  (%d violating rows)\n", p.Action.ID, p.Action.Kind, strings.ToUpper(string(p.Action.State)), b, p.Rows)
		fmt.Fprintf(out, "    plan:  %s\n", p.Action.Plan.Summary)
		switch {
		case p.Action.State == action.PendingApproval:
			fmt.Fprintf(out, "    needs: %s (rule %s); then: steward fix apply %d\n", p.Decision.Missing, p.Decision.Rule, p.Action.ID)
		case p.Action.State == action.Approved:
			fmt.Fprintf(out, "    approved by rule %s; apply: steward fix apply %d\n", p.Decision.Rule, p.Action.ID)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(out, "  not requested: %s\n", e)
	}
	if left := r.Check.Violations - int64(r.Remedy.Covered); left > 0 {
		fmt.Fprintf(out, "%d violation(s) not covered by these requests; run propose-fix again once they are applied\n", left)
	}
}
