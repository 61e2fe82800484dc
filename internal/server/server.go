package server

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

// Actor is the audit actor of the server's own events.
const Actor = "system:server"

// shutdownTimeout bounds the graceful shutdown in Serve.
const shutdownTimeout = 10 * time.Second

// Options configure a Server. Store, Auth and Audit are required.
type Options struct {
	Config *config.Config // nil serves no services until SetConfig
	Store  *store.Store
	Auth   *auth.Manager
	Audit  auth.AuditFunc
	Logger *slog.Logger // nil discards
	// Registry receives the Go and process collectors and the HTTP metrics,
	// and /metrics serves everything registered on it. nil: a new registry.
	Registry *prometheus.Registry
	Version  string
	// Ready is an extra readiness check for /readyz (jobs started, ...);
	// optional. Its error text is shown to unauthenticated callers.
	Ready func(ctx context.Context) error
	// Actions is the action pipeline behind /api/v1/actions, the approval
	// pages and the Slack buttons. nil: those answer 503 "actions are not
	// enabled". The pipeline keeps its own copy of the configuration: on a
	// reload, call both Server.SetConfig and Pipeline.SetConfig. When the
	// pipeline has the access.grant kind, /api/v1/access/grants and the
	// "Issue credentials" form serve it too.
	Actions *action.Pipeline
	// Scorecard evaluates the readiness scorecard of a service ("" for
	// all) for the overview and service pages. nil: the pages say the
	// scorecard is not available.
	Scorecard func(ctx context.Context, service string) (*readiness.Scorecard, error)
}

// Server is Steward's HTTP server.
type Server struct {
	store   *store.Store
	auth    *auth.Manager
	audit   auth.AuditFunc
	log     *slog.Logger
	reg     *prometheus.Registry
	version string
	ready   func(ctx context.Context) error
	actions *action.Pipeline
	access  *access.Deps // the pipeline's access.grant kind; nil without one
	score   func(ctx context.Context, service string) (*readiness.Scorecard, error)
	// verifier caches the audit page's verification of the log; scores
	// the recent scorecards of the pages.
	verifier verifyCache
	scores   scoreCache
	now      func() time.Time // the clock for Slack signature checks and ages

	snap     atomic.Pointer[snapshot]
	agents   atomic.Pointer[agentSnapshot] // what each probe location runs
	status   statusPage                    // the public status page
	tokens   *tokenCache
	metrics  *httpMetrics
	pages    map[string]*template.Template
	assets   *assets
	handler  http.Handler
	draining atomic.Bool
	reqSeq   atomic.Uint64
}

// New returns a server for opts.
func New(opts Options) (*Server, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("new server: no store")
	case opts.Auth == nil:
		return nil, errors.New("new server: no auth manager")
	case opts.Audit == nil:
		return nil, errors.New("new server: no audit function")
	}
	s := &Server{
		store:   opts.Store,
		auth:    opts.Auth,
		audit:   opts.Audit,
		log:     opts.Logger,
		reg:     opts.Registry,
		version: opts.Version,
		ready:   opts.Ready,
		actions: opts.Actions,
		access:  accessDepsOf(opts.Actions),
		score:   opts.Scorecard,
		now:     time.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	var err error
	if s.metrics, err = newHTTPMetrics(s.reg); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	if s.assets, err = loadAssets(); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	if s.pages, err = parsePages(s.assets); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	s.tokens = newTokenCache(opts.Auth, opts.Store, tokenCacheTTL, time.Now)
	if err := s.setConfig(opts.Config); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	s.handler = s.routes()
	return s, nil
}

// SetConfig swaps the configuration the server shows, for reloads. In-flight
// requests finish with the configuration they started with.
func (s *Server) SetConfig(c *config.Config) {
	if err := s.setConfig(c); err != nil {
		// Only a JSON encoding failure gets here, which strings and ints
		// cannot cause; keep serving the previous configuration.
		s.log.Error("config not applied", "err", err)
	}
}

func (s *Server) setConfig(c *config.Config) error {
	snap, err := newSnapshot(c)
	if err != nil {
		return err
	}
	s.snap.Store(snap)
	s.agents.Store(newAgentSnapshot(c))
	s.status.conf.Store(newStatusConf(c))
	return nil
}

// Handler returns the server's HTTP handler, with all middleware applied.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTP on ln until ctx is done, then shuts down gracefully:
// /readyz turns 503, the listener closes and in-flight requests get up to
// 10 seconds to finish. It records server.start and server.stop audit events
// and refuses to serve when server.start cannot be recorded. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	addr := ln.Addr().String()
	if err := s.audit(ctx, Actor, "server.start", "server:"+addr, "ok", map[string]any{"addr": addr, "version": s.version}); err != nil {
		ln.Close()
		return fmt.Errorf("serve %s: record server.start: %w", addr, err)
	}
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// Requests must outlive ctx so that the graceful shutdown lets them finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.log.Info("serving HTTP", "addr", addr, "version", s.version)
	s.draining.Store(false)

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }() // exits when hs shuts down or ln fails

	var serveErr error
	reason := "context done"
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		reason = "listener failed"
	}
	s.draining.Store(true)
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	shutErr := hs.Shutdown(shutCtx)
	if serveErr == nil {
		serveErr = <-errc // Serve returns ErrServerClosed at once after Shutdown starts
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	if shutErr != nil {
		s.log.Warn("graceful shutdown incomplete; connections closed", "err", shutErr)
		hs.Close()
		shutErr = fmt.Errorf("shut down %s: %w", addr, shutErr)
	}
	outcome := "ok"
	details := map[string]any{"addr": addr, "reason": reason}
	if serveErr != nil || shutErr != nil {
		outcome = "error"
		details["error"] = errors.Join(serveErr, shutErr).Error()
	}
	auditCtx, cancelAudit := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelAudit()
	var auditErr error
	if err := s.audit(auditCtx, Actor, "server.stop", "server:"+addr, outcome, details); err != nil {
		auditErr = fmt.Errorf("record server.stop: %w", err)
	}
	s.log.Info("HTTP server stopped", "addr", addr, "reason", reason)
	if serveErr != nil {
		serveErr = fmt.Errorf("serve %s: %w", addr, serveErr)
	}
	return errors.Join(serveErr, shutErr, auditErr)
}
