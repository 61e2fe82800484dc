package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/policy"
	"github.com/stewardhq/steward/internal/store"
)

// The action commands work against a server with --server and --token, so a
// CI runner or a laptop needs neither the store nor the config: the server's
// pipeline applies the same policy, refusals and audit.

type remoteAction struct {
	Action    *action.Action      `json:"action"`
	Decision  policy.Decision     `json:"decision"`
	Approvals []store.ApprovalRow `json:"approvals"`
	Review    *store.ReviewRow    `json:"review"`
	Changed   bool                `json:"changed"`
}

func actionPath(id int64, verb string) string {
	p := "/api/v1/actions/" + strconv.FormatInt(id, 10)
	if verb != "" {
		p += "/" + verb
	}
	return p
}

func remoteRequest(ctx context.Context, g *globalOptions, req action.Request, breakGlass bool, out io.Writer) error {
	path := "/api/v1/actions"
	if breakGlass {
		path += "/break-glass"
	}
	var r remoteAction
	if err := g.apiCall(ctx, http.MethodPost, path, req, &r); err != nil {
		return err
	}
	if breakGlass {
		if g.json() {
			return printJSON(out, r)
		}
		fmt.Fprintf(out, "BREAK-GLASS action %d %s: %s\n", r.Action.ID, r.Action.State, r.Action.Plan.Summary)
		if r.Review != nil {
			fmt.Fprintf(out, "every channel was notified; review %d must be completed by %d other people before %s\n",
				r.Review.ID, r.Review.Required, r.Review.Deadline.Format(time.RFC3339))
		}
		return nil
	}
	return printAction(g, out, r.Action, r.Decision, nil)
}

func remoteShow(ctx context.Context, g *globalOptions, id int64, out io.Writer) error {
	var r remoteAction
	if err := g.apiGet(ctx, actionPath(id, ""), &r); err != nil {
		return err
	}
	return printAction(g, out, r.Action, r.Decision, r.Approvals)
}

func remoteList(ctx context.Context, g *globalOptions, o *actionListOptions, out io.Writer) error {
	q := url.Values{}
	if len(o.State) > 0 {
		q.Set("state", strings.Join(o.State, ","))
	}
	if o.Service != "" {
		q.Set("service", o.Service)
	}
	if o.Kind != "" {
		q.Set("kind", o.Kind)
	}
	q.Set("limit", strconv.Itoa(o.Limit))
	var r struct {
		Actions []*action.Action `json:"actions"`
	}
	if err := g.apiGet(ctx, "/api/v1/actions?"+q.Encode(), &r); err != nil {
		return err
	}
	return printActionList(g, out, r.Actions)
}

func printActionList(g *globalOptions, out io.Writer, acts []*action.Action) error {
	if g.json() {
		if acts == nil {
			acts = []*action.Action{}
		}
		return printJSON(out, acts)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSERVICE\tSTATE\tRISK\tREQUESTER\tCREATED\tSUMMARY")
	for _, x := range acts {
		state := string(x.State)
		if x.BreakGlass {
			state += " (break-glass)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.ID, x.Kind, x.Service, state, x.Risk, x.Requester, x.CreatedAt.Format("2006-01-02 15:04"), x.Plan.Summary)
	}
	return tw.Flush()
}

func remoteVote(ctx context.Context, g *globalOptions, o *voteOptions, decision string, id int64, out io.Writer) error {
	var r remoteAction
	body := map[string]string{"comment": o.Comment, "plan_hash": o.Plan}
	if err := g.apiCall(ctx, http.MethodPost, actionPath(id, decision), body, &r); err != nil {
		return err
	}
	if g.json() {
		return printJSON(out, r)
	}
	fmt.Fprintf(out, "%sd action %d; it is now %s", decision, r.Action.ID, r.Action.State)
	if r.Action.State == action.PendingApproval {
		fmt.Fprintf(out, "; still needs %s", r.Decision.Missing)
	}
	fmt.Fprintln(out)
	return nil
}

// remotePost runs a verb (execute, cancel, replan) on an action.
func remotePost(ctx context.Context, g *globalOptions, id int64, verb string, body any, out io.Writer) error {
	var r remoteAction
	if err := g.apiCall(ctx, http.MethodPost, actionPath(id, verb), body, &r); err != nil {
		return err
	}
	if r.Action == nil {
		return fmt.Errorf("server answered without the action")
	}
	if verb == "replan" && !g.json() {
		if r.Changed {
			fmt.Fprintln(out, "plan changed: earlier approvals are void")
		} else {
			fmt.Fprintln(out, "plan unchanged")
		}
	}
	if err := printAction(g, out, r.Action, r.Decision, nil); err != nil {
		return err
	}
	if verb == "execute" && r.Action.State == action.Failed {
		return fmt.Errorf("%w: action %d failed: %s", errFailed, r.Action.ID, r.Action.Error)
	}
	return nil
}

func remoteReviews(ctx context.Context, g *globalOptions, state string, out io.Writer) error {
	q := ""
	if state != "" {
		q = "?state=" + url.QueryEscape(state)
	}
	var r struct {
		Reviews []store.ReviewRow `json:"reviews"`
	}
	if err := g.apiGet(ctx, "/api/v1/reviews"+q, &r); err != nil {
		return err
	}
	return printReviews(g, out, r.Reviews)
}

func remoteCompleteReview(ctx context.Context, g *globalOptions, id int64, notes string, out io.Writer) error {
	var r struct {
		Review store.ReviewRow `json:"review"`
	}
	path := "/api/v1/reviews/" + strconv.FormatInt(id, 10) + "/complete"
	if err := g.apiCall(ctx, http.MethodPost, path, map[string]string{"notes": notes}, &r); err != nil {
		return err
	}
	if g.json() {
		return printJSON(out, r.Review)
	}
	fmt.Fprintf(out, "signed review %d (%d of %d); it is %s\n", r.Review.ID, len(r.Review.Signoffs), r.Review.Required, r.Review.State)
	return nil
}

// remoteGate is the CI gate against a server.
func remoteGate(ctx context.Context, g *globalOptions, o *gateOptions, out io.Writer) error {
	params, _ := json.Marshal(map[string]string{"action": o.Action, "version": o.Version})
	var r remoteAction
	req := action.Request{Kind: "deploy.gate", Service: o.Service, Params: params, Reason: o.Reason, Ticket: o.Ticket}
	if err := g.apiCall(ctx, http.MethodPost, "/api/v1/actions", req, &r); err != nil {
		return err
	}
	id := r.Action.ID
	return gateLoop(ctx, g, o, out, r.Action, r.Decision, gateOps{
		get: func(ctx context.Context) (*action.Action, policy.Decision, error) {
			var r remoteAction
			err := g.apiGet(ctx, actionPath(id, ""), &r)
			return r.Action, r.Decision, err
		},
		execute: func(ctx context.Context) (*action.Action, error) {
			var r remoteAction
			err := g.apiCall(ctx, http.MethodPost, actionPath(id, "execute"), nil, &r)
			return r.Action, err
		},
		cancel: func(ctx context.Context, why string) error {
			return g.apiCall(ctx, http.MethodPost, actionPath(id, "cancel"), map[string]string{"reason": why}, nil)
		},
	})
}
