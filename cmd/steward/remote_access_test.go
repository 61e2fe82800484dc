package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The access commands work against a server with tokens only: request
// --wait, approvals, the one-time issue, list, show and revoke.
func TestAccessCLIAgainstServer(t *testing.T) {
	t.Parallel()
	e := setupAccessCLI(t)
	url, stop := startServeConfig(t, e.cfg, "")
	defer stop()
	remote := func(user string, args ...string) result {
		return steward(t, append([]string{"--server", url, "--token", e.tokens[user]}, args...)...)
	}

	if r := remote("alice", "access", "request", "shop/main/read-only", "--for", "5h", "--reason", "INC-1"); r.code != exitUsage || !strings.Contains(r.stderr, "at most 4h") {
		t.Fatalf("too long: %+v", r)
	}
	if r := remote("dave", "access", "request", "shop/main/read-only", "--for", "1h", "--reason", "INC-1"); r.code != exitUsage || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("viewer: %+v", r)
	}

	done := make(chan result, 1)
	go func() {
		done <- steward(t, "--server", url, "--token", e.tokens["alice"], "access", "request", "shop/main/read-only", "--for", "1h",
			"--reason", "INC-42: stuck orders", "--wait", "60s", "--poll", "50ms", "-o", "json")
	}()
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for id == "" && time.Now().Before(deadline) {
		var acts []struct {
			ID    int64  `json:"id"`
			State string `json:"state"`
		}
		r := remote("bob", "action", "list", "--kind", "access.grant", "-o", "json")
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &acts) == nil && len(acts) == 1 && acts[0].State == "pending_approval" {
			id = itoa(acts[0].ID)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if id == "" {
		t.Fatal("the request did not appear on the server")
	}
	// Only the requester may issue it, approved or not.
	if r := remote("bob", "access", "issue", id); r.code != exitUsage || !strings.Contains(r.stderr, "requested by alice") {
		t.Fatalf("issue by bob: %+v", r)
	}
	for _, u := range []string{"bob", "carol"} {
		if r := remote(u, "approve", id); r.code != 0 {
			t.Fatalf("approve by %s: %+v", u, r)
		}
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("request --wait did not return")
	}
	var out issuedOutput
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Credential.DSN == "" || out.Grant.State != "active" {
		t.Fatalf("request --wait: %+v", r)
	}
	if strings.Join(out.Grant.Approvers, ",") != "bob,carol" {
		t.Fatalf("approvers: %v", out.Grant.Approvers)
	}
	if r := remote("alice", "access", "issue", id); r.code != exitUsage || !strings.Contains(r.stderr, "already issued") || strings.Contains(r.stdout+r.stderr, out.Credential.Password) {
		t.Fatalf("second issue: %+v", r)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, out.Credential.DSN)
	if err != nil {
		t.Fatalf("connect with the handed-out DSN: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 1 {
		t.Fatalf("select: %d %v", n, err)
	}

	// Remote and local print the same.
	gid := itoa(out.Grant.ID)
	for _, args := range [][]string{{"access", "list"}, {"access", "list", "--active", "-o", "json"}, {"access", "show", gid}, {"access", "show", gid, "-o", "json"}} {
		rr, lr := remote("bob", args...), e.as(t, "bob", args...)
		if rr.code != 0 || rr.stdout != lr.stdout || strings.Contains(rr.stdout, out.Credential.Password) || !strings.Contains(rr.stdout, out.Grant.Role) {
			t.Fatalf("%v: remote %+v\nlocal %+v", args, rr, lr)
		}
	}

	if r := remote("dave", "access", "revoke", gid, "--reason", "x"); r.code != exitUsage {
		t.Fatalf("revoke by a viewer: %+v", r)
	}
	r = remote("alice", "access", "revoke", gid, "--reason", "done")
	if r.code != 0 || !strings.Contains(r.stdout, "REVOKED") || !strings.Contains(r.stdout, "terminated 1 session") {
		t.Fatalf("revoke: %+v", r)
	}
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err == nil {
		t.Fatal("session survived the revocation")
	}
	if r := remote("alice", "access", "revoke", gid, "--reason", "again"); r.code != exitUsage || !strings.Contains(r.stderr, "cannot be revoked") {
		t.Fatalf("second revoke: %+v", r)
	}
	var gs []json.RawMessage
	if r := remote("bob", "access", "list", "--active", "-o", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &gs) != nil || len(gs) != 0 {
		t.Fatalf("active after revoke: %+v", r)
	}
}

// breakGlassCLIConfig is accessConfig with a custom role holding only
// read and break_glass, and a profile that refuses break-glass.
const breakGlassCLIConfig = `steward:
  data_dir: data
roles:
  - {name: responder, permissions: [read, break_glass]}
services:
  - name: shop
    databases:
      - {name: main, engine: postgres, url: "APPDB"}
    access:
      - {database: main, profile: read-only, grants: ["SELECT ON ALL TABLES IN SCHEMA public"], max: 4h, break_glass: true, break_glass_max: 1h}
      - {database: main, profile: writer, grants: ["SELECT, UPDATE ON ALL TABLES IN SCHEMA public"], max: 1h}
policies:
  break_glass_reviewers: 2
`

// `access break-glass --server` issues the grant through the server to a
// user whose custom role holds break_glass, prints it as the local command
// does, once, and is refused what the server refuses.
func TestAccessBreakGlassCLIAgainstServer(t *testing.T) {
	t.Parallel()
	e := setupAccessCLI(t)
	if err := os.WriteFile(e.cfg, []byte(strings.ReplaceAll(breakGlassCLIConfig, "APPDB", e.appURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := steward(t, "-c", e.cfg, "user", "add", "rita", "--role", "responder", "-o", "json")
	var res userAddResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
		t.Fatalf("user add rita: %+v", r)
	}
	e.tokens["rita"] = res.Token
	url, stop := startServeConfig(t, e.cfg, "")
	defer stop()
	remote := func(user string, args ...string) result {
		return steward(t, append([]string{"--server", url, "--token", e.tokens[user]}, args...)...)
	}
	bg := func(user, target, dur string, extra ...string) result {
		return remote(user, append([]string{"access", "break-glass", target, "--for", dur, "--reason", "INC-43: checkout down"}, extra...)...)
	}

	for _, c := range []struct {
		user, target, dur, want string
	}{
		{"alice", "shop/main/read-only", "10m", "break_glass permission"},
		{"rita", "shop/main/writer", "10m", "break_glass: false"},
		{"rita", "shop/main/read-only", "2h", "at most 1h"},
	} {
		if r := bg(c.user, c.target, c.dur); r.code != exitUsage || !strings.Contains(r.stderr, c.want) || r.stdout != "" {
			t.Errorf("break-glass %s --for %s as %s: %+v, want exit %d with %q", c.target, c.dur, c.user, r, exitUsage, c.want)
		}
	}
	if r := remote("rita", "access", "break-glass", "shop/main/read-only", "--reason", "x"); r.code != exitUsage || !strings.Contains(r.stderr, "--for is required") {
		t.Errorf("without --for: %+v", r)
	}

	// Text: the grant, the connection string once, and the review to do.
	r = bg("rita", "shop/main/read-only", "10m")
	if r.code != 0 {
		t.Fatalf("break-glass: %+v", r)
	}
	for _, want := range []string{"issued: role stw_rita_", "on shop/main (read-only) until", "connection string (shown once; Steward keeps only its hash):",
		"psql \"postgres://", "BREAK-GLASS: every channel was notified; review 1 must be completed by 2 other people before", "steward review complete 1 --notes"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("break-glass output lacks %q:\n%s", want, r.stdout)
		}
	}
	lines := strings.Split(r.stdout, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "connection string") })
	if i < 0 || i+1 >= len(lines) {
		t.Fatalf("no connection string in:\n%s", r.stdout)
	}
	dsn := strings.TrimSpace(lines[i+1])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect with the printed DSN %q: %v", dsn, err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 1 {
		t.Fatalf("select: %d %v", n, err)
	}
	conn.Close(ctx)

	// JSON: what the local command prints, {action, grant, credential}.
	r = bg("rita", "shop/main/read-only", "5m", "-o", "json")
	var keys map[string]json.RawMessage
	var out issuedOutput
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &keys) != nil || json.Unmarshal([]byte(r.stdout), &out) != nil {
		t.Fatalf("break-glass -o json: %+v", r)
	}
	if k := slices.Sorted(maps.Keys(keys)); strings.Join(k, ",") != "action,credential,grant" {
		t.Errorf("JSON keys %v, want those of the local command", k)
	}
	var flags struct {
		BreakGlass bool `json:"break_glass"`
	}
	var actFlags = flags
	if out.Credential.DSN == "" || out.Grant.State != "active" || json.Unmarshal(keys["grant"], &flags) != nil || !flags.BreakGlass ||
		json.Unmarshal(keys["action"], &actFlags) != nil || !actFlags.BreakGlass {
		t.Fatalf("break-glass -o json: %s", r.stdout)
	}
	if strings.Contains(r.stdout, dsn) {
		t.Fatal("the second grant has the first one's connection string")
	}

	// Both are listed as break-glass, without their secrets; they end like
	// any grant.
	r = remote("alice", "access", "list", "--active")
	if r.code != 0 || strings.Count(r.stdout, "active (break-glass)") != 2 || strings.Contains(r.stdout, out.Credential.Password) {
		t.Fatalf("list: %+v", r)
	}
	for _, id := range []int64{out.Grant.ID - 1, out.Grant.ID} {
		if r := remote("rita", "access", "revoke", itoa(id), "--reason", "INC-43 fixed"); r.code != 0 || !strings.Contains(r.stdout, "REVOKED") {
			t.Fatalf("revoke %d: %+v", id, r)
		}
	}
}
