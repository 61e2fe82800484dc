package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

// scoreRoutes serves the readiness scorecard and its history.
func (s *Server) scoreRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/score", s.api(auth.PermRead, s.apiScore))
	mux.Handle("GET /api/v1/score/history", s.api(auth.PermRead, s.apiScoreHistory))
}

// apiScore evaluates the scorecard of ?service= (all services when absent).
func (s *Server) apiScore(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	if s.score == nil {
		s.writeJSON(w, r, http.StatusServiceUnavailable, errorBody{Error: "the readiness scorecard is not enabled",
			Hint: "this server was started without an evaluator; operators: pass server.Options.Scorecard"})
		return nil
	}
	service := r.URL.Query().Get("service")
	if service != "" {
		if err := s.knownService(service); err != nil {
			return err
		}
	}
	card, err := s.score(r.Context(), service)
	if errors.Is(err, readiness.ErrUnknownService) {
		return fmt.Errorf("%v: %w", err, store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, card)
	return nil
}

// apiScoreHistory answers the stored evaluations of ?service= and when each
// control (only ?control=, when given) changed status.
func (s *Server) apiScoreHistory(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q := r.URL.Query()
	service, control := q.Get("service"), q.Get("control")
	if service == "" {
		return fmt.Errorf("%w: the service parameter is required, e.g. /api/v1/score/history?service=shop", errBadRequest)
	}
	if err := s.knownService(service); err != nil {
		return err
	}
	if control != "" {
		if _, ok := readiness.Lookup(control); !ok {
			return fmt.Errorf("%w: unknown control %q; the controls are %v", errBadRequest, control, readiness.IDs())
		}
	}
	h, err := readiness.LoadHistory(r.Context(), s.store, service, control, time.Time{})
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, h)
	return nil
}

// knownService is nil when the current config defines service.
func (s *Server) knownService(service string) error {
	if _, ok := s.snap.Load().item[service]; !ok {
		return fmt.Errorf("service %q is not in the configuration: %w", service, store.ErrNotFound)
	}
	return nil
}
