package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const gateConfig = `steward:
  data_dir: data
services:
  - name: shop
    tier: TIER
policies:
  approvals:
    - name: deploys
      match: {action: [deploy.gate]}
      require: [{approvals: 2, from: ["role:approver"]}]
      expires: EXPIRES
`

type gateEnv struct {
	cfg    string
	tokens map[string]string
}

// setupGate writes the config and creates three users with `steward user add`.
func setupGate(t *testing.T, expires string) *gateEnv {
	t.Helper()
	dir := t.TempDir()
	e := &gateEnv{cfg: filepath.Join(dir, "steward.yaml"), tokens: map[string]string{}}
	e.writeConfig(t, 1, expires)
	for _, u := range []struct{ name, role string }{{"alice", "operator"}, {"bob", "approver"}, {"carol", "approver"}} {
		r := steward(t, "-c", e.cfg, "user", "add", u.name, "--role", u.role, "-o", "json")
		var res userAddResult
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
			t.Fatalf("user add %s: %+v", u.name, r)
		}
		e.tokens[u.name] = res.Token
	}
	return e
}

func (e *gateEnv) writeConfig(t *testing.T, tier int, expires string) {
	t.Helper()
	c := strings.NewReplacer("TIER", string(rune('0'+tier)), "EXPIRES", expires).Replace(gateConfig)
	if err := os.WriteFile(e.cfg, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *gateEnv) as(t *testing.T, user string, args ...string) result {
	t.Helper()
	return steward(t, append([]string{"-c", e.cfg, "--token", e.tokens[user]}, args...)...)
}

// startGate runs `steward gate` as alice in the background.
func (e *gateEnv) startGate(t *testing.T, wait string) (<-chan result, func() int64) {
	t.Helper()
	done := make(chan result, 1)
	go func() {
		done <- stewardCtx(t, context.Background(), "-c", e.cfg, "--token", e.tokens["alice"], "gate", "--service", "shop",
			"--version", "v2.0.1", "--reason", "release 2.0.1", "--wait", wait, "--poll", "100ms")
	}()
	// The gate's action id, once it exists.
	id := func() int64 {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			r := steward(t, "-c", e.cfg, "action", "list", "--state", "pending_approval", "-o", "json")
			var acts []struct {
				ID int64 `json:"id"`
			}
			if r.code == 0 && json.Unmarshal([]byte(r.stdout), &acts) == nil && len(acts) > 0 {
				return acts[0].ID
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("gate action did not appear")
		return 0
	}
	return done, id
}

func TestGateApprovedByTwoOthers(t *testing.T) {
	t.Parallel()
	e := setupGate(t, "1h")
	done, idf := e.startGate(t, "30s")
	id := idf()
	sid := itoa(id)
	r := e.as(t, "alice", "approve", sid)
	if r.code != exitUsage || !strings.Contains(r.stderr, "requester cannot approve their own action") {
		t.Fatalf("self approval: %+v", r)
	}
	if r := e.as(t, "bob", "approve", sid, "--comment", "lgtm"); r.code != 0 || !strings.Contains(r.stdout, "still needs") {
		t.Fatalf("bob approves: %+v", r)
	}
	if r := e.as(t, "carol", "approve", sid); r.code != 0 || !strings.Contains(r.stdout, "approved") {
		t.Fatalf("carol approves: %+v", r)
	}
	select {
	case g := <-done:
		if g.code != 0 || !strings.Contains(g.stdout, "gate: OPEN") || !strings.Contains(g.stdout, "role:approver") {
			t.Fatalf("gate: exit %d\n%s\n%s", g.code, g.stdout, g.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gate did not return")
	}
	r = steward(t, "-c", e.cfg, "action", "show", sid, "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"state": "succeeded"`) {
		t.Fatalf("action show: %+v", r)
	}
}

func TestGateRejectedExits1(t *testing.T) {
	t.Parallel()
	e := setupGate(t, "1h")
	done, idf := e.startGate(t, "30s")
	id := itoa(idf())
	if r := e.as(t, "bob", "reject", id); r.code != exitUsage || !strings.Contains(r.stderr, "comment") {
		t.Fatalf("reject without comment: %+v", r)
	}
	if r := e.as(t, "bob", "reject", id, "--comment", "not during the sale"); r.code != 0 {
		t.Fatalf("reject: %+v", r)
	}
	g := <-done
	if g.code != exitFailed || !strings.Contains(g.stdout, "CLOSED") {
		t.Fatalf("rejected gate: exit %d\n%s\n%s", g.code, g.stdout, g.stderr)
	}
}

func TestGateTimesOutExits1(t *testing.T) {
	t.Parallel()
	e := setupGate(t, "1h")
	done, _ := e.startGate(t, "1s")
	g := <-done
	if g.code != exitFailed || !strings.Contains(g.stdout, "no decision within") {
		t.Fatalf("timed out gate: exit %d\n%s\n%s", g.code, g.stdout, g.stderr)
	}
}

func TestExpiredApprovalDoesNotCount(t *testing.T) {
	t.Parallel()
	e := setupGate(t, "1500ms")
	done, idf := e.startGate(t, "20s")
	id := itoa(idf())
	if r := e.as(t, "bob", "approve", id); r.code != 0 {
		t.Fatalf("bob: %+v", r)
	}
	time.Sleep(1700 * time.Millisecond)
	r := e.as(t, "carol", "approve", id)
	if r.code != 0 || !strings.Contains(r.stdout, "pending_approval") {
		t.Fatalf("carol after bob's approval expired: %+v", r)
	}
	r = steward(t, "-c", e.cfg, "action", "show", id)
	if !strings.Contains(r.stdout, "bob (approval expired") {
		t.Fatalf("show does not explain the expired approval:\n%s", r.stdout)
	}
	if r := e.as(t, "bob", "approve", id); r.code != 0 || !strings.Contains(r.stdout, "approved") {
		t.Fatalf("bob again: %+v", r)
	}
	if g := <-done; g.code != 0 {
		t.Fatalf("gate: %+v", g)
	}
}

func TestReplannedActionLosesApprovals(t *testing.T) {
	t.Parallel()
	e := setupGate(t, "1h")
	r := e.as(t, "alice", "action", "request", "deploy.gate", "--service", "shop", "--param", "version=v3", "--reason", "release 3", "-o", "json")
	var created struct {
		Action struct {
			ID       int64  `json:"id"`
			PlanHash string `json:"plan_hash"`
		} `json:"action"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &created) != nil {
		t.Fatalf("request: %+v", r)
	}
	id := itoa(created.Action.ID)
	if r := e.as(t, "bob", "approve", id); r.code != 0 {
		t.Fatalf("bob: %+v", r)
	}
	// The service becomes tier 2: the plan (and its risk) changes.
	e.writeConfig(t, 2, "1h")
	if r := e.as(t, "alice", "action", "replan", id); r.code != 0 || !strings.Contains(r.stdout, "approvals are void") {
		t.Fatalf("replan: %+v", r)
	}
	if r := e.as(t, "carol", "approve", id, "--plan", created.Action.PlanHash); r.code != exitUsage || !strings.Contains(r.stderr, "plan") {
		t.Fatalf("approval pinned to the old plan: %+v", r)
	}
	r = e.as(t, "carol", "approve", id)
	if r.code != 0 || !strings.Contains(r.stdout, "pending_approval") {
		t.Fatalf("bob's approval of the old plan must not count: %+v", r)
	}
	if r := e.as(t, "alice", "action", "execute", id); r.code != exitUsage || !strings.Contains(r.stderr, "not approved") {
		t.Fatalf("execute unapproved: %+v", r)
	}
}

func TestBreakGlassCLI(t *testing.T) {
	t.Parallel()
	e := setupGate(t, "1h")
	// Local use without a token is the store's administrator, who holds
	// break_glass; alice (operator) does not.
	r := e.as(t, "alice", "action", "break-glass", "deploy.gate", "--service", "shop", "--param", "version=hotfix-1", "--reason", "INC-9")
	if r.code != exitUsage || !strings.Contains(r.stderr, "break_glass") {
		t.Fatalf("operator break-glass: %+v", r)
	}
	r = steward(t, "-c", e.cfg, "action", "break-glass", "deploy.gate", "--service", "shop", "--param", "version=hotfix-1", "--reason", "INC-9", "-o", "json")
	var out struct {
		Action struct {
			State      string `json:"state"`
			BreakGlass bool   `json:"break_glass"`
		} `json:"action"`
		Review struct {
			ID int64 `json:"id"`
		} `json:"review"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Action.State != "succeeded" || !out.Action.BreakGlass {
		t.Fatalf("break-glass: %+v", r)
	}
	rid := itoa(out.Review.ID)
	for _, u := range []string{"bob", "carol"} {
		if r := e.as(t, u, "review", "complete", rid, "--notes", "checked the deploy log"); r.code != 0 {
			t.Fatalf("%s review: %+v", u, r)
		}
	}
	r = steward(t, "-c", e.cfg, "review", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "completed") {
		t.Fatalf("review list: %+v", r)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The gate and the votes work against a server with tokens only: the CI
// runner and the approvers need neither the store nor the config.
func TestGateAgainstServer(t *testing.T) {
	t.Parallel()
	e := setupGate(t, "1h")
	url, stop := startServeConfig(t, e.cfg, "")
	defer stop()
	remote := func(user string, args ...string) result {
		return steward(t, append([]string{"--server", url, "--token", e.tokens[user]}, args...)...)
	}
	done := make(chan result, 1)
	go func() {
		done <- stewardCtx(t, context.Background(), "--server", url, "--token", e.tokens["alice"], "gate", "--service", "shop",
			"--version", "v9", "--reason", "release 9", "--wait", "30s", "--poll", "100ms")
	}()
	var id string
	deadline := time.Now().Add(10 * time.Second)
	for id == "" && time.Now().Before(deadline) {
		r := remote("bob", "action", "list", "--state", "pending_approval", "-o", "json")
		var acts []struct {
			ID int64 `json:"id"`
		}
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &acts) == nil && len(acts) > 0 {
			id = itoa(acts[0].ID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if id == "" {
		t.Fatal("gate action did not appear on the server")
	}
	if r := remote("alice", "approve", id); r.code != exitUsage || !strings.Contains(r.stderr, "requester cannot approve") {
		t.Fatalf("remote self-approval: %+v", r)
	}
	if r := remote("bob", "approve", id, "-m", "ok"); r.code != 0 || !strings.Contains(r.stdout, "still needs") {
		t.Fatalf("bob: %+v", r)
	}
	if r := remote("carol", "approve", id); r.code != 0 {
		t.Fatalf("carol: %+v", r)
	}
	select {
	case g := <-done:
		if g.code != 0 || !strings.Contains(g.stdout, "gate: OPEN") {
			t.Fatalf("remote gate: exit %d\n%s\n%s", g.code, g.stdout, g.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("remote gate did not return")
	}
	if r := remote("bob", "action", "show", id); r.code != 0 || !strings.Contains(r.stdout, "SUCCEEDED") {
		t.Fatalf("remote show: %+v", r)
	}
	if r := steward(t, "--server", url, "--token", "stw_wrong", "gate", "--service", "shop", "--version", "v1", "--reason", "x"); r.code != exitUsage {
		t.Fatalf("bad token: %+v", r)
	}
}
