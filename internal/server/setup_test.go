package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

// bundle is a running server on loopback with a real store and users.
type bundle struct {
	srv   *Server
	ts    *httptest.Server
	store *store.Store
	auth  *auth.Manager
	audit auth.AuditFunc
	reg   *prometheus.Registry

	admin, viewer, auditor string // token secrets
}

// storeAudit appends hash-chained events to the real store. It stands in for
// internal/audit's Log, which is being written in parallel; the chain here
// is SHA-256 over the event fields and the previous hash.
func storeAudit(st *store.Store) auth.AuditFunc {
	return func(ctx context.Context, actor, action, target, outcome string, details map[string]any) error {
		if details == nil {
			details = map[string]any{}
		}
		d, err := json.Marshal(details)
		if err != nil {
			return err
		}
		return st.AppendAudit(ctx, func(h store.AuditHead) ([]store.AuditRecord, error) {
			r := store.AuditRecord{Seq: h.Seq + 1, Time: time.Now().UTC().Truncate(time.Microsecond),
				Actor: actor, Action: action, Target: target, Outcome: outcome, Details: string(d), PrevHash: h.Hash}
			sum := sha256.Sum256(fmt.Appendf(nil, "%d\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s",
				r.Seq, store.FormatTime(r.Time), r.Actor, r.Action, r.Target, r.Outcome, r.Details, r.PrevHash))
			r.Hash = hex.EncodeToString(sum[:])
			return []store.AuditRecord{r}, nil
		})
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testConfig() *config.Config {
	return &config.Config{Services: []config.Service{
		{
			Name: "shop", Description: "The web shop", Owners: []string{"team-shop"}, Tier: 1,
			Labels: map[string]string{"env": "prod"},
			Contacts: config.Contacts{
				Oncall:      config.Contact{Name: "shop-oncall", Phone: "+41 44 000 00 00", URL: "https://pager.example.com/shop"},
				ProviderNOC: config.Contact{Name: "Hoster NOC", Email: "noc@hoster.example"},
			},
			Databases: []config.Database{
				{Name: "main", Engine: "postgres", URL: "postgres://u:secret@h/db", ReplicaURL: "env:SHOP_DB_REPLICA"},
				{Name: "cache", Engine: "sqlite", URL: "file:/etc/steward/cache-url"},
			},
		},
		{Name: "billing", Owners: []string{"team-billing", "alice"}, Tier: 2,
			Databases: []config.Database{{Name: "ledger", Engine: "mysql", URL: "env:BILLING_DB_URL"}}},
	}}
}

type setupOpts struct {
	storeURL string
	ready    func(context.Context) error
	config   *config.Config
	quiet    bool // log warnings only (benchmarks)
	// scorecard wires a readiness evaluator on the store and config.
	scorecard bool
}

func setup(t testing.TB, so setupOpts) *bundle {
	t.Helper()
	ctx := context.Background()
	if so.storeURL == "" {
		so.storeURL = "sqlite://" + filepath.Join(t.TempDir(), "steward.db")
	}
	if so.config == nil {
		so.config = testConfig()
	}
	log := testLogger(t)
	if so.quiet {
		log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	st, err := store.Open(ctx, so.storeURL, store.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &bundle{store: st, audit: storeAudit(st), reg: prometheus.NewRegistry()}
	b.auth = auth.NewManager(st, nil, b.audit)
	for _, u := range []struct {
		name string
		role string
		dst  *string
	}{{"ada", auth.RoleAdmin, &b.admin}, {"vic", auth.RoleViewer, &b.viewer}, {"aud", auth.RoleAuditor, &b.auditor}} {
		_, secret, err := b.auth.AddUser(ctx, "local:test", u.name, u.name+"@example.com", []string{u.role}, true)
		if err != nil {
			t.Fatal(err)
		}
		*u.dst = secret
	}
	opts := Options{Config: so.config, Store: st, Auth: b.auth, Audit: b.audit, Logger: log,
		Registry: b.reg, Version: "test", Ready: so.ready}
	if so.scorecard {
		cfg := so.config
		ev := &readiness.Evaluator{Store: st, Config: func() *config.Config { return cfg }, Logger: log}
		opts.Scorecard = ev.Evaluate
	}
	b.srv, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	b.ts = httptest.NewServer(b.srv.Handler())
	t.Cleanup(b.ts.Close)
	return b
}

// response is a finished HTTP exchange.
type response struct {
	*http.Response
	body string
}

// do sends a request with an optional bearer token and extra headers
// ("Name: value"), without following redirects.
func (b *bundle) do(t *testing.T, method, path, token string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, b.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	return b.send(t, req)
}

func (b *bundle) send(t *testing.T, req *http.Request) response {
	t.Helper()
	// A client of its own: parallel subtests share b.ts.Client().
	c := &http.Client{Transport: b.ts.Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Response: resp, body: string(body)}
}

// getJSON fetches path with token, checks the status and decodes the body.
func (b *bundle) getJSON(t *testing.T, path, token string, wantStatus int, v any) response {
	t.Helper()
	r := b.do(t, "GET", path, token)
	if r.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d, want %d; body %s", path, r.StatusCode, wantStatus, r.body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: Content-Type %q, want JSON", path, ct)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.body), v); err != nil {
			t.Fatalf("GET %s: decode %s: %v", path, r.body, err)
		}
	}
	return r
}
