package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/probe/slo"
	"github.com/stewardhq/steward/internal/probe/slowatch"
)

func newSLOCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "slo", Short: "Service level objectives of probes and services"}
	cmd.AddCommand(newSLOStatusCmd(g))
	return cmd
}

func newSLOStatusCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status [SERVICE]",
		Short: "Objectives, SLI, error budget and burn rates, probe states and open alerts (exit 1 when a budget is spent or a page is open)",
		Long: "Shows every objective (of a probe, or of a whole service) over its window: the target, the SLI, the error budget\n" +
			"left in percent and as downtime, the burn rate over each alert window and which windows fire, how many checks\n" +
			"were counted and how many were left out (error, broken, missed, maintenance); then each probe's state and the\n" +
			"open alerts. Reads the local store, or the server with --server (GET /api/v1/slo).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := ""
			if len(args) == 1 {
				service = args[0]
			}
			return runSLOStatus(cmd.Context(), g, service, cmd.OutOrStdout())
		},
	}
}

// runSLOStatus prints the SLO status of service (every service when "").
func runSLOStatus(ctx context.Context, g *globalOptions, service string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	var st *slowatch.Status
	if g.Server != "" {
		path := "/api/v1/slo"
		if service != "" {
			path += "?service=" + url.QueryEscape(service)
		}
		st = &slowatch.Status{}
		if err := g.apiGet(ctx, path, st); err != nil {
			return err
		}
	} else {
		err := g.withApp(ctx, auth.PermRead, func(a *app) error {
			if service != "" && a.cfg.Service(service) == nil {
				return usagef("unknown service %q", service)
			}
			var err error
			st, err = slowatch.Report(ctx, a.store, a.cfg, service, time.Now())
			return err
		})
		if err != nil {
			return err
		}
	}
	if g.json() {
		if err := printJSON(out, st); err != nil {
			return err
		}
	} else if err := printSLOStatus(out, st); err != nil {
		return err
	}
	if p := sloProblems(st); len(p) > 0 {
		if g.json() {
			return silentError{exitFailed}
		}
		return fmt.Errorf("%w: %s", errFailed, strings.Join(p, "; "))
	}
	return nil
}

// sloProblems lists what makes slo status exit 1: a spent budget, an open
// page.
func sloProblems(st *slowatch.Status) []string {
	var out []string
	for _, o := range st.Objectives {
		if o.Counted > 0 && o.BudgetRemaining <= 0 {
			out = append(out, fmt.Sprintf("%s %s budget spent", sloTarget(o.Service, o.Probe), o.Objective))
		}
	}
	for _, a := range st.Alerts {
		if a.Severity == string(slo.Page) {
			out = append(out, fmt.Sprintf("%s %s page open", sloTarget(a.Service, a.Probe), a.Name))
		}
	}
	return out
}

func sloTarget(service, probe string) string {
	if probe == "" {
		return service
	}
	return service + "/" + probe
}

func printSLOStatus(out io.Writer, st *slowatch.Status) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(st.Objectives) == 0 {
		fmt.Fprintln(tw, "No objectives configured (add slo: to a probe or a service).")
	} else {
		fmt.Fprintln(tw, "TARGET\tOBJECTIVE\tGOAL\tWINDOW\tSLI\tBUDGET LEFT\tBURN RATES\tFIRING\tCHECKS")
	}
	for _, o := range st.Objectives {
		goal := fmt.Sprintf("%s%%", trimFloat(o.Target))
		if o.LatencyThresholdMS > 0 {
			goal += fmt.Sprintf(" ≤%s", time.Duration(o.LatencyThresholdMS)*time.Millisecond)
		}
		sli := "-"
		if o.Counted > 0 {
			sli = fmt.Sprintf("%.3f%%", o.SLI*100)
		}
		left := fmt.Sprintf("%.1f%% (%s of %s)", o.BudgetRemaining*100, fmtBudget(o.BudgetRemainingSeconds), fmtBudget(o.BudgetTotalSeconds))
		var rates []string
		for _, r := range o.BurnRates {
			rates = append(rates, fmt.Sprintf("%s=%.2f", r.Window, r.Rate))
		}
		var firing []string
		for _, f := range o.Firing {
			firing = append(firing, fmt.Sprintf("%s %s", f.Severity, f.Window))
		}
		fire := strings.Join(firing, ", ")
		if fire == "" {
			fire = "-"
		}
		if o.Muted {
			fire += " (maintenance"
			if o.MaintenanceReason != "" {
				fire += ": " + o.MaintenanceReason
			}
			fire += ")"
		}
		checks := fmt.Sprintf("%d counted", o.Counted)
		if ex := o.ExcludedBroken + o.ExcludedMaintenance; ex > 0 {
			checks += fmt.Sprintf(", %d excluded (%d broken, %d maintenance)", ex, o.ExcludedBroken, o.ExcludedMaintenance)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sloTarget(o.Service, o.Probe), o.Objective, goal, o.Window, sli, left,
			strings.Join(rates, " "), fire, checks)
	}
	if len(st.Probes) > 0 {
		fmt.Fprintln(tw, "\nPROBE\tSTATE\tSINCE\tREASON")
		for _, p := range st.Probes {
			since := "-"
			if !p.Since.IsZero() {
				since = p.Since.Local().Format(time.DateTime)
			}
			reason := p.Reason
			if reason == "" {
				reason = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", sloTarget(p.Service, p.Probe), strings.ToUpper(p.State), since, reason)
		}
	}
	if len(st.Alerts) == 0 {
		fmt.Fprintln(tw, "\nNo open alerts.")
	} else {
		fmt.Fprintln(tw, "\nALERT\tTARGET\tNAME\tSEVERITY\tOPENED\tTITLE")
		for _, a := range st.Alerts {
			fmt.Fprintf(tw, "#%d\t%s\t%s\t%s\t%s\t%s\n", a.ID, sloTarget(a.Service, a.Probe), a.Name, a.Severity, a.OpenedAt.Local().Format(time.DateTime), a.Title)
		}
	}
	return tw.Flush()
}

// fmtBudget writes seconds of budget as a short duration, negative when
// overspent.
func fmtBudget(sec float64) string {
	d := time.Duration(sec * float64(time.Second)).Round(time.Second)
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%s%dd%dh", sign, d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%s%dh%dm", sign, d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%s%dm%ds", sign, d/time.Minute, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%s%ds", sign, d/time.Second)
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.4f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
