package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.do(t, "GET", "/healthz", "")
	if r.StatusCode != 200 || r.body != "ok\n" {
		t.Fatalf("healthz: %d %q", r.StatusCode, r.body)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var readyErr error
	b := setup(t, setupOpts{ready: func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return readyErr
	}})

	var body readyResponse
	b.getJSON(t, "/readyz", "", http.StatusOK, &body)
	if body.Status != "ready" || body.Checks["store"] != "ok" || body.Checks["schema"] != "ok" || body.Checks["ready"] != "ok" {
		t.Fatalf("readyz: %+v", body)
	}

	mu.Lock()
	readyErr = errors.New("jobs not started")
	mu.Unlock()
	body = readyResponse{}
	b.getJSON(t, "/readyz", "", http.StatusServiceUnavailable, &body)
	if body.Status != "not ready" || body.Checks["ready"] != "jobs not started" || body.Checks["store"] != "ok" {
		t.Fatalf("readyz with failing Ready: %+v", body)
	}

	mu.Lock()
	readyErr = nil
	mu.Unlock()
	if err := b.store.Close(); err != nil {
		t.Fatal(err)
	}
	body = readyResponse{}
	b.getJSON(t, "/readyz", "", http.StatusServiceUnavailable, &body)
	if body.Checks["store"] == "ok" {
		t.Fatalf("readyz with closed store: %+v", body)
	}
}

func TestReadyzSchemaBehind(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	// Make the store look like it was migrated by an older binary.
	if _, err := b.store.DB().Exec("DELETE FROM steward_schema_migrations"); err != nil {
		t.Fatal(err)
	}
	var body readyResponse
	b.getJSON(t, "/readyz", "", http.StatusServiceUnavailable, &body)
	if !strings.Contains(body.Checks["schema"], "version 0") {
		t.Fatalf("readyz: %+v", body)
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()

	expired, _, err := b.auth.CreateToken(ctx, "local:test", "vic", "short", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	revoked, tok, err := b.auth.CreateToken(ctx, "local:test", "vic", "gone", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.auth.RevokeToken(ctx, "local:test", tok.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // past the expiry

	for _, tc := range []struct {
		name, header, wantErr string
	}{
		{"no token", "", "no API token"},
		{"unknown token", "Bearer stw_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "invalid API token"},
		{"not a steward token", "Bearer hunter2", "invalid API token"},
		{"basic auth", "Basic dXNlcjpwYXNz", "Bearer"},
		{"expired", "Bearer " + expired, "expired"},
		{"revoked", "Bearer " + revoked, "revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var hs []string
			if tc.header != "" {
				hs = append(hs, "Authorization: "+tc.header)
			}
			r := b.do(t, "GET", "/api/v1/services", "", hs...)
			if r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; body %s", r.StatusCode, r.body)
			}
			var e errorBody
			mustJSON(t, r.body, &e)
			if !strings.Contains(e.Error, tc.wantErr) || !strings.Contains(e.Hint, "steward token create") {
				t.Fatalf("body %s: want error containing %q and a hint naming steward token create", r.body, tc.wantErr)
			}
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
		})
	}
}

func TestRevokedTokenStopsWorkingQuickly(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()
	secret, tok, err := b.auth.CreateToken(ctx, "local:test", "vic", "soon-revoked", 0)
	if err != nil {
		t.Fatal(err)
	}
	b.getJSON(t, "/api/v1/services", secret, http.StatusOK, nil) // now cached
	if err := b.auth.RevokeToken(ctx, "local:test", tok.ID); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	for {
		r := b.do(t, "GET", "/api/v1/services", secret)
		if r.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Since(revokedAt) > 5*time.Second {
			t.Fatalf("revoked token still accepted after %v", time.Since(revokedAt))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("revoked token refused after %v (cache TTL %v)", time.Since(revokedAt).Round(time.Millisecond), tokenCacheTTL)
}

func TestForbidden(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.do(t, "GET", "/api/v1/audit/events", b.viewer)
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer reading audit: %d %s", r.StatusCode, r.body)
	}
	var e errorBody
	mustJSON(t, r.body, &e)
	if !strings.Contains(e.Error, "audit.read") || e.Hint == "" {
		t.Fatalf("403 body %s", r.body)
	}
	// The viewer may read services and users; the auditor may read the audit log.
	b.getJSON(t, "/api/v1/users", b.viewer, http.StatusOK, nil)
	b.getJSON(t, "/api/v1/audit/events", b.auditor, http.StatusOK, nil)
}

func TestWhoamiAndUsers(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	var who whoamiJSON
	b.getJSON(t, "/api/v1/whoami", b.auditor, http.StatusOK, &who)
	if who.Actor != "user:aud" || who.User != "aud" || fmt.Sprint(who.Permissions) != "[read audit.read]" {
		t.Fatalf("whoami: %+v", who)
	}
	var users struct{ Users []userJSON }
	b.getJSON(t, "/api/v1/users", b.viewer, http.StatusOK, &users)
	if len(users.Users) != 3 {
		t.Fatalf("users: %+v", users)
	}
	for _, u := range users.Users {
		if u.Email != "" {
			t.Errorf("viewer sees email of %s", u.Name)
		}
	}
	users.Users = nil
	b.getJSON(t, "/api/v1/users", b.admin, http.StatusOK, &users)
	if users.Users[0].Email == "" {
		t.Errorf("admin does not see emails: %+v", users)
	}
}

func TestServicesHideSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	var list servicesResponse
	r := b.getJSON(t, "/api/v1/services", b.viewer, http.StatusOK, &list)
	if strings.Contains(r.body, "secret") || strings.Contains(r.body, "postgres://") {
		t.Fatalf("services JSON exposes a database URL: %s", r.body)
	}
	for _, want := range []string{`"url_source":"inline"`, `"replica_url_source":"env:SHOP_DB_REPLICA"`, `"has_replica":true`, `"url_source":"env:BILLING_DB_URL"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("services JSON lacks %s: %s", want, r.body)
		}
	}
	if len(list.Services) != 2 || list.Services[0].Name != "shop" || list.Services[0].Contacts.Oncall.Name != "shop-oncall" ||
		list.Services[0].Contacts.Escalation != nil || list.Services[1].Labels == nil {
		t.Fatalf("services: %+v", list)
	}

	// Conditional GET.
	etag := r.Header.Get("ETag")
	if r2 := b.do(t, "GET", "/api/v1/services", b.viewer, "If-None-Match: "+etag); r2.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", r2.StatusCode)
	}

	var one serviceJSON
	r = b.getJSON(t, "/api/v1/services/shop", b.viewer, http.StatusOK, &one)
	if strings.Contains(r.body, "secret") || one.Name != "shop" || len(one.Databases) != 2 {
		t.Fatalf("service: %s", r.body)
	}
	var e errorBody
	b.getJSON(t, "/api/v1/services/nope", b.viewer, http.StatusNotFound, &e)
	if !strings.Contains(e.Error, `service "nope"`) {
		t.Fatalf("404 body: %+v", e)
	}
	b.getJSON(t, "/api/v1/nope", b.viewer, http.StatusNotFound, &e)

	// The UI shows no secret either.
	for _, path := range []string{"/services", "/services/shop"} {
		r := b.do(t, "GET", path, "", "Cookie: "+cookieName+"="+b.viewer)
		if r.StatusCode != 200 || strings.Contains(r.body, "secret") || !strings.Contains(r.body, "shop") {
			t.Fatalf("GET %s: %d, body:\n%s", path, r.StatusCode, r.body)
		}
	}
}

func TestSetConfig(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { // swaps configurations until the readers are done
		for i := 0; ctx.Err() == nil; i++ {
			c := testConfig()
			c.Services[0].Description = fmt.Sprint("version ", i)
			b.srv.SetConfig(c)
		}
	})
	for range 50 {
		var list servicesResponse
		b.getJSON(t, "/api/v1/services", b.viewer, http.StatusOK, &list)
		if len(list.Services) != 2 {
			t.Fatalf("services during reload: %+v", list)
		}
	}
	cancel()
	wg.Wait()

	b.srv.SetConfig(&config.Config{Services: []config.Service{{Name: "solo", Tier: 3}}})
	var list servicesResponse
	b.getJSON(t, "/api/v1/services", b.viewer, http.StatusOK, &list)
	if len(list.Services) != 1 || list.Services[0].Name != "solo" {
		t.Fatalf("after SetConfig: %+v", list)
	}
	b.getJSON(t, "/api/v1/services/shop", b.viewer, http.StatusNotFound, nil)
	b.srv.SetConfig(nil)
	b.getJSON(t, "/api/v1/services", b.viewer, http.StatusOK, &list)
	if len(list.Services) != 0 {
		t.Fatalf("after SetConfig(nil): %+v", list)
	}
}

// addEvents appends n audit events, alternating two actors.
func addEvents(t *testing.T, b *bundle, n int) {
	t.Helper()
	for i := range n {
		actor := []string{"user:alice", "user:bob"}[i%2]
		if err := b.audit(context.Background(), actor, "drill.run", fmt.Sprintf("service:s%d", i), "ok", map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
}

// pageAll follows next_before from the newest page and returns the seqs seen.
func pageAll(t *testing.T, b *bundle, query string) []int64 {
	t.Helper()
	var seqs []int64
	path := "/api/v1/audit/events?" + query
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		var page struct {
			Events     []eventJSON `json:"events"`
			NextBefore *int64      `json:"next_before"`
		}
		b.getJSON(t, path, b.auditor, http.StatusOK, &page)
		for _, e := range page.Events {
			seqs = append(seqs, e.Seq)
		}
		if page.NextBefore == nil {
			return seqs
		}
		path = fmt.Sprintf("/api/v1/audit/events?%s&before=%d", query, *page.NextBefore)
	}
}

func checkPaging(t *testing.T, b *bundle) {
	t.Helper()
	addEvents(t, b, 237)
	all, err := b.store.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query string
		want  func(store.AuditRecord) bool
	}{
		{"limit=50", func(store.AuditRecord) bool { return true }},
		{"limit=7", func(store.AuditRecord) bool { return true }},
		{"limit=1000", func(store.AuditRecord) bool { return true }},
		{"limit=10&actor=user:alice", func(r store.AuditRecord) bool { return r.Actor == "user:alice" }},
		{"limit=10&action=user.", func(r store.AuditRecord) bool { return strings.HasPrefix(r.Action, "user.") }},
		{"limit=9&after=100", func(r store.AuditRecord) bool { return r.Seq > 100 }},
	} {
		t.Run(tc.query, func(t *testing.T) {
			var want []int64
			for _, r := range all {
				if tc.want(r) {
					want = append(want, r.Seq)
				}
			}
			got := pageAll(t, b, tc.query)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("paged seqs (%d):\n%v\nwant (%d), newest first, each once:\n%v", len(got), got, len(want), want)
			}
		})
	}
}

func TestAuditPaging(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	checkPaging(t, b)

	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "before=-1", "after=abc"} {
		var e errorBody
		b.getJSON(t, "/api/v1/audit/events?"+q, b.auditor, http.StatusBadRequest, &e)
		if e.Error == "" {
			t.Errorf("%s: empty error", q)
		}
	}
}

func TestAuditEventShape(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.getJSON(t, "/api/v1/audit/events?limit=1&action=token.create", b.auditor, http.StatusOK, nil)
	for _, want := range []string{`"seq":`, `"time":"`, `"actor":"local:test"`, `"action":"token.create"`, `"target":"user:`, `"outcome":"ok"`, `"details":{`, `"prev_hash":"`, `"hash":"`, `"next_before":`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("event JSON lacks %s: %s", want, r.body)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.getJSON(t, "/api/v1/services/shop", b.viewer, http.StatusOK, nil)
	b.do(t, "GET", "/api/v1/services", "")
	if r := b.do(t, "GET", "/metrics", ""); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without a token: %d, want 401", r.StatusCode)
	}
	r := b.do(t, "GET", "/metrics", b.viewer)
	if r.StatusCode != 200 {
		t.Fatalf("metrics: %d", r.StatusCode)
	}
	for _, want := range []string{
		`steward_http_request_duration_seconds_bucket{code="200",method="GET",route="/api/v1/services/{name}",le="0.02"}`,
		`steward_http_request_duration_seconds_count{code="401",method="GET",route="/api/v1/services"} 1`,
		`steward_http_request_duration_seconds_count{code="401",method="GET",route="/metrics"} 1`,
		"steward_http_requests_in_flight 1", // the scrape itself
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(r.body, `route="/api/v1/services/shop"`) {
		t.Error("route label holds a raw path")
	}
}

func TestServe(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ln, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.srv.Serve(ctx, ln) }()

	url := "http://" + ln.Addr().String()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz over Serve: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
	for _, action := range []string{"server.start", "server.stop"} {
		recs, err := b.store.ListAudit(context.Background(), store.AuditFilter{Action: action})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Actor != Actor || recs[0].Outcome != "ok" {
			t.Fatalf("%s events: %+v", action, recs)
		}
	}
}

func TestPostgresStore(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{storeURL: testenv.PostgresURL(t)})
	var list servicesResponse
	b.getJSON(t, "/api/v1/services", b.viewer, http.StatusOK, &list)
	if len(list.Services) != 2 {
		t.Fatalf("services: %+v", list)
	}
	var ready readyResponse
	b.getJSON(t, "/readyz", "", http.StatusOK, &ready)
	checkPaging(t, b)
	r := b.do(t, "GET", "/audit?actor=user:bob", "", "Cookie: "+cookieName+"="+b.auditor)
	if r.StatusCode != 200 || !strings.Contains(r.body, "drill.run") || strings.Contains(r.body, "<td>user:alice</td>") {
		t.Fatalf("audit page on postgres: %d\n%s", r.StatusCode, r.body)
	}
}

func TestErrorStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want int
	}{
		{auth.ErrNoToken, 401},
		{fmt.Errorf("x: %w", auth.ErrRevokedToken), 401},
		{auth.ErrUserDisabled, 401},
		{fmt.Errorf("%w: needs admin", auth.ErrForbidden), 403},
		{fmt.Errorf("service x: %w", store.ErrNotFound), 404},
		{fmt.Errorf("user: %w", store.ErrExists), 409},
		{fmt.Errorf("%w: limit", errBadRequest), 400},
		{&store.Error{Err: fmt.Errorf("%w: down", store.ErrUnreachable)}, 503},
		{context.Canceled, statusClientClosed},
		{errors.New("disk on fire at /var/lib/x"), 500},
	} {
		he := errorStatus(tc.err)
		if he.Status != tc.want {
			t.Errorf("%v: status %d, want %d", tc.err, he.Status, tc.want)
		}
		if he.Status >= 500 && strings.Contains(he.Message, "disk") {
			t.Errorf("%v: internal detail in message %q", tc.err, he.Message)
		}
	}
}
