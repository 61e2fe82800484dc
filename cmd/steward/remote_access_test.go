package main

import (
	"context"
	"encoding/json"
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
		return stewardWithAccess(t, append([]string{"--server", url, "--token", e.tokens[user]}, args...)...)
	}

	if r := remote("alice", "access", "request", "shop/main/read-only", "--for", "5h", "--reason", "INC-1"); r.code != exitUsage || !strings.Contains(r.stderr, "at most 4h") {
		t.Fatalf("too long: %+v", r)
	}
	if r := remote("dave", "access", "request", "shop/main/read-only", "--for", "1h", "--reason", "INC-1"); r.code != exitUsage || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("viewer: %+v", r)
	}

	done := make(chan result, 1)
	go func() {
		done <- stewardWithAccess(t, "--server", url, "--token", e.tokens["alice"], "access", "request", "shop/main/read-only", "--for", "1h",
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
