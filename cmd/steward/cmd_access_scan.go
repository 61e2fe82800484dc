package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/auth"
)

// addScanCmds adds the standing-privilege scan and the access review
// report to the access command.
func addScanCmds(parent *cobra.Command, g *globalOptions) {
	parent.AddCommand(newAccessScanCmd(g), newAccessReviewReportCmd(g))
}

// scanDeps builds what the scan needs on the app's store, audit log and
// outbox.
func (a *app) scanDeps() (access.ScanDeps, error) {
	ob, err := a.outbox(nil)
	if err != nil {
		return access.ScanDeps{}, err
	}
	return access.ScanDeps{Store: a.store, Audit: a.auditFunc(), Notifier: ob, Logger: a.log.With("component", "access-scan")}, nil
}

func newAccessScanCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "scan SERVICE",
		Short: "List every login of a service's databases and what it can do (exit 1 on findings, 3 when a database could not be scanned)",
		Long: "Scans each PostgreSQL and MySQL/MariaDB database of SERVICE with its admin_url (or url): every role or user that can log in,\n" +
			"its attributes, memberships, privileges and ownerships. Logins in the database's standing_access and live Steward grants\n" +
			"are expected; anything else with more than CONNECT is a finding. The report is recorded, audited and alerted on.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccessScan(cmd.Context(), g, args[0], cmd.OutOrStdout())
		},
	}
}

func runAccessScan(ctx context.Context, g *globalOptions, service string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	svc := a.cfg.Service(service)
	if svc == nil {
		return usagef("unknown service %q", service)
	}
	if len(svc.Databases) == 0 {
		return usagef("service %s has no databases to scan", service)
	}
	if err := a.actor.Require(auth.PermOperate); err != nil {
		return err
	}
	deps, err := a.scanDeps()
	if err != nil {
		return err
	}
	reports, scanErr := access.Scan(ctx, deps, svc, a.actor.Actor())
	if reports == nil && scanErr != nil {
		return scanErr
	}
	if g.json() {
		if err := printJSON(out, reports); err != nil {
			return err
		}
	} else {
		printScanReports(out, reports)
	}
	if scanErr != nil {
		return scanErr
	}
	// Findings are the outcome the command exists for (exit 1); a database
	// that could not be scanned is a malfunction (exit 3).
	code := exitOK
	for _, r := range reports {
		switch {
		case r.Status == access.ScanFindings:
			code = exitFailed
		case r.Status == access.ScanError && code == exitOK:
			code = exitRuntime
		}
	}
	if code != exitOK {
		return silentError{code}
	}
	return nil
}

func printScanReports(out io.Writer, reports []access.ScanReport) {
	for _, r := range reports {
		fmt.Fprintf(out, "%-8s %s/%s (%s", strings.ToUpper(r.Status), r.Service, r.Database, r.Engine)
		if r.Status == access.ScanOK || r.Status == access.ScanFindings {
			fmt.Fprintf(out, ", %d logins, %d findings", len(r.Principals), len(r.Findings))
		}
		fmt.Fprintf(out, ", %d ms)\n", r.DurationMS)
		if r.Note != "" {
			fmt.Fprintf(out, "         %s\n", r.Note)
		}
		if r.Error != "" {
			fmt.Fprintf(out, "         error: %s\n", r.Error)
		}
		for _, f := range r.Findings {
			isNew := ""
			for _, n := range r.New {
				if n == f.Principal {
					isNew = " (new)"
				}
			}
			fmt.Fprintf(out, "  %-8s %s%s\n", strings.ToUpper(f.Severity), f.Principal, isNew)
			for _, reason := range f.Reasons {
				fmt.Fprintf(out, "             %s\n", reason)
			}
		}
		var others []string
		for _, p := range r.Principals {
			if p.Class != access.ClassFinding {
				others = append(others, p.Name+" ("+p.Class+")")
			}
		}
		if len(others) > 0 {
			fmt.Fprintf(out, "  expected: %s\n", strings.Join(others, ", "))
		}
		for _, p := range r.Resolved {
			fmt.Fprintf(out, "  resolved: %s no longer holds standing privileges\n", p)
		}
	}
}

type reviewReportOptions struct {
	From string
	To   string
}

func (o *reviewReportOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.From, "from", "", "first day of the period, YYYY-MM-DD (UTC) or an RFC 3339 time")
	cmd.Flags().StringVar(&o.To, "to", "", "last day of the period, included, YYYY-MM-DD (UTC) or an RFC 3339 time (excluded)")
}

func newAccessReviewReportCmd(g *globalOptions) *cobra.Command {
	o := &reviewReportOptions{}
	cmd := &cobra.Command{
		Use:   "review-report --from DAY --to DAY",
		Short: "Evidence for an access review: every grant (who, what, why, approvers, revocation proof) and every scan with its findings in a period",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAccessReviewReport(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// parseReviewBound reads a day (the whole day, UTC) or an RFC 3339 time;
// end is true for --to, whose day is included.
func parseReviewBound(flag, v string, end bool) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--%s %q: want a day like 2026-03-31 or a time like 2026-03-31T12:00:00Z", flag, v)
}

func runAccessReviewReport(ctx context.Context, g *globalOptions, o *reviewReportOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	if o.From == "" || o.To == "" {
		return usagef("both --from and --to are needed, e.g. --from 2026-01-01 --to 2026-03-31")
	}
	from, err := parseReviewBound("from", o.From, false)
	if err != nil {
		return err
	}
	to, err := parseReviewBound("to", o.To, true)
	if err != nil {
		return err
	}
	if !from.Before(to) {
		return usagef("--from %s is after --to %s", o.From, o.To)
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.actor.Require(auth.PermAuditRead); err != nil {
		return err
	}
	rep, err := access.ReviewReport(ctx, a.store, from, to)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(out, rep)
	}
	return rep.WriteMarkdown(out)
}
