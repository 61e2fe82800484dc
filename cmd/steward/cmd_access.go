package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/policy"
	"github.com/stewardhq/steward/internal/store"
)

// accessCmd is the `access` command group: just-in-time grants, break-glass,
// revocation, and (cmd_access_scan.go) the standing-privilege scan and the
// access review report.
func accessCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "access", Short: "Just-in-time database access: request, issue, break-glass, list, revoke"}
	cmd.AddCommand(newAccessRequestCmd(g, false), newAccessRequestCmd(g, true), newAccessIssueCmd(g), newAccessListCmd(g),
		newAccessShowCmd(g), newAccessRevokeCmd(g), newAccessSweepCmd(g))
	addScanCmds(cmd, g)
	return cmd
}

// accessDeps builds the dependencies of the access.grant kind and the
// sweeper on the app's store, audit log and outbox.
func (a *app) accessDeps(current func() *config.Config) *access.Deps {
	d := &access.Deps{Config: current, Store: a.store, Audit: a.auditFunc(), Logger: a.log.With("component", "access")}
	if a.notify != nil {
		d.Notifier = a.notify
	}
	return d
}

// accessPipeline returns the pipeline and the deps of its access.grant
// kind (registered in wiring.go).
func (a *app) accessPipeline() (*action.Pipeline, *access.Deps, error) {
	p, err := a.pipeline()
	if err != nil {
		return nil, nil, err
	}
	k, err := p.Kinds().Get(access.KindName)
	if err != nil {
		return nil, nil, err
	}
	gk, ok := k.(*access.GrantKind)
	if !ok {
		return nil, nil, fmt.Errorf("action kind %s is not the access grant kind", access.KindName)
	}
	return p, gk.Deps(), nil
}

// withAccess opens the app and the pipeline with the access kind.
func withAccess(ctx context.Context, g *globalOptions, fn func(*app, *action.Pipeline, *access.Deps) error) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	p, d, err := a.accessPipeline()
	if err != nil {
		return err
	}
	return accessErr(fn(a, p, d))
}

// accessErr marks refusals (bad input, not a broken machine) as usage
// errors for the exit code.
func accessErr(err error) error {
	for _, e := range []error{access.ErrUnknownProfile, access.ErrTooLong, access.ErrBreakGlassForbidden, access.ErrNotRequester,
		access.ErrNotRevocable, access.ErrUnsupported} {
		if errors.Is(err, e) {
			var u usageError
			if errors.As(err, &u) {
				return err
			}
			return usageError{err}
		}
	}
	return err
}

type accessRequestOptions struct {
	For    string
	Reason string
	Ticket string
	Wait   time.Duration
	Poll   time.Duration
}

func (o *accessRequestOptions) AddFlags(cmd *cobra.Command, breakGlass bool) {
	cmd.Flags().StringVar(&o.For, "for", "", "how long the grant lasts, e.g. 30m or 1h (at most the profile's max)")
	cmd.Flags().StringVarP(&o.Reason, "reason", "r", "", "why (required), e.g. \"INC-42: inspect stuck orders\"")
	cmd.Flags().StringVar(&o.Ticket, "ticket", "", "ticket reference")
	if !breakGlass {
		cmd.Flags().DurationVar(&o.Wait, "wait", 0, "wait this long for the approvals, then issue the grant and print the connection string")
		cmd.Flags().DurationVar(&o.Poll, "poll", 250*time.Millisecond, "with --wait: how often to look for the approvals")
	}
}

func newAccessRequestCmd(g *globalOptions, breakGlass bool) *cobra.Command {
	o := &accessRequestOptions{}
	use, short := "request SERVICE/DATABASE/PROFILE --for DURATION --reason TEXT", "Request a time-limited grant; it is issued after approval"
	if breakGlass {
		use, short = "break-glass SERVICE/DATABASE/PROFILE --for DURATION --reason TEXT", "Issue a grant NOW without approval: every channel is notified and two others must review it"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccessRequest(cmd.Context(), g, o, args[0], breakGlass, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd, breakGlass)
	return cmd
}

func runAccessRequest(ctx context.Context, g *globalOptions, o *accessRequestOptions, targetArg string, breakGlass bool, out io.Writer) error {
	svc, db, prof, err := access.ParseTarget(targetArg)
	if err != nil {
		return usageError{err}
	}
	if o.For == "" {
		return usagef("--for is required: how long the grant lasts, e.g. --for 1h")
	}
	if g.Server != "" {
		if err := g.validate(); err != nil {
			return err
		}
		if breakGlass {
			return remoteAccessBreakGlass(ctx, g, o, svc, db, prof, out)
		}
		return remoteAccessRequest(ctx, g, o, svc, db, prof, out)
	}
	req := access.Request(svc, db, prof, o.For, o.Reason, o.Ticket, breakGlass)
	return withAccess(ctx, g, func(a *app, p *action.Pipeline, d *access.Deps) error {
		if breakGlass {
			act, review, cred, err := access.BreakGlass(ctx, p, a.actor, req)
			if act == nil || cred == nil {
				return err
			}
			if err := printIssued(ctx, g, out, d, act, cred); err != nil {
				return err
			}
			printBreakGlassReview(g, out, review)
			return err
		}
		act, err := p.Create(ctx, a.actor, req)
		if err != nil {
			return err
		}
		if o.Wait <= 0 || act.State != action.PendingApproval && act.State != action.Approved {
			return printRequested(ctx, g, out, p, act)
		}
		if !g.json() {
			fmt.Fprintf(out, "requested grant action %d: %s\nwaiting up to %s for approval (steward approve %d) …\n", act.ID, act.Plan.Summary, o.Wait, act.ID)
		}
		wctx, cancel := context.WithTimeout(ctx, o.Wait)
		defer cancel()
		act, err = access.WaitApproved(wctx, p, act.ID, o.Poll)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%w: action %d is still %s after %s; once approved, run: steward access issue %d", errFailed, act.ID, act.State, o.Wait, act.ID)
			}
			return err
		}
		if act.State != action.Approved {
			return fmt.Errorf("%w: action %d was %s", errFailed, act.ID, act.State)
		}
		return issueAndPrint(ctx, g, out, a, p, d, act.ID)
	})
}

// printBreakGlassReview tells who broke the glass what happens next.
func printBreakGlassReview(g *globalOptions, out io.Writer, review store.ReviewRow) {
	if g.json() {
		return
	}
	fmt.Fprintf(out, "BREAK-GLASS: every channel was notified; review %d must be completed by %d other people before %s:\n  steward review complete %d --notes \"…\"\n",
		review.ID, review.Required, review.Deadline.Format(time.RFC3339), review.ID)
}

func printRequested(ctx context.Context, g *globalOptions, out io.Writer, p *action.Pipeline, act *action.Action) error {
	d, err := p.Decision(ctx, act)
	if err != nil {
		return err
	}
	return printRequestedDecision(g, out, act, d)
}

func printRequestedDecision(g *globalOptions, out io.Writer, act *action.Action, d policy.Decision) error {
	if g.json() {
		return printJSON(out, map[string]any{"action": act, "decision": d})
	}
	fmt.Fprintf(out, "requested grant action %d: %s\n  risk: %s; rule: %s\n", act.ID, act.Plan.Summary, act.Risk, act.Rule)
	if act.State == action.PendingApproval {
		fmt.Fprintf(out, "  needs: %s (steward approve %d)\n", d.Missing, act.ID)
	}
	fmt.Fprintf(out, "once approved, run: steward access issue %d (the connection string is shown once, to you)\n", act.ID)
	return nil
}

func newAccessIssueCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "issue ACTION_ID",
		Short: "Issue an approved grant to yourself (the requester) and print its connection string once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "action")
			if err != nil {
				return err
			}
			if g.Server != "" {
				if err := g.validate(); err != nil {
					return err
				}
				return remoteAccessIssue(cmd.Context(), g, id, cmd.OutOrStdout())
			}
			return withAccess(cmd.Context(), g, func(a *app, p *action.Pipeline, d *access.Deps) error {
				return issueAndPrint(cmd.Context(), g, cmd.OutOrStdout(), a, p, d, id)
			})
		},
	}
}

func issueAndPrint(ctx context.Context, g *globalOptions, out io.Writer, a *app, p *action.Pipeline, d *access.Deps, id int64) error {
	act, cred, err := access.Issue(ctx, p, a.actor, id)
	if cred == nil {
		if err == nil {
			err = fmt.Errorf("action %d produced no credential", id)
		}
		if act != nil && act.State == action.Failed {
			return fmt.Errorf("%w: %v", errFailed, err)
		}
		return err
	}
	if perr := printIssued(ctx, g, out, d, act, cred); perr != nil {
		return perr
	}
	return err
}

// printIssued shows the credential: the only time it is ever shown.
func printIssued(ctx context.Context, g *globalOptions, out io.Writer, d *access.Deps, act *action.Action, cred *access.Credential) error {
	gr, err := access.Get(ctx, d, cred.GrantID)
	if err != nil {
		return err
	}
	return printIssuedGrant(g, out, act, gr, cred)
}

func printIssuedGrant(g *globalOptions, out io.Writer, act *action.Action, gr access.Grant, cred *access.Credential) error {
	if g.json() {
		return printJSON(out, map[string]any{"action": act, "grant": gr, "credential": cred})
	}
	fmt.Fprintf(out, "grant %d issued: role %s on %s/%s (%s) until %s\n", gr.ID, gr.Role, gr.Service, gr.Database, gr.Profile, gr.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintf(out, "connection string (shown once; Steward keeps only its hash):\n  %s\n", cred.DSN)
	switch cred.Engine {
	case "postgres":
		fmt.Fprintf(out, "  psql %q\n", cred.DSN)
	case "mysql":
		fmt.Fprintf(out, "  mariadb -h %s -P %s -u %s -p'%s' %s\n", cred.Host, cred.Port, cred.Role, cred.Password, cred.Database)
	}
	fmt.Fprintf(out, "at expiry your sessions are terminated and the role is dropped; end early with: steward access revoke %d --reason …\n", gr.ID)
	return nil
}

type accessListOptions struct {
	Active  bool
	Service string
	Limit   int
}

func newAccessListCmd(g *globalOptions) *cobra.Command {
	o := &accessListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List grants, newest first: who, what, why, approvers, expiry, state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.Server != "" {
				if err := g.validate(); err != nil {
					return err
				}
				return remoteAccessList(cmd.Context(), g, o, cmd.OutOrStdout())
			}
			return withAccess(cmd.Context(), g, func(_ *app, _ *action.Pipeline, d *access.Deps) error {
				gs, err := access.List(cmd.Context(), d, access.ListFilter{Active: o.Active, Service: o.Service, Limit: o.Limit})
				if err != nil {
					return err
				}
				return printGrants(g, cmd.OutOrStdout(), gs)
			})
		},
	}
	cmd.Flags().BoolVar(&o.Active, "active", false, "only grants whose role may still exist (issuing, active, revoking)")
	cmd.Flags().StringVarP(&o.Service, "service", "s", "", "only this service")
	cmd.Flags().IntVar(&o.Limit, "limit", 100, "at most this many")
	return cmd
}

func printGrants(g *globalOptions, out io.Writer, gs []access.Grant) error {
	if g.json() {
		return printJSON(out, gs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tWHO\tWHAT\tWHY\tAPPROVERS\tEXPIRES\tROLE")
	for _, x := range gs {
		state := x.State
		if x.BreakGlass {
			state += " (break-glass)"
		}
		if x.LastError != "" && x.State == access.StateRevoking {
			state += fmt.Sprintf(" (attempt %d failed)", x.Attempts)
		}
		approvers := strings.Join(x.Approvers, ",")
		if approvers == "" {
			approvers = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s/%s/%s\t%s\t%s\t%s\t%s\n", x.ID, state, x.Requester, x.Service, x.Database, x.Profile, x.Reason,
			approvers, x.ExpiresAt.Format("2006-01-02 15:04:05Z07:00"), x.Role)
	}
	return tw.Flush()
}

func newAccessShowCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show GRANT_ID",
		Short: "Show a grant with its approvers and its revocation record",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "access")
			if err != nil {
				return err
			}
			if g.Server != "" {
				if err := g.validate(); err != nil {
					return err
				}
				return remoteAccessShow(cmd.Context(), g, id, cmd.OutOrStdout())
			}
			return withAccess(cmd.Context(), g, func(_ *app, _ *action.Pipeline, d *access.Deps) error {
				gr, err := access.Get(cmd.Context(), d, id)
				if err != nil {
					return err
				}
				return printGrant(g, cmd.OutOrStdout(), gr)
			})
		},
	}
}

func printGrant(g *globalOptions, out io.Writer, x access.Grant) error {
	if g.json() {
		return printJSON(out, x)
	}
	fmt.Fprintf(out, "grant %d  %s  %s\n", x.ID, strings.ToUpper(x.State), map[bool]string{true: "BREAK-GLASS", false: ""}[x.BreakGlass])
	fmt.Fprintf(out, "  what:      %s on %s/%s (%s), role %s\n", x.Profile, x.Service, x.Database, x.Engine, x.Role)
	fmt.Fprintf(out, "  who:       %s\n  why:       %s\n", x.Requester, x.Reason)
	if len(x.Approvers) > 0 {
		fmt.Fprintf(out, "  approvers: %s\n", strings.Join(x.Approvers, ", "))
	}
	if x.ActionID != 0 {
		fmt.Fprintf(out, "  action:    %d\n", x.ActionID)
	}
	if x.IssuedAt != nil {
		fmt.Fprintf(out, "  issued:    %s\n", x.IssuedAt.Format(time.RFC3339))
	}
	fmt.Fprintf(out, "  expires:   %s\n", x.ExpiresAt.Format(time.RFC3339))
	if x.RevokedAt != nil {
		fmt.Fprintf(out, "  revoked:   %s\n", x.RevokedAt.Format(time.RFC3339Nano))
	}
	if x.LastError != "" {
		fmt.Fprintf(out, "  last error: %s (attempt %d; next at %s)\n", x.LastError, x.Attempts, fmtTimePtr(x.NextAttemptAt))
	}
	if r := x.Revocation; r != nil {
		fmt.Fprintf(out, "  revocation: %s by %s, requested %s, %d attempt(s)\n", r.Reason, r.By, r.RequestedAt.Format(time.RFC3339Nano), r.Attempts)
		for _, s := range r.Steps {
			fmt.Fprintf(out, "    %-20s %s  %8.1f ms  (attempt %d) %s\n", s.Name, s.FinishedAt.Format("15:04:05.000"), s.Millis, s.Attempt, s.Detail)
		}
		for _, e := range r.Errors {
			fmt.Fprintf(out, "    error at %s, attempt %d, step %s: %s\n", e.At.Format(time.RFC3339), e.Attempt, e.Step, e.Error)
		}
	}
	return nil
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func newAccessRevokeCmd(g *globalOptions) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "revoke GRANT_ID --reason TEXT",
		Short: "Revoke a grant now: block logins, terminate sessions, drop the role, prove a login fails",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "access")
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return usagef("--reason is required: say why the grant ends early")
			}
			if g.Server != "" {
				if err := g.validate(); err != nil {
					return err
				}
				return remoteAccessRevoke(cmd.Context(), g, id, reason, cmd.OutOrStdout())
			}
			return withAccess(cmd.Context(), g, func(a *app, _ *action.Pipeline, d *access.Deps) error {
				_, rerr := access.Revoke(cmd.Context(), d, a.actor, id, reason)
				gr, err := access.Get(cmd.Context(), d, id)
				if err != nil {
					return errors.Join(rerr, err)
				}
				if perr := printGrant(g, cmd.OutOrStdout(), gr); perr != nil {
					return perr
				}
				if rerr != nil && gr.State == access.StateRevoking {
					return fmt.Errorf("%w: %v; the sweeper keeps retrying", errFailed, rerr)
				}
				return rerr
			})
		},
	}
	cmd.Flags().StringVarP(&reason, "reason", "r", "", "why the grant ends early (required)")
	return cmd
}

func newAccessSweepCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "sweep",
		Short: "Revoke expired grants and retry pending revocations now (the server does this every few seconds)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(cmd.Context(), g, func(_ *app, _ *action.Pipeline, d *access.Deps) error {
				res, err := access.Sweep(cmd.Context(), d, time.Now())
				if err != nil {
					return err
				}
				if g.json() {
					if err := printJSON(cmd.OutOrStdout(), res); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "expired %d, revoked %d, retrying %d, recovered %d\n", res.Expired, res.Revoked, res.Retrying, res.Recovered)
					for _, e := range res.Errors {
						fmt.Fprintln(cmd.OutOrStdout(), "  "+e)
					}
				}
				if res.Retrying > 0 {
					return fmt.Errorf("%w: %d revocation(s) failed and will be retried", errFailed, res.Retrying)
				}
				return nil
			})
		},
	}
}
