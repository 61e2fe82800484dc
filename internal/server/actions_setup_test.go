package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/gate"
	"github.com/stewardhq/steward/internal/store"
)

// actionsConfig has a deploy gate on shop needing two approvers. ghost is
// mapped to a Slack id but never created in the store.
const actionsConfig = `
roles:
  - {name: oncall, permissions: [read, operate, break_glass]}
users:
  - {name: alice, roles: [operator], slack: UALICE}
  - {name: bob, roles: [approver], slack: UBOB}
  - {name: carol, roles: [approver], slack: UCAROL}
  - {name: vic, roles: [viewer], slack: UVIC}
  - {name: frank, roles: [oncall]}
  - {name: ghost, roles: [approver], slack: UGHOST}
services:
  - {name: shop, tier: 1}
notify:
  channels:
    - {name: ops-slack, type: slack, url: "file:%s", secret: "file:%s"}
policies:
  break_glass_reviewers: 2
  approvals:
    - name: deploys
      match: {action: [deploy.gate], service: [shop]}
      require: [{approvals: 2, from: ["role:approver"]}]
      expires: 4h
`

// slackSigningSecret is the test Slack app's signing secret.
const slackSigningSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// actionsBundle is a running server with an action pipeline, on a real
// store with a hash-chained audit trail, and users with API tokens.
type actionsBundle struct {
	*bundle
	cfg     *config.Config
	actions *action.Pipeline
	tokens  map[string]string // user name to token secret
}

func setupActions(t *testing.T, storeURL string) *actionsBundle {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if storeURL == "" {
		storeURL = "sqlite://" + filepath.Join(dir, "steward.db")
	}
	hook, secret := filepath.Join(dir, "slack-webhook"), filepath.Join(dir, "slack-signing-secret")
	if err := os.WriteFile(hook, []byte("https://hooks.slack.com/services/T0/B0/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte(slackSigningSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(filepath.Join(dir, "steward.yaml"), fmt.Appendf(nil, actionsConfig, hook, secret), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := testLogger(t)
	st, err := store.Open(ctx, storeURL, store.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &actionsBundle{bundle: &bundle{store: st, audit: storeAudit(st), reg: prometheus.NewRegistry()}, cfg: cfg, tokens: map[string]string{}}
	custom := map[string][]auth.Permission{}
	for _, r := range cfg.Roles {
		for _, p := range r.Permissions {
			custom[r.Name] = append(custom[r.Name], auth.Permission(p))
		}
	}
	b.auth = auth.NewManager(st, custom, b.audit)
	for _, u := range cfg.Users {
		if u.Name == "ghost" {
			continue
		}
		_, tok, err := b.auth.AddUser(ctx, "local:test", u.Name, u.Name+"@example.com", u.Roles, true)
		if err != nil {
			t.Fatal(err)
		}
		b.tokens[u.Name] = tok
	}
	kinds := action.NewRegistry()
	kinds.Register(&gate.Gate{Config: func() *config.Config { return cfg }})
	b.actions, err = action.New(action.Options{Store: st, Kinds: kinds, Config: cfg, Audit: b.audit, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	b.srv, err = New(Options{Config: cfg, Store: st, Auth: b.auth, Audit: b.audit, Logger: log,
		Registry: b.reg, Version: "test", Actions: b.actions})
	if err != nil {
		t.Fatal(err)
	}
	b.ts = httptest.NewServer(b.srv.Handler())
	t.Cleanup(b.ts.Close)
	return b
}

// call sends a JSON body (none when "") as the user's bearer token.
func (b *actionsBundle) call(t *testing.T, method, path, user, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, b.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+b.tokens[user])
	}
	return b.send(t, req)
}

// callJSON is call that checks the status and decodes the answer into v.
func (b *actionsBundle) callJSON(t *testing.T, method, path, user, body string, want int, v any) response {
	t.Helper()
	r := b.call(t, method, path, user, body)
	if r.StatusCode != want {
		t.Fatalf("%s %s as %s: status %d, want %d; body %s", method, path, user, r.StatusCode, want, r.body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, want JSON", method, path, ct)
	}
	if v != nil {
		mustJSON(t, r.body, v)
	}
	return r
}

// form posts a form as the user, with the UI cookie and, unless vals has a
// "csrf" entry already, the cookie's CSRF token.
func (b *actionsBundle) form(t *testing.T, path, user string, vals url.Values, headers ...string) response {
	t.Helper()
	if _, ok := vals["csrf"]; !ok && user != "" {
		vals = maps.Clone(vals)
		if vals == nil {
			vals = url.Values{}
		}
		vals.Set("csrf", csrfToken(b.tokens[user]))
	}
	req, err := http.NewRequest("POST", b.ts.URL+path, strings.NewReader(vals.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: b.tokens[user]})
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	return b.send(t, req)
}

// page fetches a UI page as the user.
func (b *actionsBundle) page(t *testing.T, path, user string) response {
	t.Helper()
	return b.do(t, "GET", path, "", "Cookie: "+cookieName+"="+b.tokens[user])
}

// actionReply is the answer of the action endpoints.
type actionReply struct {
	Action    action.Action       `json:"action"`
	Decision  json.RawMessage     `json:"decision"`
	Approvals []store.ApprovalRow `json:"approvals"`
	Review    reviewJSON          `json:"review"`
	Changed   bool                `json:"changed"`
}

func gateBody(version, reason string) string {
	b, _ := json.Marshal(action.Request{Kind: gate.Kind, Service: "shop", Params: json.RawMessage(fmt.Sprintf(`{"version":%q}`, version)), Reason: reason})
	return string(b)
}

// request creates a deploy gate on shop as alice.
func (b *actionsBundle) request(t *testing.T, reason string) action.Action {
	t.Helper()
	var out actionReply
	b.callJSON(t, "POST", "/api/v1/actions", "alice", gateBody("v1.2.3", reason), http.StatusCreated, &out)
	return out.Action
}

// auditEvents returns the audit trail, oldest first.
func (b *actionsBundle) auditEvents(t *testing.T) []store.AuditRecord {
	t.Helper()
	recs, err := b.store.ListAudit(t.Context(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	return recs
}

// countAudit counts events with the actor, action and outcome.
func (b *actionsBundle) countAudit(t *testing.T, actor, act, outcome string) int {
	t.Helper()
	n := 0
	for _, r := range b.auditEvents(t) {
		if r.Actor == actor && r.Action == act && r.Outcome == outcome {
			n++
		}
	}
	return n
}
