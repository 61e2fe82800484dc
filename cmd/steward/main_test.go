package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testenv"
)

type result struct {
	code           int
	stdout, stderr string
}

// steward runs the CLI in process, with a clean environment for its flags.
func steward(t *testing.T, args ...string) result {
	t.Helper()
	return stewardCtx(t, context.Background(), args...)
}

func stewardCtx(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(""), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestMain(m *testing.M) {
	for _, v := range []string{"STEWARD_CONFIG", "STEWARD_STORE", "STEWARD_SERVER", "STEWARD_TOKEN"} {
		os.Unsetenv(v)
	}
	os.Exit(m.Run())
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := steward(t, "version", "--output", "json")
	var v versionInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.SchemaVersion < 1 {
		t.Fatalf("version: %+v", r)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"no-such-command"},
		{"version", "--no-such-flag"},
		{"version", "--output", "yaml"},
		{"token", "revoke", "abc"},
		{"--store", "mysql://x/y", "user", "list"},
		{"user", "list"}, // no config, no store
		{"--store", "sqlite:///nonexistent-dir-xyz/s.db", "token", "create", "nobody", "--expires", "soon"},
	} {
		r := steward(t, args...)
		if r.code != exitUsage {
			t.Errorf("%v: exit %d, want 2; stderr: %s", args, r.code, r.stderr)
		}
		if !strings.HasPrefix(r.stderr, "steward: ") {
			t.Errorf("%v: stderr %q does not start with steward:", args, r.stderr)
		}
	}
}

func TestValidateReportsEveryErrorWithPosition(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "steward.yaml")
	cfg := `steward:
  listen: 127.0.0.1:8080
services:
  - name: shop
    tire: 1
    databases:
      - {name: main, engine: oracle, url: env:SHOP_DB}
      - {name: replica, engine: postgres, url: "postgres://app:hunter2@db/shop"}
  - name: shop
`
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := steward(t, "validate", path)
	if r.code != exitUsage {
		t.Fatalf("exit %d, want 2; %+v", r.code, r)
	}
	lines := regexp.MustCompile(regexp.QuoteMeta(path)+`:\d+:\d+: `).FindAllString(r.stderr, -1)
	if len(lines) < 4 {
		t.Fatalf("want at least 4 positioned errors (unknown key, engine, inline password, duplicate), got %d:\n%s", len(lines), r.stderr)
	}
	for _, want := range []string{`"tire"`, `did you mean "tier"`, "oracle", "inline password", "shop"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	r = steward(t, "validate", path, "--output", "json")
	var res validateResult
	if r.code != exitUsage || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Valid || len(res.Errors) < 4 {
		t.Fatalf("json validate: %+v", r)
	}
}

func TestValidateMissingSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "steward.yaml")
	cfg := "services:\n  - name: shop\n    databases:\n      - {name: main, engine: postgres, url: env:STEWARD_TEST_UNSET_SECRET_XYZ}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := steward(t, "validate", path)
	if r.code != exitUsage || !strings.Contains(r.stderr, "STEWARD_TEST_UNSET_SECRET_XYZ") || !strings.Contains(r.stderr, path+":4:") {
		t.Fatalf("missing secret: %+v", r)
	}
	if r := steward(t, "validate", "--offline", path); r.code != 0 {
		t.Fatalf("--offline: %+v", r)
	}
}

func TestSchemaIsJSON(t *testing.T) {
	t.Parallel()
	r := steward(t, "schema")
	var v map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v["properties"] == nil {
		t.Fatalf("schema: %d %s", r.code, r.stderr)
	}
}

func TestUsersTokensAndAudit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := "sqlite://" + filepath.Join(dir, "steward.db")
	r := steward(t, "--store", st, "user", "add", "alice", "--role", "admin", "--email", "alice@example.com", "-o", "json")
	var added userAddResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &added) != nil || !strings.HasPrefix(added.Token, "stw_") {
		t.Fatalf("user add: %+v", r)
	}
	if r := steward(t, "--store", st, "user", "add", "alice"); r.code != exitUsage || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("duplicate user add: %+v", r)
	}
	if r := steward(t, "--store", st, "user", "add", "bob", "--role", "superuser"); r.code != exitUsage || !strings.Contains(r.stderr, "unknown role") {
		t.Fatalf("bad role: %+v", r)
	}
	r = steward(t, "--store", st, "token", "create", "alice", "--name", "ci", "--expires", "7d", "-o", "json")
	var tok tokenCreateResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tok) != nil || tok.Details.ExpiresAt == nil {
		t.Fatalf("token create: %+v", r)
	}
	if r := steward(t, "--store", st, "token", "revoke", fmt.Sprint(tok.Details.ID)); r.code != 0 {
		t.Fatalf("token revoke: %+v", r)
	}
	if r := steward(t, "--store", st, "token", "revoke", "999"); r.code != exitUsage {
		t.Fatalf("revoke unknown token: %+v", r)
	}
	if r := steward(t, "--store", st, "user", "disable", "alice"); r.code != 0 {
		t.Fatalf("user disable: %+v", r)
	}
	r = steward(t, "--store", st, "user", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "disabled") {
		t.Fatalf("user list: %+v", r)
	}
	// Every change above is in the audit log, verifiable and exportable.
	r = steward(t, "--store", st, "audit", "verify", "-o", "json")
	if r.code != 0 {
		t.Fatalf("audit verify: %+v", r)
	}
	r = steward(t, "--store", st, "audit", "export", "--since", "1", "--output", "jsonl")
	if r.code != 0 {
		t.Fatalf("audit export: %+v", r)
	}
	var actions []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev struct {
			Action string `json:"action"`
			Actor  string `json:"actor"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		if !strings.HasPrefix(ev.Actor, "local:") {
			t.Errorf("event %s by %q, want the local operator", ev.Action, ev.Actor)
		}
		actions = append(actions, ev.Action)
	}
	want := "user.add,token.create,token.create,token.revoke,user.disable"
	if got := strings.Join(actions, ","); got != want {
		t.Fatalf("audit actions = %s, want %s", got, want)
	}
}

func TestAuditVerifyCatchesTamperingAndTruncation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(cfgPath, []byte("steward:\n  data_dir: data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		if r := steward(t, "-c", cfgPath, "user", "add", u, "--no-token"); r.code != 0 {
			t.Fatalf("user add: %+v", r)
		}
	}
	cp := filepath.Join(dir, "cp.txt")
	if r := steward(t, "-c", cfgPath, "audit", "checkpoint", "--file", cp); r.code != 0 {
		t.Fatalf("checkpoint: %+v", r)
	}
	if r := steward(t, "-c", cfgPath, "audit", "verify", "--checkpoint", cp); r.code != 0 {
		t.Fatalf("verify clean: %+v", r)
	}
	// Export and verify the export offline, as an auditor would.
	export := filepath.Join(dir, "export.jsonl")
	if r := steward(t, "-c", cfgPath, "audit", "export", "--file", export); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	pub := filepath.Join(dir, "data", "audit.pub")
	if r := steward(t, "audit", "verify", "--file", export, "--key", pub, "--checkpoint", cp); r.code != 0 {
		t.Fatalf("verify export: %+v", r)
	}
	// Truncate the tail: delete the newest events directly in the database.
	db := filepath.Join(dir, "data", "steward.db")
	sqlExec(t, "sqlite://"+db, "DELETE FROM audit_events WHERE seq >= 3")
	r := steward(t, "-c", cfgPath, "audit", "verify", "--checkpoint", cp)
	if r.code != exitFailed || !strings.Contains(r.stdout, "FAILED") {
		t.Fatalf("verify after truncation: exit %d, want 1: %+v", r.code, r)
	}
}

func TestCorruptStoreExits3(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "steward.db")
	junk := bytes.Repeat([]byte("not a database "), 100)
	if err := os.WriteFile(db, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	r := steward(t, "--store", "sqlite://"+db, "user", "list")
	if r.code != exitRuntime || !strings.Contains(r.stderr, "not a valid SQLite database") || !strings.Contains(r.stderr, "restore") {
		t.Fatalf("corrupt store: %+v", r)
	}
	if b, _ := os.ReadFile(db); !bytes.Equal(b, junk) {
		t.Fatal("corrupt store was modified")
	}
}

func TestRemoteInvalidToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := "sqlite://" + filepath.Join(dir, "steward.db")
	url, stop := startServe(t, st)
	defer stop()
	r := steward(t, "--server", url, "--token", "stw_bogus", "user", "list")
	if r.code != exitUsage || !strings.Contains(r.stderr, "token") {
		t.Fatalf("bogus token: %+v", r)
	}
	r = steward(t, "--store", st, "user", "add", "viewer1", "--role", "viewer", "-o", "json")
	var added userAddResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &added) != nil {
		t.Fatalf("user add: %+v", r)
	}
	r = steward(t, "--server", url, "--token", added.Token, "user", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "viewer1") {
		t.Fatalf("remote user list: %+v", r)
	}
	// A token on the local store acts as its user: a viewer may not add users.
	r = steward(t, "--store", st, "--token", added.Token, "user", "add", "mallory", "--role", "admin")
	if r.code != exitUsage || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("viewer adding a user: %+v", r)
	}
}

func TestServeOnPostgres(t *testing.T) {
	t.Parallel()
	url, stop := startServe(t, testenv.PostgresURL(t))
	defer stop()
	resp, err := http.Get(url + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz on postgres: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestDemoOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := steward(t, "demo", "--once", "--dir", dir, "--listen", "127.0.0.1:0")
	if r.code != 0 {
		t.Fatalf("demo --once: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"self-check passed", "audit log verifies", "Token for alice", "own approval was refused",
		"the gate executed: succeeded", "broke the glass", "review 1 completed", "break_glass.used×1",
		"backup shop/nightly", "encrypted with age", "drill shop/weekly PASSED", "from restored-data",
		"orders-amount FAIL (3)", "orders-amount re-checked: PASS",
		"UPDATE was denied", "erin's open session was terminated", "legacy_reporting (high", "kit opens: 2 credentials recovered", "refuses to open",
		"dana (auditor) exported the evidence", "the auditor's check passes",
		"sees site/healthz, site/ui and site/checkout up", "SLO site/healthz availability 99.9%", "site/checkout is down: unexpected HTTP status 500",
		"delivered it to the webhook: probe.down", `"RESOLVED: site/checkout is no longer down (recovered)" with the same dedup key`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	// A second run reuses the workspace.
	if r := steward(t, "demo", "--once", "--dir", dir, "--listen", "127.0.0.1:0"); r.code != 0 {
		t.Fatalf("demo --once again: %+v", r)
	}
	if r := steward(t, "-c", filepath.Join(dir, "steward.yaml"), "audit", "verify"); r.code != 0 {
		t.Fatalf("verify demo workspace: %+v", r)
	}
}

// startServe runs `steward serve` in process on a free port and waits until
// it is ready.
func startServe(t *testing.T, storeURL string) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(cfgPath, []byte("steward:\n  data_dir: data\nservices:\n  - name: shop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return startServeConfig(t, cfgPath, storeURL)
}

// startServeConfig runs `steward serve` with a config file on a free
// loopback port; storeURL may be empty to use the config's store.
func startServeConfig(t *testing.T, cfgPath, storeURL string) (string, func()) {
	t.Helper()
	addr := freeAddr(t)
	return "http://" + addr, startServeAt(t, cfgPath, addr, storeURL)
}

// startServeAt runs `steward serve` on addr until the returned stop, which
// fails the test when serve exits with an error; storeURL may be empty.
func startServeAt(t *testing.T, cfgPath, addr, storeURL string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		args := []string{"-c", cfgPath}
		if storeURL != "" {
			args = append(args, "--store", storeURL)
		}
		done <- stewardCtx(t, ctx, append(args, "serve", "--listen", addr, "--grace", "2s")...)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case r := <-done:
			t.Fatalf("serve exited early: %+v", r)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve not ready after 20s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() {
		cancel()
		select {
		case r := <-done:
			if r.code != 0 {
				t.Errorf("serve exit %d: %s", r.code, r.stderr)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30s")
		}
	}
}

func TestUserRoles(t *testing.T) {
	t.Parallel()
	st := "sqlite://" + filepath.Join(t.TempDir(), "steward.db")
	if r := steward(t, "--store", st, "user", "add", "bob", "--no-token"); r.code != 0 {
		t.Fatalf("add: %+v", r)
	}
	if r := steward(t, "--store", st, "user", "roles", "bob", "approver", "operator"); r.code != 0 || !strings.Contains(r.stdout, "approver, operator") {
		t.Fatalf("roles: %+v", r)
	}
	if r := steward(t, "--store", st, "user", "roles", "bob", "wizard"); r.code != exitUsage || !strings.Contains(r.stderr, "unknown role") {
		t.Fatalf("bad role: %+v", r)
	}
	if r := steward(t, "--store", st, "user", "roles", "nobody", "viewer"); r.code != exitUsage || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("unknown user: %+v", r)
	}
	r := steward(t, "--store", st, "audit", "export")
	if !strings.Contains(r.stdout, `"action":"user.roles"`) {
		t.Fatalf("roles change not audited:\n%s", r.stdout)
	}
}
