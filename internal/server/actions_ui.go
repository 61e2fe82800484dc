package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/policy"
	"github.com/stewardhq/steward/internal/store"
)

// maxFormBytes bounds the approval and review forms.
const maxFormBytes = 64 << 10

// uiListLimit is how many actions the list pages show.
const uiListLimit = 200

func (s *Server) actionUIRoutes(mux *http.ServeMux) {
	backToAction := func(r *http.Request) string { return "/actions/" + r.PathValue("id") }
	backToReviews := func(*http.Request) string { return "/reviews" }
	mux.Handle("GET /approvals", s.actionUI(auth.PermRead, nil, s.approvalsPage))
	mux.Handle("GET /actions", s.actionUI(auth.PermRead, nil, s.actionsPage))
	mux.Handle("GET /actions/{id}", s.actionUI(auth.PermRead, nil, s.actionPage))
	// As in the API, the pipeline decides who may vote and audits refusals.
	mux.Handle("POST /actions/{id}/approve", s.actionUI("", backToAction, s.voteForm("approve")))
	mux.Handle("POST /actions/{id}/reject", s.actionUI("", backToAction, s.voteForm("reject")))
	mux.Handle("POST /actions/{id}/issue", s.actionUI("", backToAction, s.issueForm))
	mux.Handle("GET /reviews", s.actionUI(auth.PermRead, nil, s.reviewsPage))
	mux.Handle("POST /reviews/{id}/complete", s.actionUI("", backToReviews, s.completeForm))
}

// actionUI is uiBack for the pages that need the pipeline.
func (s *Server) actionUI(perm auth.Permission, back func(*http.Request) string, h uiFunc) http.Handler {
	return s.uiBack(perm, back, func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		if s.actions == nil {
			return errActionsDisabled
		}
		return h(w, r, p)
	})
}

// flashText is what a page says after a form post succeeded; the redirect
// carries only the key, so a link cannot make a page say something else.
var flashText = map[string]string{
	"approve":  "Your approval was recorded.",
	"reject":   "Your rejection was recorded.",
	"complete": "Your review signoff was recorded.",
}

// actionItem is an action in a list.
type actionItem struct {
	*action.Action
	Age     string
	Missing string // what is still needed, while pending
}

type actionsData struct {
	Actions []actionItem
	State   string
	States  []action.State
}

func (s *Server) actionsPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := actionFilter(r)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("limit") == "" {
		f.Limit = uiListLimit
	}
	list, err := s.actions.List(r.Context(), f)
	if err != nil {
		return err
	}
	now := s.now()
	d := actionsData{Actions: make([]actionItem, 0, len(list)), States: actionStates}
	if len(f.States) == 1 {
		d.State = f.States[0]
	}
	for _, a := range list {
		d.Actions = append(d.Actions, actionItem{Action: a, Age: age(now, a.CreatedAt)})
	}
	s.render(w, r, http.StatusOK, "actions", page{Title: "Actions", Nav: "actions", User: p.User.Name, Data: d})
	return nil
}

// actionData is the action page.
type actionData struct {
	A        *action.Action
	Decision policy.Decision
	Votes    []store.ApprovalRow
	Age      string
	Details  string // the plan's details, indented JSON
	Params   string // indented JSON
	Result   string // indented JSON of the result's details
	Flash    string
	Error    *httpError
	Comment  string // what the person typed, kept when a vote is refused
	Mine     bool   // the viewer requested it
	CanVote  bool   // the viewer is eligible for one of the approval groups
	Pending  bool   // votes are possible
	Issuable bool   // an approved access grant: its requester may issue it
}

func (s *Server) actionPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "action")
	if err != nil {
		return err
	}
	return s.renderAction(w, r, p, id, http.StatusOK, actionData{Flash: flashText[r.URL.Query().Get("done")]})
}

// renderAction shows action id with the flash, error and comment in d.
func (s *Server) renderAction(w http.ResponseWriter, r *http.Request, p auth.Principal, id int64, status int, d actionData) error {
	ctx := r.Context()
	a, err := s.actions.Get(ctx, id)
	if err != nil {
		return err
	}
	if d.Decision, err = s.actions.Decision(ctx, a); err != nil {
		return err
	}
	if d.Votes, err = s.actions.Approvals(ctx, id); err != nil {
		return err
	}
	d.A, d.Age = a, age(s.now(), a.CreatedAt)
	d.Details = indentJSON(a.Plan.Details)
	d.Params = indentJSON(a.Params)
	if a.Result != nil {
		d.Result = indentJSON(a.Result.Details)
	}
	d.Mine = a.Requester == p.User.Name
	d.CanVote = canVote(p, d.Decision)
	d.Pending = a.State == action.PendingApproval
	d.Issuable = a.Kind == access.KindName && a.State == action.Approved && s.access != nil
	s.render(w, r, status, "action", page{Title: fmt.Sprintf("Action #%d", a.ID), Nav: "approvals", User: p.User.Name, Data: d})
	return nil
}

// indentJSON renders v for people; "" when there is nothing to show.
func indentJSON(v any) string {
	if raw, ok := v.(json.RawMessage); ok {
		var x any
		if json.Unmarshal(raw, &x) != nil {
			return string(raw)
		}
		v = x
	}
	switch x := v.(type) {
	case nil:
		return ""
	case map[string]any:
		if len(x) == 0 {
			return ""
		}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("%w: unreadable form: %v", errBadRequest, err)
	}
	return nil
}

// voteForm records an approve or reject from the action page, then sends
// the browser back to the page (post/redirect/get). A refused vote shows
// the page again with the refusal and the comment typed.
func (s *Server) voteForm(decision string) uiFunc {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := pathID(r, "action")
		if err != nil {
			return err
		}
		if err := parseForm(w, r); err != nil {
			return err
		}
		v := action.Vote{Comment: r.PostForm.Get("comment"), Via: viaUI, PlanHash: r.PostForm.Get("plan_hash")}
		vote := s.actions.Approve
		if decision == "reject" {
			vote = s.actions.Reject
		}
		_, _, err = vote(r.Context(), p, id, v)
		if r.PostForm.Get("card") != "" && r.Header.Get("HX-Request") == "true" {
			// The approvals page's htmx form: answer with the action's
			// card, showing the vote or the refusal.
			return s.voteCard(w, r, p, id, decision, v.Comment, err)
		}
		if err != nil {
			if !showOnPage(err) {
				return err
			}
			he := s.fail(r, err)
			return s.renderAction(w, r, p, id, he.Status, actionData{Error: &he, Comment: v.Comment})
		}
		http.Redirect(w, r, fmt.Sprintf("/actions/%d?done=%s", id, decision), http.StatusSeeOther)
		return nil
	}
}

// issuedData is the page that shows a grant's connection string, once.
type issuedData struct {
	Action  *action.Action
	Grant   *access.Grant
	DSN     string
	Command string // a client command line for the engine
	Error   string // a step after the handover failed
}

// issueForm issues an approved grant to its requester and shows the
// connection string on the answer to this post, once: the page is not
// stored, and posting again is refused as already issued.
func (s *Server) issueForm(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "action")
	if err != nil {
		return err
	}
	if err := parseForm(w, r); err != nil {
		return err
	}
	if s.access == nil {
		return errAccessDisabled
	}
	out, err := s.issueGrant(r.Context(), p, s.access, id)
	if err != nil {
		if !showOnPage(err) {
			return err
		}
		he := s.fail(r, err)
		return s.renderAction(w, r, p, id, he.Status, actionData{Error: &he})
	}
	if out.Credential == nil {
		// The kind failed: the action's page shows why.
		http.Redirect(w, r, fmt.Sprintf("/actions/%d", id), http.StatusSeeOther)
		return nil
	}
	c := out.Credential
	d := issuedData{Action: out.Action, Grant: out.Grant, DSN: out.DSN, Error: out.Error}
	switch c.Engine {
	case "postgres":
		d.Command = fmt.Sprintf("psql %q", c.DSN)
	case "mysql":
		d.Command = fmt.Sprintf("mariadb -h %s -P %s -u %s -p'%s' %s", c.Host, c.Port, c.Role, c.Password, c.Database)
	}
	noStore(w)
	s.render(w, r, http.StatusOK, "issued", page{Title: fmt.Sprintf("Grant #%d issued", out.Grant.ID), Nav: "approvals", User: p.User.Name, Data: d})
	return nil
}

// reviewItem is a review on the reviews page.
type reviewItem struct {
	reviewJSON
	Signed bool // the viewer signed it already
	Mine   bool // the viewer broke the glass
	Action *action.Action
}

type reviewsData struct {
	Open      []reviewItem
	Completed []reviewItem
	Flash     string
	Error     *httpError
	ErrorID   int64 // the review the error is about
	Notes     string
}

// completedShown is how many completed reviews the page lists.
const completedShown = 20

func (s *Server) reviewsPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return s.renderReviews(w, r, p, http.StatusOK, reviewsData{Flash: flashText[r.URL.Query().Get("done")]})
}

func (s *Server) renderReviews(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, d reviewsData) error {
	ctx := r.Context()
	rows, err := s.actions.Reviews(ctx, "")
	if err != nil {
		return err
	}
	for _, row := range rows {
		it := reviewItem{reviewJSON: s.reviewView(row), Mine: row.Breaker == p.User.Name}
		it.Signed = slices.ContainsFunc(row.Signoffs, func(so store.Signoff) bool { return so.User == p.User.Name })
		if row.State == action.ReviewOpen {
			if it.Action, err = s.actions.Get(ctx, row.ActionID); err != nil {
				return err
			}
			d.Open = append(d.Open, it)
		} else if len(d.Completed) < completedShown {
			d.Completed = append(d.Completed, it)
		}
	}
	s.render(w, r, status, "reviews", page{Title: "Break-glass reviews", Nav: "reviews", User: p.User.Name, Data: d})
	return nil
}

func (s *Server) completeForm(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "review")
	if err != nil {
		return err
	}
	if err := parseForm(w, r); err != nil {
		return err
	}
	notes := r.PostForm.Get("notes")
	if _, err := s.actions.CompleteReview(r.Context(), p, id, notes); err != nil {
		if !showOnPage(err) {
			return err
		}
		he := s.fail(r, err)
		return s.renderReviews(w, r, p, he.Status, reviewsData{Error: &he, ErrorID: id, Notes: notes})
	}
	http.Redirect(w, r, "/reviews?done=complete", http.StatusSeeOther)
	return nil
}

// showOnPage reports whether a refused form post is shown on the page the
// form is on (a refusal the person can act on), rather than as an error
// page (no such thing, a server problem).
func showOnPage(err error) bool {
	st := errorStatus(err).Status
	return st >= 400 && st < 500 && st != http.StatusNotFound && st != http.StatusUnauthorized && st != statusClientClosed
}

// shortHash abbreviates a plan hash for people.
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
