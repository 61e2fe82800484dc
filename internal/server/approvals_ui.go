package server

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/policy"
	"github.com/stewardhq/steward/internal/store"
)

// approvalCard is one pending (or just decided) action on the approvals
// page: its plan, risk, who must still approve and, for an eligible
// viewer, the approve and reject forms. The forms post with htmx and the
// answer is the card again (voteCard), so voting needs no page reload;
// without JavaScript they are ordinary posts that end on the action's page.
type approvalCard struct {
	A        *action.Action
	Age      string
	Decision policy.Decision
	Votes    []store.ApprovalRow
	Details  string // the plan's details, indented JSON
	Mine     bool   // the viewer requested it
	Voted    string // the viewer's vote on this plan ("" none)
	CanVote  bool   // the viewer is in a group that still takes votes
	Flash    string
	Error    *httpError
	Comment  string
	CSRF     string
}

type approvalsData struct {
	Cards []approvalCard
}

// canVote reports whether the viewer is eligible for any approval group
// of the decision: user:NAME names them, role:NAME is any holder.
func canVote(p auth.Principal, d policy.Decision) bool {
	for _, g := range d.Groups {
		for _, f := range g.From {
			kind, name, _ := strings.Cut(f, ":")
			if (kind == "user" && name == p.User.Name) || (kind == "role" && slices.Contains(p.User.Roles, name)) {
				return true
			}
		}
	}
	return false
}

// card loads the decision and votes of a and fills in what the viewer may do.
func (s *Server) card(ctx context.Context, p auth.Principal, a *action.Action, csrf string) (approvalCard, error) {
	c := approvalCard{A: a, Age: age(s.now(), a.CreatedAt), Details: indentJSON(a.Plan.Details), CSRF: csrf}
	var err error
	if c.Decision, err = s.actions.Decision(ctx, a); err != nil {
		return c, err
	}
	if c.Votes, err = s.actions.Approvals(ctx, a.ID); err != nil {
		return c, err
	}
	c.Mine = a.Requester == p.User.Name
	for _, v := range c.Votes {
		if v.User == p.User.Name && v.PlanHash == a.PlanHash {
			c.Voted = v.Decision
		}
	}
	c.CanVote = a.State == action.PendingApproval && !c.Mine && c.Voted == "" && canVote(p, c.Decision)
	return c, nil
}

func (s *Server) approvalsPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	list, err := s.actions.List(ctx, store.ActionFilter{States: []string{string(action.PendingApproval)}, Limit: uiListLimit})
	if err != nil {
		return err
	}
	csrf := requestCSRF(r)
	d := approvalsData{Cards: make([]approvalCard, 0, len(list))}
	for _, a := range list {
		c, err := s.card(ctx, p, a, csrf)
		if err != nil {
			return err
		}
		d.Cards = append(d.Cards, c)
	}
	s.render(w, r, http.StatusOK, "approvals", page{Title: "Approvals", Nav: "approvals", User: p.User.Name, Data: d})
	return nil
}

// voteCard answers an htmx vote from the approvals page with the action's
// card: the vote recorded, or the refusal (with its status, which htmx
// swaps in too) and the comment typed.
func (s *Server) voteCard(w http.ResponseWriter, r *http.Request, p auth.Principal, id int64, decision, comment string, voteErr error) error {
	status := http.StatusOK
	var he *httpError
	if voteErr != nil {
		if !showOnPage(voteErr) {
			return voteErr
		}
		e := s.fail(r, voteErr)
		status, he = e.Status, &e
	}
	a, err := s.actions.Get(r.Context(), id)
	if err != nil {
		return err
	}
	c, err := s.card(r.Context(), p, a, requestCSRF(r))
	if err != nil {
		return err
	}
	c.Error = he
	if he == nil {
		c.Flash = flashText[decision]
	} else {
		c.Comment = comment
	}
	s.renderTemplate(w, r, status, "approvals", "approval_card", c)
	return nil
}
