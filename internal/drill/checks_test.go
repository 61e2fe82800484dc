package drill_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/store"
)

// checksYAML is a SQLite service with integrity checks on the drilled
// database: status (fail), amounts (warn; 667 of the seeded orders exceed
// it), customers (passes).
const checksYAML = `services:
  - name: app
    objectives: {rto: 10m, rpo: 24h}
    databases:
      - {name: main, engine: sqlite, url: "SRC"}
    backups:
      - {name: nightly, database: main, method: sqlite, repository: REPO}
    checks:
      - {name: status-set, database: main, type: not_null, table: orders, column: status}
      - {name: amounts, database: main, type: row_predicate, table: orders, predicate: "amount < 2000", severity: warn}
      - {name: customers, database: main, type: foreign_key, table: orders, column: customer_id, references: customers.id}
    drills:
      - name: weekly
        backup: nightly
        verify:
          - {sql: "SELECT count(*) FROM customers", expect: "== 50"}
`

// checksSetup seeds a SQLite source, runs stmts on it, and takes a backup.
func checksSetup(t *testing.T, stmts ...string) (*bundle, string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "app.db")
	seedSQLite(t, src, time.Now().Add(-time.Minute))
	execSQLite(t, src, stmts...)
	b := setup(t, strings.ReplaceAll(checksYAML, "SRC", src))
	b.takeBackup("app", "nightly")
	return b, src
}

func execSQLite(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func verifications(rep *drill.Report) map[string]drill.Verification {
	m := map[string]drill.Verification{}
	for _, v := range rep.Verifications {
		m[v.Name] = v
	}
	return m
}

func TestDrillRunsIntegrityChecksOnRestoredCopy(t *testing.T) {
	t.Parallel()
	b, src := checksSetup(t, "UPDATE orders SET status = NULL WHERE id IN (7, 9)")
	// Repair the source after the backup: the drill must find the
	// violations in the restored copy, not in the source.
	execSQLite(t, src, "UPDATE orders SET status = 'paid' WHERE status IS NULL")

	rep, err := b.run("app", "weekly", drill.RunOptions{})
	b.checkFailed(rep, err, drill.StatusFailed, "check status-set: 2 violations")
	vs := verifications(rep)
	if v := vs["check status-set"]; v.Status != "failed" || v.Check != "app/status-set" || v.Severity != "fail" || !strings.HasPrefix(v.Detail, "2 violations") || v.SQL == "" {
		t.Errorf("status-set verification: %+v", v)
	}
	if v := vs["check amounts"]; v.Status != "warning" || v.Severity != "warn" || !strings.HasPrefix(v.Detail, "667 violations") {
		t.Errorf("amounts verification: %+v", v)
	}
	if v := vs["check customers"]; v.Status != "passed" || v.Detail != "0 violations" {
		t.Errorf("customers verification: %+v", v)
	}
	if strings.Contains(rep.Error, "amounts") {
		t.Errorf("a warn check failed the drill: %s", rep.Error)
	}
	// Run against a copy, the checks leave no history of their own.
	runs, err := b.store.ListCheckRuns(b.ctx, store.CheckRunFilter{Service: "app"})
	if err != nil || len(runs) != 0 {
		t.Fatalf("check runs recorded by a drill: %+v, %v", runs, err)
	}
}

func TestDrillPassesWithWarnCheckAndShowsChecksInRunbook(t *testing.T) {
	t.Parallel()
	b, _ := checksSetup(t)
	rep, err := b.run("app", "weekly", drill.RunOptions{})
	if err != nil || rep.Status != drill.StatusPassed {
		t.Fatalf("drill: %v (%+v)", err, rep)
	}
	vs := verifications(rep)
	for name, want := range map[string]string{"check status-set": "passed", "check amounts": "warning", "check customers": "passed", "SELECT count(*) FROM customers": "passed"} {
		if vs[name].Status != want {
			t.Errorf("%s: %+v, want %s", name, vs[name], want)
		}
	}
	svc := b.service("app")
	md, err := drill.Runbook(svc, svc.Drill("weekly"), rep, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| check status-set (integrity check app/status-set, severity fail) | `SELECT", "| check amounts (integrity check app/amounts, severity warn) |", "667 violations"} {
		if !strings.Contains(md, want) {
			t.Errorf("runbook lacks %q:\n%s", want, md)
		}
	}
}
