package drill_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

// passwordInURL finds user:password@ in a URL.
var passwordInURL = regexp.MustCompile(`://[^/@:\s]+:[^@/\s]+@`)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// sqliteYAML is a service with a SQLite database at SRC, a plain and an
// encrypted backup, and drills; OBJ, DRILLX and ENC are filled per test.
const sqliteYAML = `services:
  - name: app
    objectives: {OBJ}
    contacts: {oncall: "app on-call"}
    databases:
      - {name: main, engine: sqlite, url: "SRC"}
    backups:
      - {name: nightly, database: main, method: sqlite, repository: REPO}
      - {name: sealed, database: main, method: sqlite, repository: REPO, encrypt: {recipients: [RCPT], identity: "IDENT"}}
    drills:
      - name: weekly
        backup: nightly
        freshness: SELECT max(updated_at) FROM orders
        verify:
          - {name: no order without status, sql: "SELECT count(*) FROM orders WHERE status IS NULL", expect: "== 0"}
          - {sql: "SELECT count(*) FROM customers", expect: "value >= 50"}
DRILLX
      - name: sealed
        backup: sealed
`

type sqliteOpts struct {
	objectives string // e.g. "rto: 10m, rpo: 24h"
	drillExtra string // more YAML lines under the weekly drill (8 spaces)
	newest     time.Time
	wrongKey   bool
}

// sqliteSetup builds a bundle with a seeded SQLite source.
func sqliteSetup(t *testing.T, o sqliteOpts) *bundle {
	t.Helper()
	src := filepath.Join(t.TempDir(), "app.db")
	if o.newest.IsZero() {
		o.newest = time.Now().Add(-time.Minute)
	}
	seedSQLite(t, src, o.newest)
	if o.objectives == "" {
		o.objectives = "rto: 10m, rpo: 24h"
	}
	rcpt, ident := ageKeys(t)
	if o.wrongKey {
		_, ident = ageKeys(t)
	}
	y := strings.NewReplacer("OBJ", o.objectives, "SRC", src, "RCPT", rcpt, "IDENT", ident, "DRILLX\n", o.drillExtra).Replace(sqliteYAML)
	return setup(t, y)
}

func TestSQLiteDrillPasses(t *testing.T) {
	t.Parallel()
	newest := time.Now().Add(-90 * time.Minute).Truncate(time.Second)
	b := sqliteSetup(t, sqliteOpts{newest: newest})
	m := b.takeBackup("app", "nightly")
	rep, err := b.run("app", "weekly", drill.RunOptions{})
	if err != nil {
		t.Fatalf("drill: %v (%+v)", err, rep)
	}
	if rep.Status != drill.StatusPassed || rep.BackupID != m.ID || rep.Engine != "sqlite" {
		t.Fatalf("report %+v", rep)
	}
	if rep.RTOSeconds == nil || *rep.RTOSeconds <= 0 || *rep.RTOSeconds > 60 {
		t.Fatalf("rto %v", rep.RTOSeconds)
	}
	// RPO from the restored data: the newest order, 90 minutes before start.
	if rep.RPOSource != drill.RPORestoredData || rep.RPOSeconds == nil || abs(*rep.RPOSeconds-rep.StartedAt.Sub(newest).Seconds()) > 1 {
		t.Fatalf("rpo %v from %s (newest %s), want %.0fs", ptr(rep.RPOSeconds), rep.RPOSource, rep.Freshness, rep.StartedAt.Sub(newest).Seconds())
	}
	if *rep.Objectives.RTOSeconds != 600 || *rep.Objectives.RPOSeconds != 86400 {
		t.Fatalf("objectives %+v", rep.Objectives)
	}
	names := map[string]string{}
	for _, v := range rep.Verifications {
		names[v.Name] = v.Status
	}
	for _, n := range []string{"row counts", "no order without status", "SELECT count(*) FROM customers", "RTO objective", "RPO objective"} {
		if names[n] != "passed" {
			t.Errorf("verification %q = %q (%+v)", n, names[n], rep.Verifications)
		}
	}
	for _, p := range []string{drill.PhasePick, drill.PhaseProvision, "fetch", "verify checksum", drill.PhaseVerify, drill.PhaseTeardown} {
		if !hasPhase(rep, p) {
			t.Errorf("no phase %q in %+v", p, rep.Phases)
		}
	}
	b.checkNoScratch()
	if got := b.auditOutcomes("drill.run"); len(got) != 1 || got[0] != "passed" {
		t.Fatalf("audit %v", got)
	}
	if len(b.alerts()) != 0 {
		t.Fatalf("alerts on a pass: %+v", b.alerts())
	}
	// The JSON the CLI prints has the documented fields.
	raw, _ := json.Marshal(rep)
	for _, k := range []string{`"status"`, `"backup_id"`, `"rto_seconds"`, `"rpo_seconds"`, `"rpo_source"`, `"objectives"`, `"phases"`, `"mb_per_s"`, `"verifications"`, `"scratch"`, `"error"`, `"started_at"`, `"commands"`, `"tool_versions"`} {
		if !strings.Contains(string(raw), k) {
			t.Errorf("report JSON lacks %s", k)
		}
	}
	// History and the runbook come from this run.
	runs, err := drill.History(b.ctx, b.store, "app", "weekly", 10)
	if err != nil || len(runs) != 1 || drill.LastPassed(runs) == nil {
		t.Fatalf("history %+v, %v", runs, err)
	}
	svc := b.service("app")
	md, err := drill.Runbook(svc, svc.Drill("weekly"), drill.LastPassed(runs).Report, &m)
	if err != nil || !strings.Contains(md, "app on-call") || !strings.Contains(md, "SELECT count(*) FROM orders WHERE status IS NULL") {
		t.Fatalf("runbook: %v\n%s", err, md)
	}
}

func TestSQLiteEncryptedDrillPasses(t *testing.T) {
	t.Parallel()
	b := sqliteSetup(t, sqliteOpts{})
	m := b.takeBackup("app", "sealed")
	if !m.Encrypted {
		t.Fatal("backup not encrypted")
	}
	rep, err := b.run("app", "sealed", drill.RunOptions{BackupID: m.ID})
	if err != nil {
		t.Fatalf("drill: %v", err)
	}
	if !hasPhase(rep, "decrypt") || rep.RPOSource != drill.RPOSnapshotTime {
		t.Fatalf("phases %+v, rpo source %s", rep.Phases, rep.RPOSource)
	}
	b.checkNoScratch()
}

func TestDrillFailures(t *testing.T) {
	t.Parallel()
	objectFile := func(b *bundle) string {
		var found string
		filepath.WalkDir(filepath.Join(b.dir, "repo"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasSuffix(p, "manifest.json") && !strings.Contains(p, ".attrs") {
				found = p
			}
			return nil
		})
		if found == "" {
			t.Fatal("no backup object in the repository")
		}
		return found
	}
	tests := []struct {
		name   string
		opts   sqliteOpts
		drill  string
		prep   func(t *testing.T, b *bundle) // after the backup
		backup string                        // "" takes none
		status string
		reason string
	}{
		{name: "corrupted object", backup: "nightly", prep: func(t *testing.T, b *bundle) {
			p := objectFile(b)
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 0xff
			os.WriteFile(p, data, 0o600)
		}, reason: "corrupted or truncated, take another: checksum mismatch"},
		{name: "truncated object", backup: "nightly", prep: func(t *testing.T, b *bundle) {
			p := objectFile(b)
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()/2)
		}, reason: "(truncated or replaced)"},
		{name: "wrong decryption key", opts: sqliteOpts{wrongKey: true}, drill: "sealed", backup: "sealed", reason: "cannot decrypt backup"},
		{name: "missing backup", reason: "no backup"},
		{name: "backup older than the RPO", opts: sqliteOpts{newest: time.Now().Add(-49 * time.Hour)}, backup: "nightly", reason: "RPO"},
		{name: "RTO objective missed", opts: sqliteOpts{objectives: "rto: 1ms, rpo: 24h"}, backup: "nightly", reason: "RTO"},
		{name: "failing assertion", opts: sqliteOpts{drillExtra: "          - {name: every order refunded, sql: \"SELECT count(*) FROM orders WHERE status = 'refunded'\", expect: \"> 0\"}\n"},
			backup: "nightly", reason: "every order refunded: value 0 does not satisfy > 0"},
		{name: "phase timeout", opts: sqliteOpts{drillExtra: "        timeout: 1s\n        scratch: {kind: command, provision: \"sleep 30; echo /nonexistent\", destroy: \"true\"}\n"},
			backup: "nightly", reason: "provision timed out after 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := sqliteSetup(t, tt.opts)
			if tt.backup != "" {
				b.takeBackup("app", tt.backup)
			}
			if tt.prep != nil {
				tt.prep(t, b)
			}
			name := tt.drill
			if name == "" {
				name = "weekly"
			}
			start := time.Now()
			rep, err := b.run("app", name, drill.RunOptions{})
			if tt.name == "phase timeout" && time.Since(start) > 10*time.Second {
				t.Fatalf("the timed-out hook was not killed: drill took %s", time.Since(start))
			}
			status := tt.status
			if status == "" {
				status = drill.StatusFailed
			}
			b.checkFailed(rep, err, status, tt.reason)
		})
	}
}

func TestAlreadyRunning(t *testing.T) {
	t.Parallel()
	b := sqliteSetup(t, sqliteOpts{})
	b.takeBackup("app", "nightly")
	if _, err := b.store.StartDrillRun(b.ctx, store.DrillRunRow{Service: "app", Drill: "weekly", Actor: "other"}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	rep, err := b.run("app", "weekly", drill.RunOptions{})
	if !errors.Is(err, drill.ErrAlreadyRunning) || rep != nil {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
}

// TestKilledMidDrill simulates Steward killed mid-drill: a drill run left
// running past its timeout and a scratch resource that exists. The next
// start removes the resource and marks the run interrupted.
func TestKilledMidDrill(t *testing.T) {
	t.Parallel()
	b := sqliteSetup(t, sqliteOpts{})
	work := filepath.Join(b.dir, "work")
	os.MkdirAll(work, 0o700)
	eng, err := b.engines.Get("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	label := drill.LabelPrefix + "app-weekly-deadbeef"
	started := time.Now().Add(-3 * time.Hour) // the default timeout is 2h
	run, err := b.store.StartDrillRun(b.ctx, store.DrillRunRow{Service: "app", Drill: "weekly", Actor: "system:schedule", StartedAt: started, ScratchLabel: label}, started.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := json.Marshal(map[string]string{"service": "app", "drill": "weekly", "dir": work})
	if err := b.store.InsertScratch(b.ctx, store.ScratchRow{Label: label, Engine: "sqlite", Kind: "ephemeral", Location: string(loc), CreatedAt: started}); err != nil {
		t.Fatal(err)
	}
	sc, err := eng.Scratch(b.ctx, dbx.ScratchOptions{Kind: "ephemeral", Label: label, Dir: work})
	if err != nil {
		t.Fatal(err)
	}
	if !scratchExists(work, label) {
		t.Fatalf("scratch %s (%s) not found under %s", label, sc.Description, work)
	}
	// A drill of another service, running now, keeps its scratch.
	liveLabel := drill.LabelPrefix + "app-sealed-cafef00d"
	if _, err := b.store.StartDrillRun(b.ctx, store.DrillRunRow{Service: "app", Drill: "sealed", Actor: "x", ScratchLabel: liveLabel}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.store.InsertScratch(b.ctx, store.ScratchRow{Label: liveLabel, Engine: "sqlite", Kind: "ephemeral", Location: string(loc)})

	rep, err := drill.CleanLeftovers(b.ctx, b.deps())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 1 || rep.Removed[0] != label || len(rep.Interrupted) != 1 || rep.Interrupted[0] != run.ID {
		t.Fatalf("cleanup %+v", rep)
	}
	if scratchExists(work, label) {
		t.Fatal("scratch still on disk")
	}
	row, _ := b.store.GetDrillRun(b.ctx, run.ID)
	if row.State != store.DrillError || row.Error != drill.Interrupted {
		t.Fatalf("run %+v", row)
	}
	live, _ := b.store.LiveScratch(b.ctx)
	if len(live) != 1 || live[0].Label != liveLabel {
		t.Fatalf("live scratch %+v", live)
	}
	if got := b.auditOutcomes("drill.run"); len(got) != 1 || got[0] != "error" {
		t.Fatalf("audit %v", got)
	}
}

func scratchExists(dir, label string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), label) {
			return true
		}
	}
	return false
}

const pgYAML = `services:
  - name: shop
    objectives: {rto: 10m, rpo: 24h}
    contacts: {oncall: "shop on-call", escalation: {name: Dana, email: dana@example.com}}
    databases:
      - {name: main, engine: postgres, url: "SRC"}
    backups:
      - {name: nightly, database: main, method: pg_dump, repository: REPO, format: custom, jobs: 2, freshness: "SELECT max(updated_at) FROM orders"}
    drills:
      - name: weekly
        backup: nightly
        scratch: {kind: server, url: "ADMIN"}
        amcheck: true
        verify:
          - {name: no order without status, sql: "SELECT count(*) FROM orders WHERE status IS NULL", expect: "== 0"}
          - {name: orders, sql: "SELECT count(*) FROM orders", expect: "== 20000"}
      - name: ephemeral
        backup: nightly
        scratch: {kind: ephemeral}
        row_counts: 1%
policies:
  approvals:
    - {name: restores, match: {action: [restore.run]}, auto_approve: true}
`

func pgSetup(t *testing.T) (*bundle, string) {
	t.Helper()
	src := testenv.PostgresURL(t)
	seedPostgres(t, src, time.Now().Add(-2*time.Hour))
	admin := pgAdminURL(t)
	return setup(t, strings.NewReplacer("SRC", src, "ADMIN", admin).Replace(pgYAML)), src
}

func TestPostgresDrillPassesAndRestoresForReal(t *testing.T) {
	t.Parallel()
	b, _ := pgSetup(t)
	m := b.takeBackup("shop", "nightly")
	rep, err := b.run("shop", "weekly", drill.RunOptions{})
	if err != nil {
		t.Fatalf("drill: %v", err)
	}
	if rep.RPOSource != drill.RPORestoredData || *rep.RPOSeconds < 7100 || *rep.RPOSeconds > 7300 {
		t.Fatalf("rpo %v from %s", ptr(rep.RPOSeconds), rep.RPOSource)
	}
	for _, v := range rep.Verifications {
		if v.Status != "passed" {
			t.Errorf("verification %+v", v)
		}
	}
	if cmds := strings.Join(rep.Commands, "\n"); len(rep.Commands) == 0 || !strings.Contains(cmds, "pg_restore") || passwordInURL.MatchString(cmds) {
		t.Fatalf("commands %q", rep.Commands)
	}
	if rep.ToolVersions["restore"] == "" {
		t.Fatalf("tool versions %v", rep.ToolVersions)
	}
	b.checkNoScratch()

	// Restoring for real: the restore.run action through the pipeline.
	target := testenv.PostgresURL(t)
	deps := b.deps()
	reg := action.NewRegistry()
	reg.Register(drill.NewRestoreKind(func() *config.Config { return b.cfg }, deps))
	p, err := action.New(action.Options{Store: b.store, Kinds: reg, Config: b.cfg, Audit: deps.Audit, Notifier: b.outbox})
	if err != nil {
		t.Fatal(err)
	}
	admin := auth.NewManager(b.store, nil, deps.Audit).LocalAdmin("tester")
	params, _ := json.Marshal(drill.RestoreParams{Database: "main", BackupID: m.ID, To: target})
	act, err := p.Create(b.ctx, admin, action.Request{Kind: drill.RestoreKindName, Service: "shop", Target: "main", Params: params, Reason: "INC-1: test restore"})
	if err != nil {
		t.Fatal(err)
	}
	if act.Risk != action.RiskCritical || !strings.Contains(act.Plan.Summary, "target is empty") || !strings.Contains(act.Plan.Summary, "about 1 min") {
		t.Fatalf("plan %+v", act.Plan)
	}
	act, err = p.Execute(b.ctx, admin, act.ID)
	if err != nil {
		t.Fatalf("execute: %v (%+v)", err, act)
	}
	if act.State != action.Succeeded {
		t.Fatalf("action %+v", act)
	}
	eng, _ := b.engines.Get("postgres")
	if v, err := eng.QueryValue(b.ctx, target, "SELECT count(*) FROM orders"); err != nil || v != "20000" {
		t.Fatalf("restored target: %q, %v", v, err)
	}
	// Into a target that has data: refused, clearly, and nothing merged.
	act2, err := p.Create(b.ctx, admin, action.Request{Kind: drill.RestoreKindName, Service: "shop", Target: "main", Params: params, Reason: "again"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(act2.Plan.Summary, "2 tables") {
		t.Fatalf("plan of a non-empty target: %s", act2.Plan.Summary)
	}
	if _, err := p.Execute(b.ctx, admin, act2.ID); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore over data: %v", err)
	}
}

func TestPostgresEphemeralDrill(t *testing.T) {
	t.Parallel()
	b, _ := pgSetup(t)
	b.takeBackup("shop", "nightly")
	rep, err := b.run("shop", "ephemeral", drill.RunOptions{})
	if err != nil {
		t.Fatalf("drill: %v", err)
	}
	if !strings.Contains(strings.ToLower(rep.Scratch), "ephemeral") && !strings.Contains(rep.Scratch, "127.0.0.1") {
		t.Fatalf("scratch %q", rep.Scratch)
	}
	b.checkNoScratch()
}

const myYAML = `services:
  - name: crm
    objectives: {rto: 10m, rpo: 24h}
    databases:
      - {name: main, engine: mysql, url: "SRC"}
    backups:
      - {name: nightly, database: main, method: mysqldump, repository: REPO}
    drills:
      - name: weekly
        backup: nightly
        scratch: {kind: server, url: "ADMIN"}
        freshness: SELECT max(updated_at) FROM orders
        verify:
          - {sql: "SELECT count(*) FROM orders", expect: "== 3000"}
      - name: ephemeral
        backup: nightly
        scratch: {kind: ephemeral}
`

// mySetup seeds a new MariaDB database (newest order 3 hours ago) and
// builds a bundle whose service crm backs it up.
func mySetup(t *testing.T) (*bundle, string) {
	t.Helper()
	src := testenv.MySQLDSN(t)
	seedMySQL(t, src, time.Now().Add(-3*time.Hour).Truncate(time.Second))
	admin := src[:strings.Index(src, ")/")+2]
	return setup(t, strings.NewReplacer("SRC", src, "ADMIN", admin).Replace(myYAML)), src
}

func TestMySQLDrillPasses(t *testing.T) {
	t.Parallel()
	src := testenv.MySQLDSN(t)
	newest := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	seedMySQL(t, src, newest)
	admin := src[:strings.Index(src, ")/")+2]
	b := setup(t, strings.NewReplacer("SRC", src, "ADMIN", admin).Replace(myYAML))
	b.takeBackup("crm", "nightly")
	rep, err := b.run("crm", "weekly", drill.RunOptions{})
	if err != nil {
		t.Fatalf("drill: %v", err)
	}
	if rep.RPOSource != drill.RPORestoredData || abs(*rep.RPOSeconds-rep.StartedAt.Sub(newest).Seconds()) > 2 {
		t.Fatalf("rpo %v from %s (%s)", ptr(rep.RPOSeconds), rep.RPOSource, rep.Freshness)
	}
	b.checkNoScratch()
}

func hasPhase(r *drill.Report, name string) bool {
	for _, p := range r.Phases {
		if p.Name == name {
			return true
		}
	}
	return false
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func ptr(f *float64) string {
	if f == nil {
		return "nil"
	}
	return fmt.Sprint(*f)
}
