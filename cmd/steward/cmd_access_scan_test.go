package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/testenv"
)

// stewardWithScan runs the CLI like steward(), adding the access command
// when the root does not register it yet.
func stewardWithScan(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globalOptions{stdin: strings.NewReader(""), stderr: &errb}
	root := newRootCmd(g)
	if found, _, err := root.Find([]string{"access"}); err != nil || found == root {
		root.AddCommand(accessCmd(g)) // it adds the scan commands
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

func TestAccessScanAndReviewReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pgURL := testenv.PostgresURL(t)
	u, _ := url.Parse(pgURL)
	dbName := strings.TrimPrefix(u.Path, "/")
	admin, err := dbx.Open(ctx, dbx.Postgres, pgURL, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	role := "cli_scan_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP OWNED BY " + role)
		_, _ = admin.Exec("DROP ROLE IF EXISTS " + role)
	})
	for _, s := range []string{
		"REVOKE ALL ON DATABASE " + dbName + " FROM PUBLIC",
		"CREATE ROLE " + role + " LOGIN SUPERUSER",
	} {
		if _, err := admin.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "pg-url")
	if err := os.WriteFile(urlFile, []byte(pgURL), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "steward:\n  data_dir: " + filepath.Join(dir, "data") + "\n  store: sqlite://" + filepath.Join(dir, "steward.db") + "\n" +
		"services:\n  - name: shop\n    databases:\n" +
		"      - {name: main, engine: postgres, url: \"file:" + urlFile + "\", standing_access: [postgres, root]}\n" +
		"      - {name: cache, engine: sqlite, url: \"" + filepath.Join(dir, "cache.db") + "\"}\n"
	path := filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	r := stewardWithScan(t, "-c", path, "access", "scan", "shop")
	if r.code != exitFailed || !strings.Contains(r.stdout, "FINDINGS shop/main (postgres") || !strings.Contains(r.stdout, "CRITICAL "+role+" (new)") ||
		!strings.Contains(r.stdout, "SKIPPED  shop/cache") || !strings.Contains(r.stdout, "no logins to scan") {
		t.Fatalf("scan: %+v", r)
	}
	r = stewardWithScan(t, "-c", path, "-o", "json", "access", "scan", "shop")
	var reports []access.ScanReport
	if r.code != exitFailed || json.Unmarshal([]byte(r.stdout), &reports) != nil || len(reports) != 2 {
		t.Fatalf("scan json: %+v", r)
	}
	found := false
	for _, f := range reports[0].Findings {
		found = found || f.Principal == role && f.Severity == access.SeverityCritical
	}
	if !found || len(reports[0].New) != 0 {
		t.Fatalf("json findings = %+v, new %v", reports[0].Findings, reports[0].New)
	}

	r = stewardWithScan(t, "-c", path, "access", "review-report", "--from", "2020-01-01", "--to", "2999-12-31")
	if r.code != exitOK || !strings.Contains(r.stdout, "# Access review 2020-01-01 to 2999-12-31") || !strings.Contains(r.stdout, "**CRITICAL** `"+role+"`") ||
		!strings.Contains(r.stdout, "No grants in the period.") {
		t.Fatalf("review-report: %+v", r)
	}
	r = stewardWithScan(t, "-c", path, "-o", "json", "access", "review-report", "--from", "2020-01-01", "--to", "2999-12-31")
	var rep access.Report
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rep) != nil || rep.Summary.Scans != 4 || rep.Summary.OpenFindings == 0 {
		t.Fatalf("review-report json: %+v", r)
	}

	// Bad input is a usage error.
	for _, args := range [][]string{
		{"access", "scan", "nope"},
		{"access", "review-report", "--from", "2026-03-31", "--to", "2026-01-01"},
		{"access", "review-report", "--from", "yesterday", "--to", "2026-01-01"},
		{"access", "review-report", "--from", "2026-01-01"},
	} {
		if r := stewardWithScan(t, append([]string{"-c", path}, args...)...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, r.code, exitUsage, r.stderr)
		}
	}
}
