package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/policy"
	"github.com/stewardhq/steward/internal/store"
)

func newActionCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "action", Short: "Request, inspect, execute and cancel actions (every change to production goes through here)"}
	cmd.AddCommand(newActionRequestCmd(g, false), newActionRequestCmd(g, true), newActionListCmd(g), newActionShowCmd(g),
		newActionExecuteCmd(g), newActionCancelCmd(g), newActionReplanCmd(g))
	return cmd
}

type actionRequestOptions struct {
	Service string
	Target  string
	Params  []string
	Reason  string
	Ticket  string
}

func (o *actionRequestOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.Service, "service", "s", "", "service the action concerns")
	cmd.Flags().StringVar(&o.Target, "target", "", "what the action targets, e.g. a database or host")
	cmd.Flags().StringArrayVarP(&o.Params, "param", "p", nil, "parameter KEY=VALUE (repeatable); VALUE is JSON if it parses as JSON, else a string")
	cmd.Flags().StringVarP(&o.Reason, "reason", "r", "", "why (required), e.g. \"INC-42: roll back the bad deploy\"")
	cmd.Flags().StringVar(&o.Ticket, "ticket", "", "ticket reference")
}

// params turns KEY=VALUE flags into a JSON object.
func (o *actionRequestOptions) request(kind string) (action.Request, error) {
	m := map[string]any{}
	for _, kv := range o.Params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return action.Request{}, usagef("--param %q: want KEY=VALUE", kv)
		}
		var js any
		if err := json.Unmarshal([]byte(v), &js); err == nil {
			m[k] = js
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return action.Request{Kind: kind, Service: o.Service, Target: o.Target, Params: b, Reason: o.Reason, Ticket: o.Ticket}, nil
}

func newActionRequestCmd(g *globalOptions, breakGlass bool) *cobra.Command {
	o := &actionRequestOptions{}
	use, short := "request KIND", "Plan an action and submit it for approval"
	if breakGlass {
		use, short = "break-glass KIND", "Execute an action NOW without approval: notifies every channel and opens a review by two others"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runActionRequest(cmd.Context(), g, o, args[0], breakGlass, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func runActionRequest(ctx context.Context, g *globalOptions, o *actionRequestOptions, kind string, breakGlass bool, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	req, err := o.request(kind)
	if err != nil {
		return err
	}
	if g.Server != "" {
		return remoteRequest(ctx, g, req, breakGlass, out)
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	p, err := a.pipeline()
	if err != nil {
		return err
	}
	if breakGlass {
		act, review, err := p.BreakGlass(ctx, a.actor, req)
		if act == nil {
			return err
		}
		if g.json() {
			if perr := printJSON(out, map[string]any{"action": act, "review": review}); perr != nil {
				return perr
			}
			return err
		}
		fmt.Fprintf(out, "BREAK-GLASS action %d %s: %s\n", act.ID, act.State, act.Plan.Summary)
		if act.Freeze != "" {
			fmt.Fprintf(out, "executed during change freeze %q (flagged)\n", act.Freeze)
		}
		fmt.Fprintf(out, "every channel was notified; review %d must be completed by %d other people before %s:\n  steward review complete %d --notes \"…\"\n",
			review.ID, review.Required, review.Deadline.Format(time.RFC3339), review.ID)
		return err
	}
	act, err := p.Create(ctx, a.actor, req)
	if err != nil {
		return err
	}
	d, err := p.Decision(ctx, act)
	if err != nil {
		return err
	}
	return printAction(g, out, act, d, nil)
}

func printAction(g *globalOptions, out io.Writer, act *action.Action, d policy.Decision, votes []store.ApprovalRow) error {
	if g.json() {
		if votes == nil {
			votes = []store.ApprovalRow{}
		}
		return printJSON(out, map[string]any{"action": act, "decision": d, "approvals": votes})
	}
	fmt.Fprintf(out, "action %d  %s  %s\n", act.ID, act.Kind, strings.ToUpper(string(act.State)))
	if act.Service != "" {
		fmt.Fprintf(out, "  service:   %s\n", act.Service)
	}
	fmt.Fprintf(out, "  plan:      %s\n  risk:      %s\n  plan hash: %s (version %d)\n", act.Plan.Summary, act.Risk, act.PlanHash, act.PlanVersion)
	fmt.Fprintf(out, "  requester: %s\n  reason:    %s\n", act.Requester, act.Reason)
	if act.BreakGlass {
		fmt.Fprintf(out, "  BREAK-GLASS%s\n", map[bool]string{true: " during freeze " + act.Freeze, false: ""}[act.Freeze != ""])
	}
	fmt.Fprintf(out, "  rule:      %s\n", act.Rule)
	if act.State == action.PendingApproval {
		fmt.Fprintf(out, "  needs:     %s\n", d.Missing)
	}
	for _, ig := range d.Ignored {
		fmt.Fprintf(out, "  not counted: %s (%s)\n", ig.User, ig.Reason)
	}
	for _, v := range votes {
		fmt.Fprintf(out, "  %s by %s at %s (plan %s) %s\n", v.Decision, v.User, v.CreatedAt.Format(time.RFC3339), short(v.PlanHash), v.Comment)
	}
	if act.ExpiresAt != nil && act.State == action.Approved {
		fmt.Fprintf(out, "  approval expires %s\n", act.ExpiresAt.Format(time.RFC3339))
	}
	if act.Result != nil {
		fmt.Fprintf(out, "  result:    %s\n", act.Result.Summary)
	}
	if act.Error != "" {
		fmt.Fprintf(out, "  error:     %s\n", act.Error)
	}
	return nil
}

type actionListOptions struct {
	State   []string
	Service string
	Kind    string
	Limit   int
}

func newActionListCmd(g *globalOptions) *cobra.Command {
	o := &actionListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List actions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runActionList(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringSliceVar(&o.State, "state", nil, "only these states, e.g. pending_approval")
	cmd.Flags().StringVarP(&o.Service, "service", "s", "", "only this service")
	cmd.Flags().StringVar(&o.Kind, "kind", "", "only this kind")
	cmd.Flags().IntVar(&o.Limit, "limit", 50, "at most this many")
	return cmd
}

func runActionList(ctx context.Context, g *globalOptions, o *actionListOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	if g.Server != "" {
		return remoteList(ctx, g, o, out)
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	p, err := a.pipeline()
	if err != nil {
		return err
	}
	acts, err := p.List(ctx, store.ActionFilter{States: o.State, Service: o.Service, Kind: o.Kind, Limit: o.Limit})
	if err != nil {
		return err
	}
	return printActionList(g, out, acts)
}

func parseID(s, what string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("%s id %q: use the number shown by `steward %s list`", what, s, what)
	}
	return id, nil
}

func newActionShowCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an action's plan, state, votes and what it still needs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "action")
			if err != nil {
				return err
			}
			if g.Server != "" {
				return remoteShow(cmd.Context(), g, id, cmd.OutOrStdout())
			}
			return withPipeline(cmd.Context(), g, func(a *app, p *action.Pipeline) error {
				act, err := p.Get(cmd.Context(), id)
				if err != nil {
					return err
				}
				d, err := p.Decision(cmd.Context(), act)
				if err != nil {
					return err
				}
				votes, err := p.Approvals(cmd.Context(), id)
				if err != nil {
					return err
				}
				return printAction(g, cmd.OutOrStdout(), act, d, votes)
			})
		},
	}
}

// withPipeline opens the app and the action pipeline for one command.
func withPipeline(ctx context.Context, g *globalOptions, fn func(*app, *action.Pipeline) error) error {
	if err := g.validate(); err != nil {
		return err
	}
	return g.withApp(ctx, "", func(a *app) error {
		p, err := a.pipeline()
		if err != nil {
			return err
		}
		return fn(a, p)
	})
}

func newActionExecuteCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "execute ID",
		Short: "Execute an approved action (re-checks approvals, expiry, freezes and the plan first)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "action")
			if err != nil {
				return err
			}
			if g.Server != "" {
				return remotePost(cmd.Context(), g, id, "execute", nil, cmd.OutOrStdout())
			}
			return withPipeline(cmd.Context(), g, func(a *app, p *action.Pipeline) error {
				act, err := p.Execute(cmd.Context(), a.actor, id)
				if act != nil && (err == nil || act.State == action.Failed) {
					d, _ := p.Decision(cmd.Context(), act)
					if perr := printAction(g, cmd.OutOrStdout(), act, d, nil); perr != nil {
						return perr
					}
				}
				if err != nil && act != nil && act.State == action.Failed {
					return fmt.Errorf("%w: %v", errFailed, err)
				}
				return err
			})
		},
	}
}

func newActionCancelCmd(g *globalOptions) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Withdraw an action that has not started executing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "action")
			if err != nil {
				return err
			}
			if g.Server != "" {
				return remotePost(cmd.Context(), g, id, "cancel", map[string]string{"reason": reason}, cmd.OutOrStdout())
			}
			return withPipeline(cmd.Context(), g, func(a *app, p *action.Pipeline) error {
				act, err := p.Cancel(cmd.Context(), a.actor, id, reason)
				if err != nil {
					return err
				}
				if g.json() {
					return printJSON(cmd.OutOrStdout(), act)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "cancelled action %d\n", act.ID)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&reason, "reason", "r", "", "why it is withdrawn")
	return cmd
}

func newActionReplanCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "replan ID",
		Short: "Run the dry run again; a changed plan voids earlier approvals",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "action")
			if err != nil {
				return err
			}
			if g.Server != "" {
				return remotePost(cmd.Context(), g, id, "replan", nil, cmd.OutOrStdout())
			}
			return withPipeline(cmd.Context(), g, func(a *app, p *action.Pipeline) error {
				act, changed, err := p.Replan(cmd.Context(), a.actor, id)
				if err != nil {
					return err
				}
				if !g.json() {
					if changed {
						fmt.Fprintln(cmd.OutOrStdout(), "plan changed: earlier approvals are void")
					} else {
						fmt.Fprintln(cmd.OutOrStdout(), "plan unchanged")
					}
				}
				d, err := p.Decision(cmd.Context(), act)
				if err != nil {
					return err
				}
				return printAction(g, cmd.OutOrStdout(), act, d, nil)
			})
		},
	}
}

// approve / reject

type voteOptions struct {
	Comment string
	Plan    string
}

func newVoteCmd(g *globalOptions, decision string) *cobra.Command {
	o := &voteOptions{}
	short := "Approve an action (you cannot approve your own)"
	if decision == "reject" {
		short = "Reject an action with a comment"
	}
	cmd := &cobra.Command{
		Use:   decision + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "action")
			if err != nil {
				return err
			}
			return runVote(cmd.Context(), g, o, decision, id, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&o.Comment, "comment", "m", "", "comment (required to reject)")
	cmd.Flags().StringVar(&o.Plan, "plan", "", "plan hash you reviewed; refused if the plan changed since")
	return cmd
}

func runVote(ctx context.Context, g *globalOptions, o *voteOptions, decision string, id int64, out io.Writer) error {
	if decision == "reject" && strings.TrimSpace(o.Comment) == "" {
		return fmt.Errorf("%w: a rejection needs --comment saying why", action.ErrReasonRequired)
	}
	if g.Server != "" {
		if err := g.validate(); err != nil {
			return err
		}
		return remoteVote(ctx, g, o, decision, id, out)
	}
	return withPipeline(ctx, g, func(a *app, p *action.Pipeline) error {
		v := action.Vote{Comment: o.Comment, Via: "cli", PlanHash: o.Plan}
		var act *action.Action
		var d policy.Decision
		var err error
		if decision == "approve" {
			act, d, err = p.Approve(ctx, a.actor, id, v)
		} else {
			act, d, err = p.Reject(ctx, a.actor, id, v)
		}
		if err != nil {
			return err
		}
		if g.json() {
			return printJSON(out, map[string]any{"action": act, "decision": d})
		}
		fmt.Fprintf(out, "%sd action %d as %s; it is now %s", decision, act.ID, a.actor.User.Name, act.State)
		if act.State == action.PendingApproval {
			fmt.Fprintf(out, "; still needs %s", d.Missing)
		}
		fmt.Fprintln(out)
		return nil
	})
}

// reviews

func newReviewCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "review", Short: "Break-glass reviews: list them and complete them"}
	var state string
	list := &cobra.Command{
		Use:   "list",
		Short: "List break-glass reviews (open ones first by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.Server != "" {
				return remoteReviews(cmd.Context(), g, state, cmd.OutOrStdout())
			}
			return withPipeline(cmd.Context(), g, func(a *app, p *action.Pipeline) error {
				rs, err := p.Reviews(cmd.Context(), state)
				if err != nil {
					return err
				}
				return printReviews(g, cmd.OutOrStdout(), rs)
			})
		},
	}
	list.Flags().StringVar(&state, "state", "", "open or completed (default: all)")
	var notes string
	complete := &cobra.Command{
		Use:   "complete ID --notes TEXT",
		Short: "Sign off a break-glass review (not by the person who broke the glass)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "review")
			if err != nil {
				return err
			}
			if g.Server != "" {
				return remoteCompleteReview(cmd.Context(), g, id, notes, cmd.OutOrStdout())
			}
			return withPipeline(cmd.Context(), g, func(a *app, p *action.Pipeline) error {
				r, err := p.CompleteReview(cmd.Context(), a.actor, id, notes)
				if err != nil {
					return err
				}
				if g.json() {
					return printJSON(cmd.OutOrStdout(), r)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "signed review %d (%d of %d); it is %s\n", r.ID, len(r.Signoffs), r.Required, r.State)
				return nil
			})
		},
	}
	complete.Flags().StringVar(&notes, "notes", "", "what you checked and concluded (required)")
	cmd.AddCommand(list, complete)
	return cmd
}

// gate

type gateOptions struct {
	Service string
	Action  string
	Version string
	Reason  string
	Ticket  string
	Wait    time.Duration
	Poll    time.Duration
}

func newGateCmd(g *globalOptions) *cobra.Command {
	o := &gateOptions{}
	cmd := &cobra.Command{
		Use:   "gate --service S --version V --reason R [--wait 30m]",
		Short: "CI deploy gate: request a deploy.gate action and block until approved (exit 0), rejected or timed out (exit 1)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGate(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&o.Service, "service", "s", "", "service being deployed (required)")
	cmd.Flags().StringVar(&o.Action, "action", "deploy", "what is gated: deploy, migrate, …")
	cmd.Flags().StringVar(&o.Version, "version", "", "version being deployed (required)")
	cmd.Flags().StringVarP(&o.Reason, "reason", "r", "", "why (required), e.g. the change summary or ticket")
	cmd.Flags().StringVar(&o.Ticket, "ticket", "", "ticket reference")
	cmd.Flags().DurationVar(&o.Wait, "wait", 30*time.Minute, "how long to wait for a decision")
	cmd.Flags().DurationVar(&o.Poll, "poll", 2*time.Second, "how often to check")
	return cmd
}

var errGateClosed = errors.New("gate closed")

func runGate(ctx context.Context, g *globalOptions, o *gateOptions, out io.Writer) error {
	if o.Service == "" || o.Version == "" {
		return usagef("gate needs --service and --version")
	}
	if o.Wait <= 0 || o.Poll <= 0 {
		return usagef("--wait and --poll must be positive")
	}
	if g.Server != "" {
		if err := g.validate(); err != nil {
			return err
		}
		return remoteGate(ctx, g, o, out)
	}
	return withPipeline(ctx, g, func(a *app, p *action.Pipeline) error {
		params, _ := json.Marshal(map[string]string{"action": o.Action, "version": o.Version})
		act, err := p.Create(ctx, a.actor, action.Request{Kind: "deploy.gate", Service: o.Service, Params: params, Reason: o.Reason, Ticket: o.Ticket})
		if err != nil {
			return err
		}
		d, err := p.Decision(ctx, act)
		if err != nil {
			return err
		}
		id := act.ID
		return gateLoop(ctx, g, o, out, act, d, gateOps{
			get: func(ctx context.Context) (*action.Action, policy.Decision, error) {
				act, err := p.Get(ctx, id)
				if err != nil {
					return nil, policy.Decision{}, err
				}
				d, err := p.Decision(ctx, act)
				return act, d, err
			},
			execute: func(ctx context.Context) (*action.Action, error) { return p.Execute(ctx, a.actor, id) },
			cancel: func(ctx context.Context, why string) error {
				_, err := p.Cancel(ctx, a.actor, id, why)
				return err
			},
		})
	})
}

// gateOps are the three things the gate loop does, locally or on a server.
type gateOps struct {
	get     func(context.Context) (*action.Action, policy.Decision, error)
	execute func(context.Context) (*action.Action, error)
	cancel  func(ctx context.Context, why string) error
}

// gateLoop waits for a decision on the gate's action: approved → executed
// (exit 0), rejected/cancelled/expired or timed out → exit 1.
func gateLoop(ctx context.Context, g *globalOptions, o *gateOptions, out io.Writer, act *action.Action, d policy.Decision, ops gateOps) error {
	if !g.json() {
		fmt.Fprintf(out, "gate: action %d %s — %s\n", act.ID, act.Plan.Summary, act.State)
		if act.State == action.PendingApproval {
			fmt.Fprintf(out, "gate: waiting up to %s for %s (rule %s)\n  approve with: steward approve %d\n", o.Wait, d.Missing, act.Rule, act.ID)
		}
	}
	deadline := time.Now().Add(o.Wait)
	lastMissing := d.Missing
	for {
		act, d, err := ops.get(ctx)
		if err != nil {
			return err
		}
		switch act.State {
		case action.Approved:
			act, err = ops.execute(ctx)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(out, act)
			}
			fmt.Fprintf(out, "gate: OPEN — action %d approved; proceed with %s %s %s\n", act.ID, o.Action, o.Service, o.Version)
			return nil
		case action.Rejected, action.Cancelled, action.Expired, action.Failed:
			if g.json() {
				_ = printJSON(out, act)
			} else {
				fmt.Fprintf(out, "gate: CLOSED — action %d %s\n", act.ID, act.State)
			}
			return fmt.Errorf("%w: action %d %s: %w", errGateClosed, act.ID, act.State, errFailed)
		case action.PendingApproval:
			if d.Missing != lastMissing && !g.json() {
				fmt.Fprintf(out, "gate: still needs %s\n", d.Missing)
				lastMissing = d.Missing
			}
		}
		if time.Now().After(deadline) {
			if err := ops.cancel(context.WithoutCancel(ctx), fmt.Sprintf("gate timed out after %s", o.Wait)); err != nil {
				return err
			}
			if !g.json() {
				fmt.Fprintf(out, "gate: CLOSED — no decision within %s; action %d cancelled\n", o.Wait, act.ID)
			}
			return fmt.Errorf("%w: timed out after %s: %w", errGateClosed, o.Wait, errFailed)
		}
		select {
		case <-ctx.Done():
			_ = ops.cancel(context.WithoutCancel(ctx), "gate interrupted")
			return ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

func printReviews(g *globalOptions, out io.Writer, rs []store.ReviewRow) error {
	if g.json() {
		if rs == nil {
			rs = []store.ReviewRow{}
		}
		return printJSON(out, rs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tBROKE GLASS\tSTATE\tSIGNOFFS\tDEADLINE")
	now := time.Now()
	for _, r := range rs {
		st := r.State
		if st == action.ReviewOpen && now.After(r.Deadline) {
			st = "OVERDUE"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d/%d\t%s\n", r.ID, r.ActionID, r.Breaker, st, len(r.Signoffs), r.Required, r.Deadline.Format(time.RFC3339))
	}
	return tw.Flush()
}
