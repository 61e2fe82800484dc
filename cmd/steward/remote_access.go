package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/store"
)

// The access commands against a server (--server, --token): the server's
// pipeline applies the policy, and its issue and break-glass calls hand the
// connection string to this process once, as the local path does.

func grantPath(id int64, verb string) string {
	p := "/api/v1/access/grants/" + strconv.FormatInt(id, 10)
	if verb != "" {
		p += "/" + verb
	}
	return p
}

// remoteIssued is the answer of the issue call.
type remoteIssued struct {
	Action     *action.Action     `json:"action"`
	Grant      *access.Grant      `json:"grant"`
	Credential *access.Credential `json:"credential"`
	Error      string             `json:"error"`
}

// remoteBreakGlass is the answer of the break-glass call.
type remoteBreakGlass struct {
	remoteIssued
	Review store.ReviewRow `json:"review"`
}

// remoteAccessBreakGlass issues a break-glass grant to the caller through
// the server, which checks the break_glass permission and the profile, and
// prints it as the local path does.
func remoteAccessBreakGlass(ctx context.Context, g *globalOptions, o *accessRequestOptions, svc, db, prof string, out io.Writer) error {
	body := map[string]string{"service": svc, "database": db, "profile": prof, "for": o.For, "reason": o.Reason, "ticket": o.Ticket}
	var r remoteBreakGlass
	if err := g.apiCall(ctx, http.MethodPost, "/api/v1/access/break-glass", body, &r); err != nil {
		return err
	}
	if r.Credential == nil {
		if r.Action != nil && r.Action.State == action.Failed {
			return fmt.Errorf("%w: break-glass action %d failed: %s; review %d is open all the same", errFailed, r.Action.ID, r.Action.Error, r.Review.ID)
		}
		return fmt.Errorf("server answered without a credential")
	}
	gr := access.Grant{ID: r.Credential.GrantID, Role: r.Credential.Role, ExpiresAt: r.Credential.ExpiresAt, BreakGlass: true}
	if r.Grant != nil {
		gr = *r.Grant
	}
	if err := printIssuedGrant(g, out, r.Action, gr, r.Credential); err != nil {
		return err
	}
	printBreakGlassReview(g, out, r.Review)
	if r.Error != "" {
		return fmt.Errorf("%w: grant %d was issued, then: %s", errFailed, gr.ID, r.Error)
	}
	return nil
}

// remoteGrant is the answer of the grant and revoke calls.
type remoteGrant struct {
	Grant access.Grant `json:"grant"`
	Error string       `json:"error"`
}

func remoteAccessRequest(ctx context.Context, g *globalOptions, o *accessRequestOptions, svc, db, prof string, out io.Writer) error {
	body := map[string]string{"service": svc, "database": db, "profile": prof, "for": o.For, "reason": o.Reason, "ticket": o.Ticket}
	var r remoteAction
	if err := g.apiCall(ctx, http.MethodPost, "/api/v1/access/grants", body, &r); err != nil {
		return err
	}
	act := r.Action
	if act == nil {
		return fmt.Errorf("server answered without the action")
	}
	if o.Wait <= 0 || act.State != action.PendingApproval && act.State != action.Approved {
		return printRequestedDecision(g, out, act, r.Decision)
	}
	if !g.json() {
		fmt.Fprintf(out, "requested grant action %d: %s\nwaiting up to %s for approval (steward approve %d) …\n", act.ID, act.Plan.Summary, o.Wait, act.ID)
	}
	wctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	act, err := remoteWaitApproved(wctx, g, act.ID, o.Poll)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && act != nil {
			return fmt.Errorf("%w: action %d is still %s after %s; once approved, run: steward access issue %d", errFailed, act.ID, act.State, o.Wait, act.ID)
		}
		return err
	}
	if act.State != action.Approved {
		return fmt.Errorf("%w: action %d was %s", errFailed, act.ID, act.State)
	}
	return remoteAccessIssue(ctx, g, act.ID, out)
}

// remoteWaitApproved polls the action until it is no longer pending
// approval, or ctx ends; it returns the last state seen.
func remoteWaitApproved(ctx context.Context, g *globalOptions, id int64, poll time.Duration) (*action.Action, error) {
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var last *action.Action
	for {
		var r remoteAction
		if err := g.apiGet(ctx, actionPath(id, ""), &r); err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		}
		last = r.Action
		if last == nil {
			return nil, fmt.Errorf("server answered without the action")
		}
		if last.State != action.PendingApproval && last.State != action.Planned {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-t.C:
		}
	}
}

func remoteAccessIssue(ctx context.Context, g *globalOptions, id int64, out io.Writer) error {
	var r remoteIssued
	if err := g.apiCall(ctx, http.MethodPost, grantPath(id, "issue"), nil, &r); err != nil {
		return err
	}
	if r.Credential == nil {
		if r.Action != nil && r.Action.State == action.Failed {
			return fmt.Errorf("%w: action %d failed: %s", errFailed, r.Action.ID, r.Action.Error)
		}
		return fmt.Errorf("server answered without a credential for action %d", id)
	}
	gr := access.Grant{ID: r.Credential.GrantID, Role: r.Credential.Role, ExpiresAt: r.Credential.ExpiresAt}
	if r.Grant != nil {
		gr = *r.Grant
	}
	if err := printIssuedGrant(g, out, r.Action, gr, r.Credential); err != nil {
		return err
	}
	if r.Error != "" {
		return fmt.Errorf("%w: grant %d was issued, then: %s", errFailed, gr.ID, r.Error)
	}
	return nil
}

func remoteAccessList(ctx context.Context, g *globalOptions, o *accessListOptions, out io.Writer) error {
	q := url.Values{}
	if o.Active {
		q.Set("active", "true")
	}
	if o.Service != "" {
		q.Set("service", o.Service)
	}
	q.Set("limit", strconv.Itoa(o.Limit))
	var r struct {
		Grants []access.Grant `json:"grants"`
	}
	if err := g.apiGet(ctx, "/api/v1/access/grants?"+q.Encode(), &r); err != nil {
		return err
	}
	if r.Grants == nil {
		r.Grants = []access.Grant{}
	}
	return printGrants(g, out, r.Grants)
}

func remoteAccessShow(ctx context.Context, g *globalOptions, id int64, out io.Writer) error {
	var r remoteGrant
	if err := g.apiGet(ctx, grantPath(id, ""), &r); err != nil {
		return err
	}
	return printGrant(g, out, r.Grant)
}

func remoteAccessRevoke(ctx context.Context, g *globalOptions, id int64, reason string, out io.Writer) error {
	var r remoteGrant
	if err := g.apiCall(ctx, http.MethodPost, grantPath(id, "revoke"), map[string]string{"reason": reason}, &r); err != nil {
		return err
	}
	if err := printGrant(g, out, r.Grant); err != nil {
		return err
	}
	if r.Error != "" {
		return fmt.Errorf("%w: %s; the sweeper keeps retrying", errFailed, r.Error)
	}
	return nil
}
