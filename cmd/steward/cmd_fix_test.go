package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

const fixConfig = `steward:
  data_dir: data
services:
  - name: shop
    databases:
      - {name: main, engine: sqlite, url: "APPDB"}
    fixes:
      - name: cancel-order
        database: main
        params: {order_id: int}
        select: SELECT id, email, status FROM orders WHERE id = :order_id AND status = 'pending'
        apply: UPDATE orders SET status = 'cancelled' WHERE id = :order_id AND status = 'pending'
        max_rows: 1
        mask: [email]
`

type fixEnv struct {
	cfg, appDB string
	tokens     map[string]string
}

func setupFix(t *testing.T) *fixEnv {
	t.Helper()
	dir := t.TempDir()
	e := &fixEnv{cfg: filepath.Join(dir, "steward.yaml"), appDB: filepath.Join(dir, "app.db"), tokens: map[string]string{}}
	db, err := sql.Open("sqlite", e.appDB)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, status TEXT)",
		"INSERT INTO orders VALUES (1, 'a@example.com', 'pending'), (2, 'b@example.com', 'paid'), (3, 'c@example.com', 'pending')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if err := os.WriteFile(e.cfg, []byte(strings.ReplaceAll(fixConfig, "APPDB", e.appDB)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, role string }{{"alice", "operator"}, {"bob", "approver"}} {
		r := steward(t, "-c", e.cfg, "user", "add", u.name, "--role", u.role, "-o", "json")
		var res userAddResult
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
			t.Fatalf("user add %s: %+v", u.name, r)
		}
		e.tokens[u.name] = res.Token
	}
	return e
}

func (e *fixEnv) as(t *testing.T, user string, args ...string) result {
	t.Helper()
	return steward(t, append([]string{"-c", e.cfg, "--token", e.tokens[user]}, args...)...)
}

func (e *fixEnv) status(t *testing.T, id int) string {
	t.Helper()
	db, err := sql.Open("sqlite", e.appDB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s string
	if err := db.QueryRow("SELECT status FROM orders WHERE id = ?", id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func actionID(t *testing.T, r result) string {
	t.Helper()
	var v struct {
		Action struct {
			ID int64 `json:"id"`
		} `json:"action"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Action.ID == 0 {
		t.Fatalf("no action in %+v", r)
	}
	return itoa(v.Action.ID)
}

func TestFixPlanRequestApproveApplyUndo(t *testing.T) {
	t.Parallel()
	e := setupFix(t)
	r := e.as(t, "alice", "fix", "plan", "shop/cancel-order", "--param", "order_id=1")
	if r.code != 0 || !strings.Contains(r.stdout, "UPDATE 1 row(s) of orders") || strings.Contains(r.stdout, "a@example.com") || !strings.Contains(r.stdout, "sha256:") {
		t.Fatalf("plan: %+v", r)
	}
	if r := e.as(t, "alice", "fix", "plan", "shop/cancel-order", "--param", "order_id=2"); r.code != exitUsage || !strings.Contains(r.stderr, "nothing to fix") {
		t.Fatalf("plan of a paid order: %+v", r)
	}
	if r := e.as(t, "alice", "fix", "plan", "shop/cancel-order", "--param", "order_id=1 OR 1=1"); r.code != exitUsage || !strings.Contains(r.stderr, "parameter order_id (int)") {
		t.Fatalf("plan with an injection: %+v", r)
	}
	id := actionID(t, e.as(t, "alice", "fix", "request", "shop/cancel-order", "--param", "order_id=1", "--reason", "INC-1: stuck order", "-o", "json"))
	if r := e.as(t, "alice", "fix", "apply", id); r.code != exitUsage || !strings.Contains(r.stderr, "not approved") {
		t.Fatalf("apply before approval: %+v", r)
	}
	if r := e.as(t, "bob", "approve", id); r.code != 0 {
		t.Fatalf("approve: %+v", r)
	}
	if r := e.as(t, "alice", "fix", "apply", id); r.code != 0 || !strings.Contains(r.stdout, "SUCCEEDED") {
		t.Fatalf("apply: %+v", r)
	}
	if s := e.status(t, 1); s != "cancelled" {
		t.Fatalf("order 1: %s", s)
	}
	if r := e.as(t, "alice", "fix", "images", id); r.code != 0 || !strings.Contains(r.stdout, "1 image(s), 0 pending") || !strings.Contains(r.stdout, `"cancelled"`) {
		t.Fatalf("images: %+v", r)
	}
	uid := actionID(t, e.as(t, "alice", "fix", "undo", id, "--reason", "wrong order", "-o", "json"))
	if r := e.as(t, "bob", "approve", uid); r.code != 0 {
		t.Fatalf("approve undo: %+v", r)
	}
	if r := e.as(t, "alice", "fix", "apply", uid); r.code != 0 {
		t.Fatalf("apply undo: %+v", r)
	}
	if s := e.status(t, 1); s != "pending" {
		t.Fatalf("order 1 after undo: %s", s)
	}
}

func TestFixApplyAbortsWhenRowsChanged(t *testing.T) {
	t.Parallel()
	e := setupFix(t)
	id := actionID(t, e.as(t, "alice", "fix", "request", "shop/cancel-order", "--param", "order_id=3", "--reason", "r", "-o", "json"))
	if r := e.as(t, "bob", "approve", id); r.code != 0 {
		t.Fatalf("approve: %+v", r)
	}
	db, _ := sql.Open("sqlite", e.appDB)
	if _, err := db.Exec("UPDATE orders SET status = 'paid' WHERE id = 3"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// The pipeline re-plans before executing: no rows now, the plan fails.
	r := e.as(t, "alice", "fix", "apply", id)
	if r.code == 0 || !strings.Contains(r.stderr, "nothing to fix") {
		t.Fatalf("apply after the row changed: %+v", r)
	}
	if s := e.status(t, 3); s != "paid" {
		t.Fatalf("order 3: %s", s)
	}
}

func TestGuardedSQLCommand(t *testing.T) {
	t.Parallel()
	e := setupFix(t)
	file := filepath.Join(t.TempDir(), "change.sql")
	if err := os.WriteFile(file, []byte("DELETE FROM orders;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.as(t, "alice", "sql", "shop/main", "--file", file, "--reason", "r"); r.code != exitUsage || !strings.Contains(r.stderr, "without WHERE") {
		t.Fatalf("delete without where: %+v", r)
	}
	if err := os.WriteFile(file, []byte("-- INC-7\nUPDATE orders SET status = 'paid' WHERE status = 'pending';\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.as(t, "alice", "sql", "shop/main", "--file", file, "--reason", "INC-7", "-o", "json")
	id := actionID(t, r)
	if !strings.Contains(r.stdout, `"rows_affected": 2`) {
		t.Fatalf("plan: %s", r.stdout)
	}
	if s := e.status(t, 1); s != "pending" {
		t.Fatalf("the dry run changed order 1: %s", s)
	}
	if r := e.as(t, "bob", "approve", id); r.code != 0 {
		t.Fatalf("approve: %+v", r)
	}
	if r := e.as(t, "alice", "fix", "apply", id); r.code != 0 {
		t.Fatalf("apply: %+v", r)
	}
	if s := e.status(t, 3); s != "paid" {
		t.Fatalf("order 3: %s", s)
	}
}
