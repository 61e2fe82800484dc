package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
)

// The access routes: just-in-time database grants. A grant's connection
// string exists once, in the answer to its requester's issue call (API or
// UI); the server neither stores, logs nor audits it.

// errAccessDisabled answers the access routes of a server whose pipeline
// has no access.grant kind.
var errAccessDisabled = errors.New("access grants are not enabled")

// errAlreadyIssued refuses a second issue of the same grant action.
var errAlreadyIssued = errors.New("already issued")

const (
	defaultGrantLimit = 100
	maxGrantLimit     = 1000
)

func (s *Server) accessRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/access/grants", s.accessAPI(auth.PermRead, s.apiGrants))
	// As with actions, the pipeline and the access package check what each
	// caller may do (operate, the requester only) and audit it.
	mux.Handle("POST /api/v1/access/grants", s.accessAPI("", s.apiRequestGrant))
	mux.Handle("GET /api/v1/access/grants/{id}", s.accessAPI(auth.PermRead, s.apiGrant))
	mux.Handle("POST /api/v1/access/grants/{id}/issue", s.accessAPI("", s.apiIssueGrant))
	mux.Handle("POST /api/v1/access/grants/{id}/revoke", s.accessAPI("", s.apiRevokeGrant))
	// The pipeline refuses (and audits) a caller without break_glass; the
	// access package refuses a profile without break-glass or a duration
	// over its break_glass_max.
	mux.Handle("POST /api/v1/access/break-glass", s.accessAPI("", s.apiBreakGlassGrant))
}

// accessDepsOf returns the dependencies of the pipeline's access.grant
// kind, or nil when it has none.
func accessDepsOf(p *action.Pipeline) *access.Deps {
	if p == nil {
		return nil
	}
	k, err := p.Kinds().Get(access.KindName)
	if err != nil {
		return nil
	}
	gk, ok := k.(*access.GrantKind)
	if !ok {
		return nil
	}
	return gk.Deps()
}

type accessFunc func(w http.ResponseWriter, r *http.Request, p auth.Principal, d *access.Deps) error

// accessAPI is actionAPI for the routes that need the access.grant kind.
func (s *Server) accessAPI(perm auth.Permission, h accessFunc) http.Handler {
	return s.actionAPI(perm, func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		if s.access == nil {
			return errAccessDisabled
		}
		return h(w, r, p, s.access)
	})
}

// grantRequest is the body of POST /api/v1/access/grants.
type grantRequest struct {
	Service  string `json:"service"`
	Database string `json:"database"`
	Profile  string `json:"profile"`
	For      string `json:"for"`
	Reason   string `json:"reason"`
	Ticket   string `json:"ticket"`
}

// apiRequestGrant creates an access.grant action, which then needs
// approvals like any other.
func (s *Server) apiRequestGrant(w http.ResponseWriter, r *http.Request, p auth.Principal, _ *access.Deps) error {
	req, err := decodeGrantRequest(w, r, false)
	if err != nil {
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

// decodeGrantRequest reads a grantRequest body into the action request of
// a grant.
func decodeGrantRequest(w http.ResponseWriter, r *http.Request, breakGlass bool) (action.Request, error) {
	var body grantRequest
	if err := decodeBody(w, r, &body, true); err != nil {
		return action.Request{}, err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"service", body.Service}, {"database", body.Database}, {"profile", body.Profile}} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return action.Request{}, fmt.Errorf("%w: %s required, e.g. {\"service\": \"shop\", \"database\": \"main\", \"profile\": \"read-only\", \"for\": \"1h\", \"reason\": \"INC-42\"}",
			errBadRequest, strings.Join(missing, ", "))
	}
	return access.Request(body.Service, body.Database, body.Profile, body.For, body.Reason, body.Ticket, breakGlass), nil
}

// issuedJSON is the answer of an issue call: the only place the connection
// string ever appears. Error is set when the role was created and handed
// over but a later step (verification) failed.
type issuedJSON struct {
	Action     *action.Action     `json:"action"`
	Grant      *access.Grant      `json:"grant,omitempty"`
	DSN        string             `json:"dsn,omitempty"`
	Credential *access.Credential `json:"credential,omitempty"`
	Error      string             `json:"error,omitempty"`
}

// apiIssueGrant executes an approved grant action for its requester and
// hands over the connection string, once. A grant the database refused is
// an answer, as with execute: 200 with the action "failed" and no
// credential.
func (s *Server) apiIssueGrant(w http.ResponseWriter, r *http.Request, p auth.Principal, d *access.Deps) error {
	id, err := pathID(r, "action")
	if err != nil {
		return err
	}
	out, err := s.issueGrant(r.Context(), p, d, id)
	if err != nil {
		return err
	}
	noStore(w)
	if out.Credential == nil {
		s.writeJSON(w, r, http.StatusOK, out)
		return nil
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/access/grants/%d", out.Credential.GrantID))
	s.writeJSON(w, r, http.StatusCreated, out)
	return nil
}

// noStore keeps a page or answer holding a credential out of every cache.
func noStore(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
}

// issueGrant runs action id for p, who must have requested it. It returns
// an error for a refusal; a kind that failed is an answer without a
// credential, its action "failed".
func (s *Server) issueGrant(ctx context.Context, p auth.Principal, d *access.Deps, id int64) (issuedJSON, error) {
	a, err := s.actions.Get(ctx, id)
	if err != nil {
		return issuedJSON{}, err
	}
	if err := s.mayIssue(ctx, p, a); err != nil {
		return issuedJSON{}, err
	}
	// The credential exists only in this call: finish issuing even if the
	// client goes away, so the grant is recorded whole either way.
	ctx = context.WithoutCancel(ctx)
	a, cred, err := access.Issue(ctx, s.actions, p, id)
	if cred == nil {
		if err == nil {
			return issuedJSON{}, fmt.Errorf("action %d issued no credential", id)
		}
		if a != nil && a.State == action.Failed {
			s.log.Info("grant not issued", "action", id, "actor", p.Actor(), "err", err)
			return issuedJSON{Action: a, Error: a.Error}, nil
		}
		// Another call may have issued it in the meantime.
		if cur, gerr := s.actions.Get(ctx, id); gerr == nil && (cur.State == action.Executing || cur.State == action.Succeeded) {
			return issuedJSON{}, alreadyIssued(cur)
		}
		return issuedJSON{}, err
	}
	return s.issued(ctx, p, d, a, cred, err), nil
}

// issued is the answer that hands cred over, with the grant as recorded.
// err is a step that failed after the role was created: the credential is
// the requester's all the same, and the answer says what went wrong. The
// log names the grant and the role, never the connection string.
func (s *Server) issued(ctx context.Context, p auth.Principal, d *access.Deps, a *action.Action, cred *access.Credential, err error) issuedJSON {
	out := issuedJSON{Action: a, DSN: cred.DSN, Credential: cred}
	var id int64
	if a != nil {
		id = a.ID
	}
	if err != nil {
		s.log.Warn("grant issued, then a step failed", "action", id, "grant", cred.GrantID, "actor", p.Actor(), "err", err)
		out.Error = err.Error()
	}
	g, gerr := access.Get(ctx, d, cred.GrantID)
	if gerr != nil {
		s.log.Error("read issued grant", "grant", cred.GrantID, "err", gerr)
		g = access.Grant{ID: cred.GrantID, ActionID: id, Role: cred.Role, Engine: cred.Engine, Database: cred.Database,
			Requester: p.User.Name, ExpiresAt: cred.ExpiresAt, State: access.StateActive, BreakGlass: a != nil && a.BreakGlass}
	}
	out.Grant = &g
	s.log.Info("grant issued", "action", id, "grant", cred.GrantID, "role", cred.Role, "actor", p.Actor(), "break_glass", g.BreakGlass)
	return out
}

// breakGlassJSON is the answer of a break-glass grant: the issue answer
// and the review that break-glass opened.
type breakGlassJSON struct {
	issuedJSON
	Review reviewJSON `json:"review"`
}

// apiBreakGlassGrant issues a grant at once, without approvals, to the
// caller, through the pipeline's break-glass path: every channel is
// notified, the action and the grant are flagged and a review is opened.
// The connection string is in this answer only (201). As with the break-
// glass of any action, a grant the database refused is an answer too: 201
// with the action "failed", its review and no credential, since the glass
// is broken and the review open either way.
func (s *Server) apiBreakGlassGrant(w http.ResponseWriter, r *http.Request, p auth.Principal, d *access.Deps) error {
	req, err := decodeGrantRequest(w, r, true)
	if err != nil {
		return err
	}
	// The credential exists only in this call: finish issuing even if the
	// client goes away, so the grant is recorded whole either way.
	ctx := context.WithoutCancel(r.Context())
	a, review, cred, err := access.BreakGlass(ctx, s.actions, p, req)
	noStore(w)
	if cred == nil {
		if a == nil || a.State != action.Failed {
			if err == nil {
				err = errors.New("break-glass grant issued no credential")
			}
			return err
		}
		s.log.Info("break-glass grant not issued", "action", a.ID, "actor", p.Actor(), "err", err)
		w.Header().Set("Location", fmt.Sprintf("/api/v1/actions/%d", a.ID))
		s.writeJSON(w, r, http.StatusCreated, breakGlassJSON{issuedJSON: issuedJSON{Action: a, Error: a.Error}, Review: s.reviewView(review)})
		return nil
	}
	out := breakGlassJSON{issuedJSON: s.issued(ctx, p, d, a, cred, err), Review: s.reviewView(review)}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/access/grants/%d", cred.GrantID))
	s.writeJSON(w, r, http.StatusCreated, out)
	return nil
}

// mayIssue refuses what must not reach the pipeline: another kind, another
// person than the requester (audited), and a grant issued already.
func (s *Server) mayIssue(ctx context.Context, p auth.Principal, a *action.Action) error {
	if a.Kind != access.KindName {
		return fmt.Errorf("%w: action %d is a %s action, not an access grant; execute it with POST /api/v1/actions/%d/execute", errBadRequest, a.ID, a.Kind, a.ID)
	}
	if a.Requester != p.User.Name {
		if err := s.audit(ctx, p.Actor(), "access.issue", fmt.Sprintf("action:%d", a.ID), "denied",
			map[string]any{"requester": a.Requester, "why": "not the requester"}); err != nil {
			s.log.Error("audit refused issue", "action", a.ID, "err", err)
		}
		return fmt.Errorf("%w: action %d was requested by %s, and only %s can issue it: the connection string is shown once, to the requester",
			access.ErrNotRequester, a.ID, a.Requester, a.Requester)
	}
	if a.State == action.Executing || a.State == action.Succeeded {
		return alreadyIssued(a)
	}
	return nil
}

func alreadyIssued(a *action.Action) error {
	if id := grantIDOf(a); id > 0 {
		return fmt.Errorf("%w: action %d issued grant %d; its connection string was shown once and is not kept", errAlreadyIssued, a.ID, id)
	}
	return fmt.Errorf("%w: action %d is %s; its connection string is shown once and is not kept", errAlreadyIssued, a.ID, a.State)
}

// grantIDOf reads the grant id from a grant action's result.
func grantIDOf(a *action.Action) int64 {
	if a.Result == nil {
		return 0
	}
	switch v := a.Result.Details["grant_id"].(type) {
	case int64:
		return v
	case float64:
		return int64(v)
	case json.Number:
		n, _ := v.Int64()
		return n
	}
	return 0
}

func (s *Server) apiGrants(w http.ResponseWriter, r *http.Request, _ auth.Principal, d *access.Deps) error {
	q := r.URL.Query()
	f := access.ListFilter{Service: q.Get("service"), Limit: defaultGrantLimit}
	if v := q.Get("active"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: active must be true or false, not %q", errBadRequest, v)
		}
		f.Active = b
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxGrantLimit {
			return fmt.Errorf("%w: limit must be an integer from 1 to %d, not %q", errBadRequest, maxGrantLimit, v)
		}
		f.Limit = n
	}
	gs, err := access.List(r.Context(), d, f)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"grants": gs})
	return nil
}

func (s *Server) apiGrant(w http.ResponseWriter, r *http.Request, _ auth.Principal, d *access.Deps) error {
	id, err := pathID(r, "grant")
	if err != nil {
		return err
	}
	g, err := access.Get(r.Context(), d, id)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"grant": g})
	return nil
}

type revokeRequest struct {
	Reason string `json:"reason"`
}

// apiRevokeGrant revokes a grant now. An attempt that failed leaves the
// grant revoking, retried by the sweeper: 202 with the grant and the error.
func (s *Server) apiRevokeGrant(w http.ResponseWriter, r *http.Request, p auth.Principal, d *access.Deps) error {
	id, err := pathID(r, "grant")
	if err != nil {
		return err
	}
	var body revokeRequest
	if err := decodeBody(w, r, &body, true); err != nil {
		return err
	}
	if strings.TrimSpace(body.Reason) == "" {
		return fmt.Errorf("%w: \"reason\" is required: say why the grant ends early", errBadRequest)
	}
	ctx := r.Context()
	_, rerr := access.Revoke(ctx, d, p, id, body.Reason)
	if rerr != nil && errorStatus(rerr).Status < 500 {
		return rerr
	}
	g, err := access.Get(context.WithoutCancel(ctx), d, id)
	if err != nil {
		return errors.Join(rerr, err)
	}
	if rerr != nil {
		if g.State != access.StateRevoking {
			return rerr
		}
		s.log.Warn("revocation attempt failed; the sweeper retries", "grant", id, "actor", p.Actor(), "err", rerr)
		s.writeJSON(w, r, http.StatusAccepted, map[string]any{"grant": g, "error": rerr.Error()})
		return nil
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"grant": g})
	return nil
}
