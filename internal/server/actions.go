package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/store"
)

// Via values of votes cast through the server.
const (
	viaAPI   = "api"
	viaUI    = "ui"
	viaSlack = "slack"
)

// maxBodyBytes bounds JSON request bodies.
const maxBodyBytes = 1 << 20

const (
	defaultActionLimit = 100
	maxActionLimit     = 1000
)

// actionStates are the states a listing may filter on.
var actionStates = []action.State{action.Planned, action.PendingApproval, action.Approved, action.Executing,
	action.Succeeded, action.Failed, action.Rejected, action.Expired, action.Cancelled}

func (s *Server) actionRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/actions", s.actionAPI(auth.PermRead, s.apiActions))
	// The pipeline checks what each caller may do (operate, eligibility
	// under the policy, break_glass) and audits refusals, so the mutating
	// routes only authenticate.
	mux.Handle("POST /api/v1/actions", s.actionAPI("", s.apiCreateAction))
	mux.Handle("POST /api/v1/actions/break-glass", s.actionAPI("", s.apiBreakGlass))
	mux.Handle("GET /api/v1/actions/{id}", s.actionAPI(auth.PermRead, s.apiAction))
	mux.Handle("POST /api/v1/actions/{id}/approve", s.actionAPI("", s.apiVote("approve")))
	mux.Handle("POST /api/v1/actions/{id}/reject", s.actionAPI("", s.apiVote("reject")))
	mux.Handle("POST /api/v1/actions/{id}/execute", s.actionAPI("", s.apiExecute))
	mux.Handle("POST /api/v1/actions/{id}/cancel", s.actionAPI("", s.apiCancel))
	mux.Handle("POST /api/v1/actions/{id}/replan", s.actionAPI("", s.apiReplan))
	mux.Handle("GET /api/v1/reviews", s.actionAPI(auth.PermRead, s.apiReviews))
	mux.Handle("POST /api/v1/reviews/{id}/complete", s.actionAPI("", s.apiCompleteReview))
	mux.HandleFunc("POST /api/v1/slack/interactions", s.slackInteraction)
	s.accessRoutes(mux)
}

// actionAPI is api for the routes that need the pipeline: 503 without one.
func (s *Server) actionAPI(perm auth.Permission, h apiFunc) http.Handler {
	return s.api(perm, func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		if s.actions == nil {
			return errActionsDisabled
		}
		return h(w, r, p)
	})
}

// decodeBody decodes a JSON object from the request body into v. Unknown
// fields are refused, so that a misspelt "coment" is not silently dropped.
// An empty body leaves v as it is unless required.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, required bool) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
	case errors.As(err, &tooBig):
		return fmt.Errorf("%w: more than %d bytes", errTooLarge, tooBig.Limit)
	case errors.Is(err, io.EOF):
		if !required {
			return nil
		}
		return fmt.Errorf("%w: the request body is empty; send a JSON object", errBadRequest)
	default:
		return fmt.Errorf("%w: the request body is not a valid JSON object: %v", errBadRequest, err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the request body has data after its JSON object", errBadRequest)
	}
	return nil
}

// pathID reads the {id} path parameter.
func pathID(r *http.Request, what string) (int64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: %s id must be a positive integer, not %q", errBadRequest, what, v)
	}
	return id, nil
}

// actionFilter reads the listing parameters state (comma-separated),
// service, kind and limit.
func actionFilter(r *http.Request) (store.ActionFilter, error) {
	q := r.URL.Query()
	f := store.ActionFilter{Service: q.Get("service"), Kind: q.Get("kind"), Limit: defaultActionLimit}
	for st := range strings.SplitSeq(q.Get("state"), ",") {
		st = strings.TrimSpace(st)
		if st == "" {
			continue
		}
		if !slices.Contains(actionStates, action.State(st)) {
			names := make([]string, len(actionStates))
			for i, s := range actionStates {
				names[i] = string(s)
			}
			return f, fmt.Errorf("%w: unknown state %q; states are %s", errBadRequest, st, strings.Join(names, ", "))
		}
		f.States = append(f.States, st)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxActionLimit {
			return f, fmt.Errorf("%w: limit must be an integer from 1 to %d, not %q", errBadRequest, maxActionLimit, v)
		}
		f.Limit = n
	}
	return f, nil
}

func (s *Server) apiActions(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	f, err := actionFilter(r)
	if err != nil {
		return err
	}
	list, err := s.actions.List(r.Context(), f)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*action.Action{}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"actions": list})
	return nil
}

func (s *Server) apiCreateAction(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var req action.Request
	if err := decodeBody(w, r, &req, true); err != nil {
		return err
	}
	a, err := s.actions.Create(r.Context(), p, req)
	if err != nil {
		return err
	}
	d, err := s.actions.Decision(r.Context(), a)
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/actions/%d", a.ID))
	s.writeJSON(w, r, http.StatusCreated, map[string]any{"action": a, "decision": d})
	return nil
}

func (s *Server) apiAction(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := pathID(r, "action")
	if err != nil {
		return err
	}
	ctx := r.Context()
	a, err := s.actions.Get(ctx, id)
	if err != nil {
		return err
	}
	d, err := s.actions.Decision(ctx, a)
	if err != nil {
		return err
	}
	votes, err := s.actions.Approvals(ctx, id)
	if err != nil {
		return err
	}
	if votes == nil {
		votes = []store.ApprovalRow{}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"action": a, "decision": d, "approvals": votes})
	return nil
}

// voteRequest is the body of approve and reject. PlanHash, when given, pins
// the vote to the plan the caller reviewed.
type voteRequest struct {
	Comment  string `json:"comment"`
	PlanHash string `json:"plan_hash"`
}

func (s *Server) apiVote(decision string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := pathID(r, "action")
		if err != nil {
			return err
		}
		var body voteRequest
		if err := decodeBody(w, r, &body, false); err != nil {
			return err
		}
		v := action.Vote{Comment: body.Comment, Via: viaAPI, PlanHash: body.PlanHash}
		vote := s.actions.Approve
		if decision == "reject" {
			vote = s.actions.Reject
		}
		a, d, err := vote(r.Context(), p, id, v)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, map[string]any{"action": a, "decision": d})
		return nil
	}
}

// apiExecute runs an approved action. An action whose kind failed is still
// an answer, not an API error: 200 with state "failed" and its error.
func (s *Server) apiExecute(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "action")
	if err != nil {
		return err
	}
	a, err := s.actions.Execute(r.Context(), p, id)
	if err != nil && (a == nil || a.State != action.Failed) {
		return err
	}
	if err != nil {
		s.log.Info("action failed", "action", id, "actor", p.Actor(), "err", err)
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"action": a})
	return nil
}

type cancelRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) apiCancel(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "action")
	if err != nil {
		return err
	}
	var body cancelRequest
	if err := decodeBody(w, r, &body, false); err != nil {
		return err
	}
	a, err := s.actions.Cancel(r.Context(), p, id, body.Reason)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"action": a})
	return nil
}

func (s *Server) apiReplan(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "action")
	if err != nil {
		return err
	}
	a, changed, err := s.actions.Replan(r.Context(), p, id)
	if err != nil {
		return err
	}
	d, err := s.actions.Decision(r.Context(), a)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"action": a, "changed": changed, "decision": d})
	return nil
}

// apiBreakGlass executes at once and opens a review. As with execute, a
// kind that failed is an answer (201, state "failed"): the glass is broken
// and the review open either way.
func (s *Server) apiBreakGlass(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var req action.Request
	if err := decodeBody(w, r, &req, true); err != nil {
		return err
	}
	a, review, err := s.actions.BreakGlass(r.Context(), p, req)
	if err != nil && (a == nil || a.State != action.Failed) {
		return err
	}
	if err != nil {
		s.log.Info("break-glass action failed", "action", a.ID, "actor", p.Actor(), "err", err)
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/actions/%d", a.ID))
	s.writeJSON(w, r, http.StatusCreated, map[string]any{"action": a, "review": s.reviewView(review)})
	return nil
}

// reviewJSON is a break-glass review as the API shows it.
type reviewJSON struct {
	store.ReviewRow
	// Overdue: open past its deadline.
	Overdue bool `json:"overdue"`
}

func (s *Server) reviewView(r store.ReviewRow) reviewJSON {
	if r.Signoffs == nil {
		r.Signoffs = []store.Signoff{}
	}
	return reviewJSON{ReviewRow: r, Overdue: r.State == action.ReviewOpen && s.now().After(r.Deadline)}
}

// reviewStates are the states a review listing may filter on.
var reviewStates = []string{action.ReviewOpen, action.ReviewCompleted}

func (s *Server) apiReviews(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	state := r.URL.Query().Get("state")
	if state != "" && !slices.Contains(reviewStates, state) {
		return fmt.Errorf("%w: unknown review state %q; states are %s", errBadRequest, state, strings.Join(reviewStates, ", "))
	}
	rows, err := s.actions.Reviews(r.Context(), state)
	if err != nil {
		return err
	}
	out := make([]reviewJSON, 0, len(rows))
	for _, row := range rows {
		out = append(out, s.reviewView(row))
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"reviews": out})
	return nil
}

type completeRequest struct {
	Notes string `json:"notes"`
}

func (s *Server) apiCompleteReview(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "review")
	if err != nil {
		return err
	}
	var body completeRequest
	if err := decodeBody(w, r, &body, true); err != nil {
		return err
	}
	review, err := s.actions.CompleteReview(r.Context(), p, id, body.Notes)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"review": s.reviewView(review)})
	return nil
}

// age says how long ago t was, coarsely: "45s", "12m", "3h", "2d".
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d/time.Second)))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
}
