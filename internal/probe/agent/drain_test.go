package agent

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/server"
	"github.com/stewardhq/steward/internal/store"
)

// serverFor runs the real server on loopback with cfg and returns its URL,
// its store and an admin token.
func serverFor(t *testing.T, cfg *config.Config) (string, *store.Store, string) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "steward.db"), store.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	alog := audit.New(st, audit.Options{Logger: log})
	alog.Start(ctx)
	t.Cleanup(func() { alog.Close() })
	auditFn := func(ctx context.Context, actor, action, target, outcome string, details map[string]any) error {
		_, err := alog.Append(ctx, audit.Entry{Actor: actor, Action: action, Target: target, Outcome: outcome, Details: details})
		return err
	}
	am := auth.NewManager(st, nil, auditFn)
	_, tok, err := am.AddUser(ctx, "local:test", "ada", "", []string{auth.RoleAdmin}, true)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Config: cfg, Store: st, Auth: am, Audit: auditFn, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL, st, tok
}

// A result the server refuses (its probe is not assigned to the location)
// is dropped and counted; the rest of its batch is stored, once, even when
// the spool is uploaded again from its start.
func TestDrainDropsRefusedResults(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Services: []config.Service{{Name: "shop", Probes: []config.Probe{
		{Name: "home", Type: config.ProbeHTTP, Interval: "30s", Timeout: "10s", URL: "http://127.0.0.1:1/", Locations: []string{"eu-west"}},
		{Name: "admin", Type: config.ProbeHTTP, Interval: "30s", Timeout: "10s", URL: "http://127.0.0.1:1/admin"},
	}}}}
	url, st, tok := serverFor(t, cfg)
	opts := Options{Server: url, Token: tok, Location: "eu-west", DataDir: t.TempDir(), UploadBatch: 4}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	sp, err := OpenSpool(filepath.Join(opts.DataDir, "spool"), 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	a := &Agent{opts: opts, log: slog.New(slog.NewTextHandler(t.Output(), nil)), spool: sp, wake: make(chan struct{}, 1), back: make(chan struct{}, 1),
		client: &client{base: url, token: tok, hc: opts.HTTPClient}}
	rs := results(0, 10)
	rs[5].Probe = "admin" // local only: the server refuses it
	if err := sp.Append(rs); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.drain(ctx); err != nil {
		t.Fatal(err)
	}
	if sp.Pending() != 0 || sp.Dropped() != 1 || a.sent.Load() != 9 {
		t.Fatalf("pending %d, dropped %d, sent %d; want 0, 1, 9", sp.Pending(), sp.Dropped(), a.sent.Load())
	}
	n, distinct, err := st.CountProbeResultUIDs(ctx, "eu-west")
	if err != nil || n != 9 || distinct != 9 {
		t.Fatalf("stored %d (%d distinct), %v; want 9", n, distinct, err)
	}
	// The same results again, as after a crash before the cursor was
	// written: nothing new is stored.
	if _, err := a.client.upload(ctx, "eu-west", append(rs[:5:5], rs[6:]...)); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := st.CountProbeResultUIDs(ctx, "eu-west"); n != 9 {
		t.Fatalf("stored %d after uploading again, want 9", n)
	}
	// A token the server does not know stops the upload for good.
	a.client.token = "stw_nope"
	if err := sp.Append(results(100, 1)); err != nil {
		t.Fatal(err)
	}
	if err := a.drain(ctx); err == nil || !strings.Contains(err.Error(), "refused the agent's token") {
		t.Fatalf("drain with a bad token: %v", err)
	}
	if sp.Pending() != 1 {
		t.Fatalf("pending %d after a refused upload, want the result kept", sp.Pending())
	}
}
