package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward/internal/testenv"
)

const accessConfig = `steward:
  data_dir: data
services:
  - name: shop
    databases:
      - {name: main, engine: postgres, url: "APPDB"}
    access:
      - {database: main, profile: read-only, grants: ["SELECT ON ALL TABLES IN SCHEMA public"], max: 4h, break_glass: true, break_glass_max: 1h}
policies:
  approvals:
    - name: access
      match: {action: [access.grant]}
      require: [{approvals: 2, from: ["role:approver"]}]
`

type accessEnv struct {
	cfg    string
	appURL string
	tokens map[string]string
}

func setupAccessCLI(t *testing.T) *accessEnv {
	t.Helper()
	appURL := testenv.PostgresURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, appURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY, status text); INSERT INTO orders VALUES (1, 'pending')"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &accessEnv{cfg: filepath.Join(dir, "steward.yaml"), appURL: appURL, tokens: map[string]string{}}
	if err := os.WriteFile(e.cfg, []byte(strings.ReplaceAll(accessConfig, "APPDB", appURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, role string }{{"alice", "operator"}, {"bob", "approver"}, {"carol", "approver"}, {"dave", "viewer"}} {
		r := steward(t, "-c", e.cfg, "user", "add", u.name, "--role", u.role, "-o", "json")
		var res userAddResult
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
			t.Fatalf("user add %s: %+v", u.name, r)
		}
		e.tokens[u.name] = res.Token
	}
	return e
}

func (e *accessEnv) as(t *testing.T, user string, args ...string) result {
	t.Helper()
	return steward(t, append([]string{"-c", e.cfg, "--token", e.tokens[user]}, args...)...)
}

type issuedOutput struct {
	Grant struct {
		ID        int64    `json:"id"`
		Role      string   `json:"role"`
		State     string   `json:"state"`
		Approvers []string `json:"approvers"`
	} `json:"grant"`
	Credential struct {
		DSN      string `json:"dsn"`
		Password string `json:"password"`
	} `json:"credential"`
}

func TestAccessCLIRequestWaitApproveIssueRevoke(t *testing.T) {
	t.Parallel()
	e := setupAccessCLI(t)
	if r := e.as(t, "alice", "access", "request", "shop/main/read-only", "--for", "5h", "--reason", "INC-1"); r.code != exitUsage || !strings.Contains(r.stderr, "at most 4h") {
		t.Fatalf("too long: %+v", r)
	}
	if r := e.as(t, "alice", "access", "request", "shop/main/owner", "--for", "1h", "--reason", "INC-1"); r.code != exitUsage || !strings.Contains(r.stderr, "known: read-only") {
		t.Fatalf("unknown profile: %+v", r)
	}
	if r := e.as(t, "dave", "access", "request", "shop/main/read-only", "--for", "1h", "--reason", "INC-1"); r.code != exitUsage || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("viewer: %+v", r)
	}
	if r := e.as(t, "alice", "access", "break-glass", "shop/main/read-only", "--for", "10m", "--reason", "INC-1"); r.code != exitUsage || !strings.Contains(r.stderr, "break_glass") {
		t.Fatalf("break-glass without permission: %+v", r)
	}

	// alice waits for the approvals; the grant is issued as soon as they
	// are in, and the connection string is printed once.
	done := make(chan result, 1)
	go func() {
		done <- e.as(t, "alice", "access", "request", "shop/main/read-only", "--for", "1h", "--reason", "INC-42: stuck orders", "--wait", "60s", "--poll", "50ms", "-o", "json")
	}()
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for id == "" && time.Now().Before(deadline) {
		var acts []struct {
			ID    int64  `json:"id"`
			State string `json:"state"`
		}
		r := e.as(t, "bob", "action", "list", "--kind", "access.grant", "-o", "json")
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &acts) == nil && len(acts) == 1 && acts[0].State == "pending_approval" {
			id = itoa(acts[0].ID)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if id == "" {
		t.Fatal("the request did not appear")
	}
	if r := e.as(t, "alice", "approve", id); r.code != exitUsage {
		t.Fatalf("self approval: %+v", r)
	}
	for _, u := range []string{"bob", "carol"} {
		if r := e.as(t, u, "approve", id); r.code != 0 {
			t.Fatalf("approve by %s: %+v", u, r)
		}
	}
	r := <-done
	var out issuedOutput
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Credential.DSN == "" || out.Grant.State != "active" {
		t.Fatalf("request --wait: %+v", r)
	}
	if strings.Join(out.Grant.Approvers, ",") != "bob,carol" {
		t.Fatalf("approvers: %v", out.Grant.Approvers)
	}
	// Shown once: a second issue is refused, and nothing else prints it.
	if r := e.as(t, "alice", "access", "issue", id); r.code == 0 || strings.Contains(r.stdout+r.stderr, out.Credential.Password) {
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
	if _, err := conn.Exec(ctx, "UPDATE orders SET status = 'x'"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("update: %v", err)
	}
	for _, args := range [][]string{{"access", "list"}, {"access", "list", "--active", "-o", "json"}, {"access", "show", itoa(out.Grant.ID)}, {"action", "show", id, "-o", "json"}} {
		r := e.as(t, "bob", args...)
		if r.code != 0 || strings.Contains(r.stdout, out.Credential.Password) || !strings.Contains(r.stdout, out.Grant.Role) && args[1] != "show" {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	if r := e.as(t, "bob", "access", "list"); !strings.Contains(r.stdout, "bob,carol") || !strings.Contains(r.stdout, "INC-42") {
		t.Fatalf("list: %s", r.stdout)
	}

	r = e.as(t, "alice", "access", "revoke", itoa(out.Grant.ID), "--reason", "done")
	if r.code != 0 || !strings.Contains(r.stdout, "REVOKED") || !strings.Contains(r.stdout, "prove") || !strings.Contains(r.stdout, "terminated 1 session") {
		t.Fatalf("revoke: %+v", r)
	}
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err == nil {
		t.Fatal("session survived the revocation")
	}
	if c, err := pgx.Connect(ctx, out.Credential.DSN); err == nil {
		c.Close(ctx)
		t.Fatal("login after revocation")
	}
	var gs []json.RawMessage
	if r := e.as(t, "bob", "access", "list", "--active", "-o", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &gs) != nil || len(gs) != 0 {
		t.Fatalf("active after revoke: %+v", r)
	}
	if r := e.as(t, "bob", "access", "sweep"); r.code != 0 || !strings.Contains(r.stdout, "revoked 0") {
		t.Fatalf("sweep: %+v", r)
	}
	// The role is gone from the cluster.
	db, err := sql.Open("pgx", e.appURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("SELECT count(*) FROM pg_roles WHERE rolname = $1", out.Grant.Role).Scan(&n); err != nil || n != 0 {
		t.Fatalf("role left: %d %v", n, err)
	}
}
