package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/gate"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

const accessConfig = `
users:
  - {name: alice, roles: [operator]}
  - {name: bob, roles: [approver]}
  - {name: carol, roles: [approver]}
  - {name: dave, roles: [viewer]}
  - {name: erin, roles: [operator]}
services:
  - name: shop
    databases:
      - {name: main, engine: postgres, url: "APPDB"}
    access:
      - {database: main, profile: read-only, grants: ["SELECT ON ALL TABLES IN SCHEMA public"], max: 4h}
policies:
  approvals:
    - name: access
      match: {action: [access.grant]}
      require: [{approvals: 2, from: ["role:approver"]}]
`

// syncBuffer collects the logs of a test, to look for secrets in them.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// accessBundle is a server whose pipeline has the access.grant kind, on a
// PostgreSQL store, granting roles on a PostgreSQL application database.
type accessBundle struct {
	*actionsBundle
	appURL string
	logs   *syncBuffer
}

func setupAccess(t *testing.T) *accessBundle {
	t.Helper()
	return setupAccessConfig(t, accessConfig)
}

// setupAccessConfig is setupAccess with another configuration (APPDB is
// replaced by the application database's URL). Custom roles get their
// permissions, and notifications go to a real outbox on the store, routed
// by the configuration's notify section.
func setupAccessConfig(t *testing.T, cfgText string) *accessBundle {
	t.Helper()
	ctx := context.Background()
	appURL := testenv.PostgresURL(t)
	storeURL := testenv.PostgresURL(t)
	app, err := pgx.Connect(ctx, appURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	if _, err := app.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY, status text); INSERT INTO orders VALUES (1, 'pending'), (2, 'paid')"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "steward.yaml"), []byte(strings.ReplaceAll(cfgText, "APPDB", appURL)), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.Open(ctx, storeURL, store.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &accessBundle{actionsBundle: &actionsBundle{bundle: &bundle{store: st, audit: storeAudit(st), reg: prometheus.NewRegistry()},
		cfg: cfg, tokens: map[string]string{}}, appURL: appURL, logs: logs}
	custom := map[string][]auth.Permission{}
	for _, r := range cfg.Roles {
		for _, p := range r.Permissions {
			custom[r.Name] = append(custom[r.Name], auth.Permission(p))
		}
	}
	b.auth = auth.NewManager(st, custom, b.audit)
	for _, u := range cfg.Users {
		_, tok, err := b.auth.AddUser(ctx, "local:test", u.Name, u.Name+"@example.com", u.Roles, true)
		if err != nil {
			t.Fatal(err)
		}
		b.tokens[u.Name] = tok
	}
	current := func() *config.Config { return cfg }
	kinds := action.NewRegistry()
	kinds.Register(&gate.Gate{Config: current})
	outbox := notify.NewOutbox(st, cfg.Notify, nil, notify.Options{Logger: log})
	kinds.Register(access.NewGrantKind(&access.Deps{Config: current, Store: st, Audit: b.audit, Logger: log.With("component", "access"),
		SessionWait: 20 * time.Second, Notifier: outbox}))
	b.actions, err = action.New(action.Options{Store: st, Kinds: kinds, Config: cfg, Audit: b.audit, Logger: log, Notifier: outbox})
	if err != nil {
		t.Fatal(err)
	}
	b.srv, err = New(Options{Config: cfg, Store: st, Auth: b.auth, Audit: b.audit, Logger: log, Registry: b.reg, Version: "test", Actions: b.actions})
	if err != nil {
		t.Fatal(err)
	}
	b.ts = httptest.NewServer(b.srv.Handler())
	t.Cleanup(b.ts.Close)
	// Roles are cluster-wide: drop whatever a failed test left.
	t.Cleanup(func() {
		ctx := context.Background()
		gs, _ := st.ListGrants(ctx, store.GrantFilter{Limit: 1000})
		for _, g := range gs {
			_, _ = app.Exec(ctx, `DROP OWNED BY "`+g.RoleName+`"`)
			_, _ = app.Exec(ctx, `DROP ROLE IF EXISTS "`+g.RoleName+`"`)
		}
	})
	return b
}

// requestApproved has alice request a read-only grant over the API and bob
// and carol approve it; it returns the action.
func (b *accessBundle) requestApproved(t *testing.T) action.Action {
	t.Helper()
	var out actionReply
	b.callJSON(t, "POST", "/api/v1/access/grants", "alice",
		`{"service":"shop","database":"main","profile":"read-only","for":"1h","reason":"INC-42: stuck orders","ticket":"INC-42"}`, http.StatusCreated, &out)
	if out.Action.Kind != access.KindName || out.Action.State != action.PendingApproval || out.Action.Requester != "alice" {
		t.Fatalf("requested: %+v", out.Action)
	}
	for _, who := range []string{"bob", "carol"} {
		b.callJSON(t, "POST", fmt.Sprintf("/api/v1/actions/%d/approve", out.Action.ID), who, `{"comment":"ok"}`, http.StatusOK, nil)
	}
	return out.Action
}

// storeText is every row of the store's tables that could hold what an
// action, a grant or the audit trail recorded, as text.
func (b *accessBundle) storeText(t *testing.T) string {
	t.Helper()
	return b.tablesText(t, []string{"audit_events", "actions", "grants", "approvals"}, "notify_outbox")
}

// tablesText is every row of the tables, as text. Each of full must have
// rows, or the scan looks at the wrong place; maybeEmpty may have none.
func (b *accessBundle) tablesText(t *testing.T, full []string, maybeEmpty ...string) string {
	t.Helper()
	var sb strings.Builder
	for _, table := range append(slices.Clone(full), maybeEmpty...) {
		rows, err := b.store.DB().QueryContext(t.Context(), "SELECT t::text FROM "+table+" t")
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		n := 0
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			sb.WriteString(s + "\n")
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if n == 0 && slices.Contains(full, table) {
			t.Fatalf("table %s is empty: the scan looks at the wrong place", table)
		}
	}
	return sb.String()
}

type issueReply struct {
	Action     action.Action      `json:"action"`
	Grant      *access.Grant      `json:"grant"`
	DSN        string             `json:"dsn"`
	Credential *access.Credential `json:"credential"`
	Error      string             `json:"error"`
}

// TestAccessGrantOverHTTP: request by alice, two approvals, a refused issue
// by someone else, the requester's issue hands over a DSN that connects,
// a second issue is refused, and the DSN is nowhere in the store or logs.
func TestAccessGrantOverHTTP(t *testing.T) {
	t.Parallel()
	b := setupAccess(t)
	ctx := context.Background()

	// Bad requests are refused with what to do.
	for _, c := range []struct {
		user, body string
		status     int
		want       string
	}{
		{"alice", `{"service":"shop","database":"main","profile":"owner","for":"1h","reason":"x"}`, http.StatusBadRequest, "known: read-only"},
		{"alice", `{"service":"shop","database":"main","profile":"read-only","for":"5h","reason":"x"}`, http.StatusBadRequest, "at most 4h"},
		{"alice", `{"service":"shop","database":"main","profile":"read-only","for":"1h"}`, http.StatusBadRequest, "reason"},
		{"alice", `{"service":"shop","profile":"read-only","for":"1h","reason":"x"}`, http.StatusBadRequest, "database required"},
		{"alice", `{"service":"shop","database":"main","profile":"read-only","for":"1h","reason":"x","break_glass":true}`, http.StatusBadRequest, "unknown field"},
		{"dave", `{"service":"shop","database":"main","profile":"read-only","for":"1h","reason":"x"}`, http.StatusForbidden, "permission"},
	} {
		r := b.call(t, "POST", "/api/v1/access/grants", c.user, c.body)
		if r.StatusCode != c.status || !strings.Contains(r.body, c.want) {
			t.Errorf("request %s as %s: %d %s, want %d with %q", c.body, c.user, r.StatusCode, r.body, c.status, c.want)
		}
	}

	a := b.requestApproved(t)
	issue := fmt.Sprintf("/api/v1/access/grants/%d/issue", a.ID)

	// Someone else than the requester: 403, audited, nothing created, the
	// action stays approved. The generic execute path refuses too.
	r := b.call(t, "POST", issue, "erin", "")
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "requested by alice") || !strings.Contains(r.body, "shown once") {
		t.Fatalf("issue by erin: %d %s", r.StatusCode, r.body)
	}
	if r := b.call(t, "POST", issue, "bob", ""); r.StatusCode != http.StatusForbidden {
		t.Fatalf("issue by bob: %d %s", r.StatusCode, r.body)
	}
	if r := b.call(t, "POST", fmt.Sprintf("/api/v1/actions/%d/execute", a.ID), "erin", ""); r.StatusCode != http.StatusForbidden ||
		!strings.Contains(r.body, "only the requester") {
		t.Fatalf("execute by erin: %d %s", r.StatusCode, r.body)
	}
	if n := b.countAudit(t, "user:erin", "access.issue", "denied"); n != 1 {
		t.Fatalf("%d access.issue denials audited, want 1", n)
	}
	var got actionReply
	b.callJSON(t, "GET", fmt.Sprintf("/api/v1/actions/%d", a.ID), "alice", "", http.StatusOK, &got)
	if got.Action.State != action.Approved {
		t.Fatalf("after refused issues the action is %s", got.Action.State)
	}
	if gs, _ := b.store.ListGrants(ctx, store.GrantFilter{Limit: 10}); len(gs) != 0 {
		t.Fatalf("a refused issue created grants: %+v", gs)
	}
	// Another kind cannot be issued.
	gateAct := b.request(t, "a deploy")
	if r := b.call(t, "POST", fmt.Sprintf("/api/v1/access/grants/%d/issue", gateAct.ID), "alice", ""); r.StatusCode != http.StatusBadRequest ||
		!strings.Contains(r.body, "not an access grant") {
		t.Fatalf("issue of a gate: %d %s", r.StatusCode, r.body)
	}

	// The requester gets the connection string, once.
	var out issueReply
	r = b.callJSON(t, "POST", issue, "alice", "", http.StatusCreated, &out)
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if out.DSN == "" || out.Credential == nil || out.Credential.DSN != out.DSN || out.Credential.Password == "" || out.Grant == nil {
		t.Fatalf("issue: %s", r.body)
	}
	if out.Action.State != action.Succeeded || out.Grant.State != access.StateActive || strings.Join(out.Grant.Approvers, ",") != "bob,carol" ||
		out.Grant.Requester != "alice" || out.Grant.ActionID != a.ID {
		t.Fatalf("issued: action %s, grant %+v", out.Action.State, out.Grant)
	}
	if loc := r.Header.Get("Location"); loc != fmt.Sprintf("/api/v1/access/grants/%d", out.Grant.ID) {
		t.Errorf("Location %q", loc)
	}
	secret := out.Credential.Password
	conn, err := pgx.Connect(ctx, out.DSN)
	if err != nil {
		t.Fatalf("connect with the handed-out DSN: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
		t.Fatalf("SELECT: %d %v", n, err)
	}
	if _, err := conn.Exec(ctx, "UPDATE orders SET status = 'x'"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("UPDATE by read-only: %v", err)
	}

	// Twice is refused, by the requester too.
	r = b.call(t, "POST", issue, "alice", "")
	if r.StatusCode != http.StatusConflict || !strings.Contains(r.body, "already issued") || strings.Contains(r.body, secret) {
		t.Fatalf("second issue: %d %s", r.StatusCode, r.body)
	}

	// Reading grants shows who, what and why, never the secret.
	var list struct {
		Grants []access.Grant `json:"grants"`
	}
	r = b.callJSON(t, "GET", "/api/v1/access/grants?active=true", "dave", "", http.StatusOK, &list)
	if len(list.Grants) != 1 || list.Grants[0].ID != out.Grant.ID || list.Grants[0].Reason != "INC-42: stuck orders" || strings.Contains(r.body, secret) {
		t.Fatalf("list: %s", r.body)
	}
	for _, path := range []string{fmt.Sprintf("/api/v1/access/grants/%d", out.Grant.ID), fmt.Sprintf("/api/v1/actions/%d", a.ID),
		"/api/v1/access/grants", "/api/v1/actions"} {
		if r := b.call(t, "GET", path, "dave", ""); r.StatusCode != http.StatusOK || strings.Contains(r.body, secret) {
			t.Fatalf("GET %s: %d, or it holds the secret", path, r.StatusCode)
		}
	}
	for _, q := range []string{"?active=maybe", "?limit=0"} {
		if r := b.call(t, "GET", "/api/v1/access/grants"+q, "dave", ""); r.StatusCode != http.StatusBadRequest {
			t.Errorf("list %s: %d", q, r.StatusCode)
		}
	}
	if r := b.call(t, "GET", "/api/v1/access/grants/999", "dave", ""); r.StatusCode != http.StatusNotFound {
		t.Errorf("missing grant: %d", r.StatusCode)
	}

	// Revoke: not by a viewer, not without a reason; then by the requester,
	// with proof; then not again.
	revoke := fmt.Sprintf("/api/v1/access/grants/%d/revoke", out.Grant.ID)
	if r := b.call(t, "POST", revoke, "dave", `{"reason":"x"}`); r.StatusCode != http.StatusForbidden {
		t.Fatalf("revoke by a viewer: %d %s", r.StatusCode, r.body)
	}
	if r := b.call(t, "POST", revoke, "alice", `{}`); r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "reason") {
		t.Fatalf("revoke without reason: %d %s", r.StatusCode, r.body)
	}
	var rev struct {
		Grant access.Grant `json:"grant"`
		Error string       `json:"error"`
	}
	b.callJSON(t, "POST", revoke, "alice", `{"reason":"done"}`, http.StatusOK, &rev)
	if rev.Grant.State != access.StateRevoked || rev.Grant.Revocation == nil || len(rev.Grant.Revocation.Steps) != len(access.Steps) || rev.Error != "" {
		t.Fatalf("revoke: %+v", rev)
	}
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err == nil {
		t.Fatal("the session survived the revocation")
	}
	if c, err := pgx.Connect(ctx, out.DSN); err == nil {
		c.Close(ctx)
		t.Fatal("login after revocation")
	}
	if r := b.call(t, "POST", revoke, "alice", `{"reason":"again"}`); r.StatusCode != http.StatusConflict || !strings.Contains(r.body, "cannot be revoked") {
		t.Fatalf("second revoke: %d %s", r.StatusCode, r.body)
	}
	b.callJSON(t, "GET", fmt.Sprintf("/api/v1/access/grants/%d", out.Grant.ID), "dave", "", http.StatusOK, &rev)
	if rev.Grant.State != access.StateRevoked || rev.Grant.Revocation.CompletedAt == nil || rev.Grant.Revocation.Reason != "done" {
		t.Fatalf("revoked grant: %+v", rev.Grant)
	}

	// Two issue calls at once: one hands the credential over, the other is
	// refused.
	a2 := b.requestApproved(t)
	statuses := make(chan string, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/access/grants/%d/issue", b.ts.URL, a2.ID), nil)
			req.Header.Set("Authorization", "Bearer "+b.tokens["alice"])
			resp, err := b.ts.Client().Do(req)
			if err != nil {
				statuses <- err.Error()
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			statuses <- fmt.Sprintf("%d %s", resp.StatusCode, body)
		}()
	}
	got1, got2 := <-statuses, <-statuses
	if strings.HasPrefix(got2, "201 ") {
		got1, got2 = got2, got1
	}
	if !strings.HasPrefix(got1, "201 ") || !strings.HasPrefix(got2, "409 ") || !strings.Contains(got2, "already issued") {
		t.Fatalf("concurrent issues: %s / %s", got1, got2)
	}
	if gs, _ := b.store.ListGrants(ctx, store.GrantFilter{Limit: 10}); len(gs) != 2 {
		t.Fatalf("%d grants after two requests", len(gs))
	}

	// The secret is nowhere: not in the store, the audit trail, the logs.
	all := b.storeText(t)
	if !strings.Contains(all, out.Grant.Role) {
		t.Fatal("the store scan does not see the grant's role: it looks at the wrong rows")
	}
	for what, text := range map[string]string{"store": all, "logs": b.logs.String()} {
		if strings.Contains(text, secret) || strings.Contains(text, out.DSN) {
			t.Errorf("the %s hold the connection string", what)
		}
	}
}

// TestAccessIssueUI: the requester issues an approved grant from the action
// page and sees the connection string once; others see no button.
func TestAccessIssueUI(t *testing.T) {
	t.Parallel()
	b := setupAccess(t)
	a := b.requestApproved(t)
	page := fmt.Sprintf("/actions/%d", a.ID)

	r := b.page(t, page, "alice")
	for _, want := range []string{`action="` + page + `/issue"`, "Issue credentials", "shows its connection string once"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("requester's page lacks %q", want)
		}
	}
	r = b.page(t, page, "bob")
	if strings.Contains(r.body, page+"/issue") || !strings.Contains(r.body, "Only alice, who requested it, can issue the credentials") {
		t.Errorf("approver's page:\n%s", r.body)
	}
	// Cross-site posts never reach the pipeline.
	if r := b.form(t, page+"/issue", "alice", nil, "Origin: https://evil.example", "Sec-Fetch-Site: cross-site"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site issue: %d", r.StatusCode)
	}
	// Someone else posting the form is refused on the page.
	r = b.form(t, page+"/issue", "erin", url.Values{})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "requested by alice") || !strings.Contains(r.body, `role="alert"`) {
		t.Fatalf("issue by erin: %d\n%s", r.StatusCode, r.body)
	}

	r = b.form(t, page+"/issue", "alice", url.Values{})
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "shown only this once") {
		t.Fatalf("issue: %d\n%s", r.StatusCode, r.body)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	gs, err := b.store.ListGrants(t.Context(), store.GrantFilter{Limit: 10})
	if err != nil || len(gs) != 1 {
		t.Fatalf("grants: %v %v", gs, err)
	}
	start := strings.Index(r.body, "postgres://"+gs[0].RoleName+":")
	if start < 0 {
		t.Fatalf("the page shows no DSN for %s:\n%s", gs[0].RoleName, r.body)
	}
	dsn := r.body[start : start+strings.IndexByte(r.body[start:], '<')]
	dsn = strings.ReplaceAll(dsn, "&amp;", "&")
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect with the DSN of the page %q: %v", dsn, err)
	}
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
		t.Fatalf("SELECT: %d %v", n, err)
	}
	conn.Close(t.Context())

	// Posting again (a reload) does not show it again.
	r = b.form(t, page+"/issue", "alice", url.Values{})
	if r.StatusCode != http.StatusConflict || !strings.Contains(r.body, "already issued") || strings.Contains(r.body, dsn) {
		t.Fatalf("second issue: %d\n%s", r.StatusCode, r.body)
	}
	if r := b.page(t, page, "alice"); strings.Contains(r.body, "Issue credentials") || strings.Contains(r.body, dsn) {
		t.Fatalf("the action page after issuing:\n%s", r.body)
	}
	if strings.Contains(b.logs.String(), dsn) {
		t.Fatal("the logs hold the connection string")
	}
}

// A server whose pipeline has no access.grant kind says so.
func TestAccessDisabled(t *testing.T) {
	t.Parallel()
	b := setupActions(t, "")
	r := b.call(t, "GET", "/api/v1/access/grants", "bob", "")
	if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(r.body, "access grants are not enabled") {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
}

// breakGlassConfig gives rita a custom role whose only powers are read and
// break_glass. read-only allows break-glass for 30m at most; writer does
// not allow it. The route sends nothing but action.pending anywhere, so
// what reaches both channels went to every channel.
const breakGlassConfig = `
roles:
  - {name: responder, permissions: [read, break_glass]}
users:
  - {name: alice, roles: [operator]}
  - {name: bob, roles: [approver]}
  - {name: rita, roles: [responder]}
services:
  - name: shop
    databases:
      - {name: main, engine: postgres, url: "APPDB"}
    access:
      - {database: main, profile: read-only, grants: ["SELECT ON ALL TABLES IN SCHEMA public"], max: 4h, break_glass: true, break_glass_max: 30m}
      - {database: main, profile: writer, grants: ["SELECT, UPDATE ON ALL TABLES IN SCHEMA public"], max: 1h}
notify:
  channels:
    - {name: ops-hook, type: webhook, url: "http://127.0.0.1:9/ops"}
    - {name: pager-hook, type: webhook, url: "http://127.0.0.1:9/pager"}
  routes:
    - {match: {event: [action.pending]}, channels: [ops-hook]}
policies:
  break_glass_reviewers: 2
  approvals:
    - name: access
      match: {action: [access.grant]}
      require: [{approvals: 2, from: ["role:approver"]}]
`

type breakGlassReply struct {
	issueReply
	Review reviewJSON `json:"review"`
}

// TestAccessBreakGlassOverHTTP: refusals (no break_glass permission,
// audited; a profile without break-glass; over break_glass_max; bad
// bodies) create nothing. rita, whose custom role holds break_glass, gets
// the DSN once; it connects and reads; the action and the grant are
// flagged, a review is open, every channel was told, and the DSN is
// nowhere in the store or the logs.
func TestAccessBreakGlassOverHTTP(t *testing.T) {
	t.Parallel()
	b := setupAccessConfig(t, breakGlassConfig)
	ctx := context.Background()
	const path = "/api/v1/access/break-glass"
	body := func(profile, dur string) string {
		return fmt.Sprintf(`{"service":"shop","database":"main","profile":%q,"for":%q,"reason":"INC-43: checkout down","ticket":"INC-43"}`, profile, dur)
	}

	for _, c := range []struct {
		user, body string
		status     int
		want       []string
	}{
		{"alice", body("read-only", "15m"), http.StatusForbidden, []string{"break_glass permission", "user:alice"}},
		{"rita", body("writer", "15m"), http.StatusForbidden, []string{"sets break_glass: false", "steward access request"}},
		{"rita", body("read-only", "45m"), http.StatusBadRequest, []string{"at most 30m", "break_glass_max"}},
		{"rita", body("owner", "15m"), http.StatusBadRequest, []string{"known: read-only, writer"}},
		{"rita", `{"service":"shop","database":"main","profile":"read-only","for":"15m"}`, http.StatusBadRequest, []string{"reason"}},
		{"rita", `{"service":"shop","profile":"read-only","for":"15m","reason":"x"}`, http.StatusBadRequest, []string{"database required"}},
		{"rita", `{"service":"shop","database":"main","profile":"read-only","for":"15m","reason":"x","break_glass":false}`, http.StatusBadRequest, []string{"unknown field"}},
		{"", body("read-only", "15m"), http.StatusUnauthorized, []string{"no API token"}},
	} {
		r := b.call(t, "POST", path, c.user, c.body)
		if r.StatusCode != c.status {
			t.Errorf("break-glass %s as %s: %d %s, want %d", c.body, c.user, r.StatusCode, r.body, c.status)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.body, w) {
				t.Errorf("break-glass %s as %s: %s, want %q in it", c.body, c.user, r.body, w)
			}
		}
	}
	if n := b.countAudit(t, "user:alice", "action.break_glass", "denied"); n != 1 {
		t.Fatalf("%d action.break_glass denials of alice audited, want 1", n)
	}
	if gs, _ := b.store.ListGrants(ctx, store.GrantFilter{Limit: 10}); len(gs) != 0 {
		t.Fatalf("refused break-glass created grants: %+v", gs)
	}
	if as, _ := b.actions.List(ctx, store.ActionFilter{Limit: 10}); len(as) != 0 {
		t.Fatalf("refused break-glass created actions: %+v", as)
	}

	var out breakGlassReply
	start := time.Now()
	r := b.callJSON(t, "POST", path, "rita", body("read-only", "15m"), http.StatusCreated, &out)
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if out.DSN == "" || out.Credential == nil || out.Credential.DSN != out.DSN || out.Credential.Password == "" || out.Grant == nil || out.Error != "" {
		t.Fatalf("break-glass: %s", r.body)
	}
	secret := out.Credential.Password
	if loc := r.Header.Get("Location"); loc != fmt.Sprintf("/api/v1/access/grants/%d", out.Grant.ID) {
		t.Errorf("Location %q", loc)
	}
	if a := out.Action; a.Kind != access.KindName || !a.BreakGlass || a.State != action.Succeeded || a.Requester != "rita" || a.Rule != "break-glass" {
		t.Fatalf("action: %+v", a)
	}
	if g := out.Grant; !g.BreakGlass || g.State != access.StateActive || g.Requester != "rita" || g.ActionID != out.Action.ID ||
		g.Reason != "INC-43: checkout down" || len(g.Approvers) != 0 || g.ExpiresAt.Before(start.Add(14*time.Minute)) || g.ExpiresAt.After(start.Add(16*time.Minute)) {
		t.Fatalf("grant: %+v", g)
	}
	if rv := out.Review; rv.ID == 0 || rv.State != action.ReviewOpen || rv.Breaker != "rita" || rv.Required != 2 || rv.ActionID != out.Action.ID || rv.Overdue {
		t.Fatalf("review: %+v", rv)
	}

	// The DSN connects and reads.
	conn, err := pgx.Connect(ctx, out.DSN)
	if err != nil {
		t.Fatalf("connect with the break-glass DSN: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
		t.Fatalf("SELECT: %d %v", n, err)
	}
	if _, err := conn.Exec(ctx, "UPDATE orders SET status = 'x'"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("UPDATE by read-only: %v", err)
	}
	conn.Close(ctx)

	// The review is listed for others to complete.
	var reviews struct{ Reviews []reviewJSON }
	b.callJSON(t, "GET", "/api/v1/reviews?state=open", "bob", "", http.StatusOK, &reviews)
	if len(reviews.Reviews) != 1 || reviews.Reviews[0].ID != out.Review.ID {
		t.Fatalf("open reviews: %+v", reviews)
	}

	// Every channel was told, before (break_glass.used) and after
	// (access.break_glass) the role was created.
	rows, err := b.store.DB().QueryContext(ctx, "SELECT channel, event, payload FROM notify_outbox ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for rows.Next() {
		var ch, ev, payload string
		if err := rows.Scan(&ch, &ev, &payload); err != nil {
			t.Fatal(err)
		}
		got[ev] = append(got[ev], ch)
		if ev == "access.break_glass" && !strings.Contains(payload, "rita has read-only on shop/main") {
			t.Errorf("access.break_glass says %s", payload)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for _, ev := range []string{"break_glass.used", "access.break_glass"} {
		slices.Sort(got[ev])
		if strings.Join(got[ev], ",") != "ops-hook,pager-hook" {
			t.Errorf("%s went to %v, want every channel (ops-hook, pager-hook); outbox %v", ev, got[ev], got)
		}
	}
	if n := b.countAudit(t, "user:rita", "action.break_glass", "ok"); n != 1 {
		t.Errorf("%d action.break_glass by rita audited, want 1", n)
	}

	// Reading it back never shows the secret; the store and the logs never
	// held it.
	for _, p := range []string{fmt.Sprintf("/api/v1/access/grants/%d", out.Grant.ID), fmt.Sprintf("/api/v1/actions/%d", out.Action.ID),
		"/api/v1/access/grants", "/api/v1/reviews"} {
		if r := b.call(t, "GET", p, "bob", ""); r.StatusCode != http.StatusOK || strings.Contains(r.body, secret) {
			t.Fatalf("GET %s: %d, or it holds the secret", p, r.StatusCode)
		}
	}
	all := b.tablesText(t, []string{"audit_events", "actions", "grants", "reviews", "notify_outbox"})
	if !strings.Contains(all, out.Grant.Role) {
		t.Fatal("the store scan does not see the grant's role: it looks at the wrong rows")
	}
	for what, text := range map[string]string{"store": all, "logs": b.logs.String()} {
		if strings.Contains(text, secret) || strings.Contains(text, out.DSN) {
			t.Errorf("the %s hold the connection string", what)
		}
	}

	// The one who broke the glass ends it like any grant.
	var rev struct {
		Grant access.Grant `json:"grant"`
	}
	b.callJSON(t, "POST", fmt.Sprintf("/api/v1/access/grants/%d/revoke", out.Grant.ID), "rita", `{"reason":"INC-43 fixed"}`, http.StatusOK, &rev)
	if rev.Grant.State != access.StateRevoked {
		t.Fatalf("revoke: %+v", rev.Grant)
	}
}
