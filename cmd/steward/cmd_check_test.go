package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/stewardhq/steward/internal/integrity"
)

// stewardWithCheck runs the CLI like steward(), adding the check command
// when the root does not register it yet.
func stewardWithCheck(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globalOptions{stdin: strings.NewReader(""), stderr: &errb}
	root := newRootCmd(g)
	if c, _, err := root.Find([]string{"check"}); err != nil || c == root {
		root.AddCommand(newCheckCmd(g))
	}
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	_, err := root.ExecuteContextC(context.Background())
	if err != nil {
		if isCobraUsageError(err) {
			err = usageError{err}
		}
		reportError(&errb, err)
	}
	return result{exitCode(err), out.String(), errb.String()}
}

func TestCheckRunAndHistory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app.db")
	db, err := sql.Open("sqlite", app)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, email TEXT)",
		"INSERT INTO orders VALUES (1, 'paid', 'ann@example.com'), (2, NULL, 'bob@example.com'), (3, 'paid', NULL)",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	cfg := "steward:\n  data_dir: " + filepath.Join(dir, "data") + "\n  store: sqlite://" + filepath.Join(dir, "steward.db") + "\n" +
		"services:\n  - name: shop\n    databases:\n      - {name: main, engine: sqlite, url: \"" + app + "\"}\n    checks:\n" +
		"      - {name: status, database: main, type: not_null, table: orders, column: status, show: [email], mask: [email]}\n" +
		"      - {name: ids, database: main, type: not_null, table: orders, column: id}\n"
	path := filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	r := stewardWithCheck(t, "-c", path, "check", "run", "shop")
	if r.code != exitFailed || !strings.Contains(r.stdout, "FAIL  shop/status") || !strings.Contains(r.stdout, "PASS  shop/ids") ||
		!strings.Contains(r.stdout, `"id":2`) || strings.Contains(r.stdout, "bob@") {
		t.Fatalf("check run: %+v", r)
	}
	r = stewardWithCheck(t, "-c", path, "check", "run", "shop/ids", "--output", "json")
	var res []map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || len(res) != 1 {
		t.Fatalf("check run json: %+v", r)
	}
	for _, k := range []string{"status", "violations", "sample", "duration_ms", "query"} {
		if _, ok := res[0][k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, r.stdout)
		}
	}
	r = stewardWithCheck(t, "-c", path, "check", "history", "shop/status", "-o", "json")
	var hist []integrity.Result
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &hist) != nil || len(hist) != 1 || hist[0].Status != "fail" || hist[0].Violations != 1 {
		t.Fatalf("check history: %+v", r)
	}
	r = stewardWithCheck(t, "-c", path, "check", "history", "shop/status")
	if r.code != 0 || !strings.Contains(r.stdout, "FAIL") {
		t.Fatalf("check history text: %+v", r)
	}
	r = stewardWithCheck(t, "-c", path, "audit", "verify")
	if r.code != 0 {
		t.Fatalf("audit verify: %+v", r)
	}
	for _, args := range [][]string{{"check", "run", "nope"}, {"check", "run", "shop/nope"}, {"check", "history", "shop"}} {
		if r := stewardWithCheck(t, append([]string{"-c", path}, args...)...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %+v", args, r.code, r)
		}
	}
}
