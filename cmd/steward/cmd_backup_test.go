package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/dbx/sqlite"
)

// backupWorkspace writes a config with one SQLite service backed up into
// a repository relative to the config file.
func backupWorkspace(t *testing.T) (cfgPath, repoDir string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "shop.db")
	if err := sqlite.Create(src); err != nil {
		t.Fatal(err)
	}
	if err := sqlite.New().Exec(context.Background(), src, "CREATE TABLE orders (id INTEGER PRIMARY KEY, updated_at TEXT); INSERT INTO orders VALUES (1, '2026-01-01T00:00:00Z'), (2, '2026-01-02T00:00:00Z');"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shop.url"), []byte(src+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `steward:
  data_dir: ` + filepath.Join(dir, "data") + `
services:
  - name: shop
    objectives: {rto: 30m, rpo: 1h}
    databases:
      - {name: main, engine: sqlite, url: "file:` + filepath.Join(dir, "shop.url") + `"}
    backups:
      - {name: nightly, database: main, method: sqlite, repository: backups, freshness: "SELECT max(updated_at) FROM orders"}
      - {name: old, database: main, method: sqlite, repository: old-backups}
`
	cfgPath = filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, filepath.Join(dir, "backups")
}

func TestBackupRunListVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfgPath, repoDir := backupWorkspace(t)
	g := &globalOptions{ConfigPath: cfgPath, Output: "json", LogLevel: "error", stderr: &bytes.Buffer{}}

	var out, errb bytes.Buffer
	if err := runBackupRun(ctx, g, "shop/nightly", &out, &errb); err != nil {
		t.Fatalf("backup run: %v\n%s", err, errb.String())
	}
	var m backup.Manifest
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m.Service != "shop" || m.RowCounts["orders"] != 2 || m.Freshness != "2026-01-02T00:00:00Z" {
		t.Fatalf("run output: %v\n%s", err, out.String())
	}
	// The relative repository is beside the config file.
	if _, err := os.Stat(filepath.Join(repoDir, "shop", "nightly", m.ID, backup.ManifestName)); err != nil {
		t.Fatalf("repository layout: %v", err)
	}
	// Not a terminal: one summary line per phase on stderr.
	if !strings.Contains(errb.String(), "upload: ") || strings.Contains(errb.String(), "\r") {
		t.Errorf("progress on a non-terminal = %q", errb.String())
	}

	// list: shop/nightly is fresh, shop/old has no backups: STALE, exit 1.
	out.Reset()
	g.Output = "text"
	err := runBackupList(ctx, g, "shop", &out)
	if exitCode(err) != exitFailed {
		t.Fatalf("list exit = %d (%v), want 1 for a stale backup", exitCode(err), err)
	}
	text := out.String()
	if !strings.Contains(text, "SNAPSHOT") || !strings.Contains(text, m.ID) || !strings.Contains(text, "newest") ||
		!strings.Contains(text, "shop/old") || !strings.Contains(text, "STALE: no backups (rpo 1h)") {
		t.Fatalf("list:\n%s", text)
	}
	out.Reset()
	if err := runBackupList(ctx, g, "shop/nightly", &out); err != nil || strings.Contains(out.String(), "shop/old") {
		t.Fatalf("list shop/nightly: %v\n%s", err, out.String())
	}
	out.Reset()
	g.Output = "json"
	_ = runBackupList(ctx, g, "", &out)
	var entries []backupListEntry
	if err := json.Unmarshal(out.Bytes(), &entries); err != nil || len(entries) != 2 || entries[0].Stale || !entries[1].Stale || len(entries[0].Backups) != 1 {
		t.Fatalf("list json: %v\n%s", err, out.String())
	}

	// verify: ok, then a corrupted object exits 1 naming it.
	out.Reset()
	g.Output = "text"
	if err := runBackupVerify(ctx, g, m.Ref(), &out); err != nil || !strings.Contains(out.String(), "ok, 1 object(s)") {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	obj := filepath.Join(repoDir, "shop", "nightly", m.ID, m.Objects[0].Name)
	data, _ := os.ReadFile(obj)
	data[100] ^= 0xff
	if err := os.WriteFile(obj, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = runBackupVerify(ctx, g, m.Ref(), &out)
	if exitCode(err) != exitFailed || !strings.Contains(out.String(), "FAILED") || !strings.Contains(out.String(), m.Objects[0].Name) {
		t.Fatalf("verify corrupted: exit %d (%v)\n%s", exitCode(err), err, out.String())
	}
	// Unknown backup and bad references are usage errors.
	for _, ref := range []string{"shop/nightly/nope", "shop/nightly", "shop/nope/x"} {
		if err := runBackupVerify(ctx, g, ref, &out); exitCode(err) != exitUsage {
			t.Errorf("verify %s: exit %d (%v), want 2", ref, exitCode(err), err)
		}
	}
}

func TestBackupRunFailureExits3(t *testing.T) {
	t.Parallel()
	cfgPath, _ := backupWorkspace(t)
	// Point the database at a file in a directory that does not exist.
	urlFile := filepath.Join(filepath.Dir(cfgPath), "shop.url")
	if err := os.WriteFile(urlFile, []byte(filepath.Join(filepath.Dir(cfgPath), "gone", "x.db")), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &globalOptions{ConfigPath: cfgPath, Output: "text", LogLevel: "error", stderr: &bytes.Buffer{}}
	var out, errb bytes.Buffer
	err := runBackupRun(context.Background(), g, "shop/nightly", &out, &errb)
	if exitCode(err) != exitRuntime || !strings.Contains(err.Error(), "dump database main") {
		t.Fatalf("exit %d: %v", exitCode(err), err)
	}
	if err := runBackupRun(context.Background(), g, "shop/nope", &out, &errb); exitCode(err) != exitUsage {
		t.Fatalf("unknown backup: exit %d (%v)", exitCode(err), err)
	}
}

// TestBackupCommandTree runs the commands through cobra, as a user does.
func TestBackupCommandTree(t *testing.T) {
	t.Parallel()
	cfgPath, _ := backupWorkspace(t)
	g := &globalOptions{}
	root := newRootCmd(g)
	if c, _, err := root.Find([]string{"backup", "run"}); err != nil || c.Name() != "run" {
		root.AddCommand(newBackupCmd(g))
	}
	var out, errb bytes.Buffer
	root.SetArgs([]string{"-c", cfgPath, "--log-level", "error", "backup", "run", "shop/nightly", "-o", "json"})
	root.SetOut(&out)
	root.SetErr(&errb)
	g.stderr = &errb
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("backup run: %v\n%s", err, errb.String())
	}
	var m backup.Manifest
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m.ID == "" {
		t.Fatalf("output: %v\n%s", err, out.String())
	}
	out.Reset()
	root.SetArgs([]string{"-c", cfgPath, "--log-level", "error", "backup", "verify", m.Ref(), "-o", "text"})
	if err := root.ExecuteContext(context.Background()); err != nil || !strings.Contains(out.String(), "ok") {
		t.Fatalf("backup verify: %v\n%s", err, out.String())
	}
}
