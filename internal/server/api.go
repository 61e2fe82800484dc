package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/store"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()

	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	metrics := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
	mux.Handle("GET /metrics", s.api(auth.PermRead, func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
		metrics.ServeHTTP(w, r)
		return nil
	}))

	mux.Handle("GET /api/v1/services", s.api(auth.PermRead, s.apiServices))
	mux.Handle("GET /api/v1/services/{name}", s.api(auth.PermRead, s.apiService))
	mux.Handle("GET /api/v1/probes", s.api(auth.PermRead, s.apiProbes))
	mux.Handle("GET /api/v1/slo", s.api(auth.PermRead, s.apiSLO))
	mux.Handle("GET /api/v1/probes/{service}/{probe}", s.api(auth.PermRead, s.apiProbe))
	mux.Handle("GET /api/v1/users", s.api(auth.PermRead, s.apiUsers))
	mux.Handle("GET /api/v1/audit/events", s.api(auth.PermAuditRead, s.apiAuditEvents))
	mux.Handle("GET /api/v1/whoami", s.api("", s.apiWhoami))
	s.agentRoutes(mux)
	s.actionRoutes(mux)
	s.probeFailureRoutes(mux)
	s.statusPageRoutes(mux)
	s.scoreRoutes(mux)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.writeAPIError(w, r, fmt.Errorf("%s %s: no such API endpoint: %w", r.Method, r.URL.Path, store.ErrNotFound))
	})

	s.uiRoutes(mux)

	// Cross-origin state-changing requests (login, logout, the approval and
	// review forms) are refused; with the SameSite=Strict cookie this is the
	// CSRF defence. Slack's server-to-server posts carry no Origin or
	// Sec-Fetch-Site header and pass; they are authenticated by signature.
	cop := http.NewCrossOriginProtection()
	return securityHeaders(s.instrument(cop.Handler(mux)))
}

// apiFunc answers an authenticated API request; a returned error is mapped
// to a status by errorStatus.
type apiFunc func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

// api authenticates the request, checks perm (none when empty) and calls h.
func (s *Server) api(perm auth.Permission, h apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.principal(r)
		if err == nil && perm != "" {
			err = p.Require(perm)
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.writeAPIError(w, r, err)
		}
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyResponse is the body of /readyz: every check by name, "ok" or what is
// wrong.
type readyResponse struct {
	Status string            `json:"status"` // "ready" or "not ready"
	Checks map[string]string `json:"checks"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{"store": "ok", "schema": "ok"}
	ok := true
	if s.draining.Load() {
		checks["server"] = "shutting down"
		ok = false
	}
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readiness: store ping failed", "err", err)
		checks["store"] = "unreachable (details in the server log)"
		checks["schema"] = "unknown"
		ok = false
	} else if v, err := s.store.SchemaVersion(ctx); err != nil {
		s.log.Warn("readiness: schema version unknown", "err", err)
		checks["schema"] = "unknown (details in the server log)"
		ok = false
	} else if want := store.LatestVersion(); v != want {
		checks["schema"] = fmt.Sprintf("version %d, this binary needs %d; run steward migrate", v, want)
		ok = false
	}
	if s.ready != nil {
		checks["ready"] = "ok"
		if err := s.ready(ctx); err != nil {
			checks["ready"] = err.Error()
			ok = false
		}
	}
	status, resp := http.StatusOK, readyResponse{Status: "ready", Checks: checks}
	if !ok {
		status, resp.Status = http.StatusServiceUnavailable, "not ready"
	}
	s.writeJSON(w, r, status, resp)
}

func (s *Server) apiServices(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	snap := s.snap.Load()
	h := w.Header()
	h.Set("ETag", snap.listETag)
	h.Set("Cache-Control", "private, no-cache")
	if r.Header.Get("If-None-Match") == snap.listETag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(snap.list)))
	_, _ = w.Write(snap.list)
	return nil
}

func (s *Server) apiService(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	name := r.PathValue("name")
	b, ok := s.snap.Load().item[name]
	if !ok {
		return fmt.Errorf("service %q: %w", name, store.ErrNotFound)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "private, no-cache")
	_, _ = w.Write(b)
	return nil
}

type userJSON struct {
	Name      string    `json:"name"`
	Email     string    `json:"email,omitempty"` // admins only
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"created_at"`
	Disabled  bool      `json:"disabled"`
}

func (s *Server) apiUsers(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	users, err := s.store.ListUsers(r.Context())
	if err != nil {
		return err
	}
	out := make([]userJSON, 0, len(users))
	for _, u := range users {
		v := userJSON{Name: u.Name, Roles: u.Roles, CreatedAt: u.CreatedAt, Disabled: u.Disabled()}
		if v.Roles == nil {
			v.Roles = []string{}
		}
		if p.Can(auth.PermAdmin) {
			v.Email = u.Email
		}
		out = append(out, v)
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"users": out})
	return nil
}

type whoamiJSON struct {
	Actor       string            `json:"actor"`
	User        string            `json:"user"`
	Roles       []string          `json:"roles"`
	Permissions []auth.Permission `json:"permissions"`
	TokenID     int64             `json:"token_id"`
}

func (s *Server) apiWhoami(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	v := whoamiJSON{Actor: p.Actor(), User: p.User.Name, Roles: p.User.Roles, Permissions: []auth.Permission{}, TokenID: p.TokenID}
	if v.Roles == nil {
		v.Roles = []string{}
	}
	for _, perm := range auth.AllPermissions {
		if p.Can(perm) {
			v.Permissions = append(v.Permissions, perm)
		}
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}

// eventJSON is an audit event as the API shows it.
type eventJSON struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`
	Target   string          `json:"target"`
	Outcome  string          `json:"outcome"`
	Details  json.RawMessage `json:"details"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

func eventView(rec store.AuditRecord) eventJSON {
	details := json.RawMessage(rec.Details)
	if !json.Valid(details) {
		details, _ = json.Marshal(rec.Details) // keep what is stored, as a string
	}
	return eventJSON{Seq: rec.Seq, Time: rec.Time, Actor: rec.Actor, Action: rec.Action, Target: rec.Target,
		Outcome: rec.Outcome, Details: details, PrevHash: rec.PrevHash, Hash: rec.Hash}
}

// eventsResponse is one page of audit events, newest first. NextBefore is
// the "before" of the next (older) page with the same other parameters, or
// null when this is the last page.
type eventsResponse struct {
	Events     []eventJSON `json:"events"`
	NextBefore *int64      `json:"next_before"`
}

const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// auditFilter reads the audit listing parameters of a request.
func auditFilter(r *http.Request, defaultLimit int) (store.AuditFilter, error) {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Limit: defaultLimit}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"before", &f.BeforeSeq}, {"after", &f.AfterSeq}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return f, fmt.Errorf("%w: %s must be an event sequence number (an integer >= 0), not %q", errBadRequest, p.name, v)
		}
		*p.dst = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			return f, fmt.Errorf("%w: limit must be an integer from 1 to %d, not %q", errBadRequest, maxAuditLimit, v)
		}
		f.Limit = n
	}
	return f, nil
}

// nextBefore returns the cursor of the page after recs, or nil at the end.
func nextBefore(f store.AuditFilter, recs []store.AuditRecord) *int64 {
	if len(recs) < f.Limit || len(recs) == 0 {
		return nil
	}
	last := recs[len(recs)-1].Seq
	if last <= 1 || last-1 <= f.AfterSeq {
		return nil
	}
	return &last
}

func (s *Server) apiAuditEvents(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	f, err := auditFilter(r, defaultAuditLimit)
	if err != nil {
		return err
	}
	recs, err := s.store.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	resp := eventsResponse{Events: make([]eventJSON, 0, len(recs)), NextBefore: nextBefore(f, recs)}
	for _, rec := range recs {
		resp.Events = append(resp.Events, eventView(rec))
	}
	s.writeJSON(w, r, http.StatusOK, resp)
	return nil
}
