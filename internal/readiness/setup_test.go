package readiness_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

// baseConfig is a service with every capability configured; tests remove
// or change what they exercise.
const baseConfig = `
steward:
  data_dir: data
users:
  - {name: alice, roles: [admin]}
  - {name: bob, roles: [approver]}
  - {name: carol, roles: [approver]}
policies:
  approvals:
    - name: deploys
      match: {action: [deploy.gate]}
      require: [{approvals: 1, from: ["role:approver"]}]
    - name: data-changes
      match: {action: [fix.apply, fix.undo, sql.exec]}
      require: [{approvals: 1, from: ["role:approver"]}]
notify:
  channels:
    - {name: ops, type: webhook, url: "http://127.0.0.1:9/hook"}
    - {name: pager, type: webhook, url: "http://127.0.0.1:9/page"}
  routes:
    - {match: {service: [shop]}, channels: [ops]}
    - {match: {service: [other]}, channels: [pager]}
kit:
  credentials:
    - {name: root, secret: env:HOME}
services:
  - name: shop
    tier: 1
    contacts:
      oncall: {name: Shop on-call, phone: "+1 555 0100"}
      escalation: {name: CTO, email: cto@example.com}
      provider_noc: {name: Cloud NOC, phone: "+1 555 0199"}
      provider_sirt: {name: Cloud SIRT, email: sirt@cloud.example.com}
    objectives: {rto: 15m, rpo: 24h}
    databases:
      - {name: main, engine: postgres, url: env:HOME, standing_access: [app]}
    backups:
      - {name: nightly, database: main, method: pg_dump, repository: "file:///tmp/none"}
    drills:
      - {name: weekly, backup: nightly}
    checks:
      - {name: amounts, database: main, type: row_predicate, table: orders, predicate: "amount >= 0"}
      - {name: emails, database: main, type: unique, table: customers, columns: [email], severity: warn}
    access:
      - {database: main, profile: read-only, grants: ["SELECT ON ALL TABLES IN SCHEMA public"]}
      - {database: main, profile: write, grants: ["SELECT, UPDATE ON orders"]}
    probes:
      - {name: home, type: http, url: "http://127.0.0.1:9/", locations: [local, eu]}
    slo: {availability: "99.9"}
  - name: other
    tier: 3
`

// bundle is one test's store, audit log, config and clock.
type bundle struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	st   *store.Store
	alog *audit.Log
	cfg  *config.Config
	now  time.Time
	eval *readiness.Evaluator
}

// setup opens a SQLite store in a temp dir, starts an audit log on it and
// loads baseConfig with extra appended (top-level YAML).
func setup(t *testing.T, extra string) *bundle {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(path, []byte(baseConfig+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	alog := audit.New(st, audit.Options{})
	alog.Start(ctx)
	t.Cleanup(func() { alog.Close() })
	b := &bundle{t: t, ctx: ctx, dir: dir, st: st, alog: alog, cfg: cfg, now: time.Now().UTC().Truncate(time.Second)}
	b.eval = &readiness.Evaluator{Store: st, Config: func() *config.Config { return b.cfg }, Audit: alog, Now: func() time.Time { return b.now }}
	return b
}

// results evaluates service and returns its results by control ID.
func (b *bundle) results(service string) map[string]readiness.Result {
	b.t.Helper()
	sc, err := b.eval.Evaluate(b.ctx, service)
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", service, err)
	}
	if len(sc.Services) != 1 || len(sc.Services[0].Results) != len(readiness.Catalog()) {
		b.t.Fatalf("evaluate %s: %d services, want 1 with %d results", service, len(sc.Services), len(readiness.Catalog()))
	}
	out := map[string]readiness.Result{}
	for _, r := range sc.Services[0].Results {
		out[r.Control.ID] = r
	}
	return out
}

// result evaluates one control of shop.
func (b *bundle) result(control string) readiness.Result {
	b.t.Helper()
	return b.results("shop")[control]
}

// audit appends an event as the feature packages do.
func (b *bundle) audit(action, target, outcome string, details map[string]any) audit.Event {
	b.t.Helper()
	ev, err := b.alog.Append(b.ctx, audit.Entry{Actor: "alice", Action: action, Target: target, Outcome: outcome, Details: details})
	if err != nil {
		b.t.Fatal(err)
	}
	return ev
}

// want checks a result's status and that its reason mentions each of
// parts.
func want(t *testing.T, r readiness.Result, status readiness.Status, parts ...string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %s (%s), want %s", r.Control.ID, r.Status, r.Reason, status)
	}
	for _, p := range parts {
		if !strings.Contains(r.Reason, p) {
			t.Fatalf("%s: reason %q does not mention %q", r.Control.ID, r.Reason, p)
		}
	}
	if status != readiness.Pass && r.Fix == "" {
		t.Fatalf("%s: %s without a fix", r.Control.ID, status)
	}
	if status == readiness.Pass && r.Fix != "" {
		t.Fatalf("%s: pass with a fix %q", r.Control.ID, r.Fix)
	}
}

// backup records a finished backup run started at.
func (b *bundle) backup(name, state string, at time.Time) store.BackupRun {
	b.t.Helper()
	r, err := b.st.InsertBackupRun(b.ctx, store.BackupRun{Service: "shop", Backup: name, BackupID: "b-" + at.Format("150405"), Method: "pg_dump", Actor: "system:backup", StartedAt: at})
	if err != nil {
		b.t.Fatal(err)
	}
	fin := at.Add(time.Minute)
	r.State, r.FinishedAt, r.SizeBytes = state, &fin, 4<<20
	if r, err = b.st.FinishBackupRun(b.ctx, r); err != nil {
		b.t.Fatal(err)
	}
	if state == store.BackupSucceeded {
		b.audit("backup.run", "backup:shop/"+name, "ok", map[string]any{"run": r.ID, "size": r.SizeBytes})
	}
	return r
}

// drill records a finished drill run.
func (b *bundle) drill(actor, state string, at time.Time, rto, rpo float64) store.DrillRunRow {
	b.t.Helper()
	r, err := b.st.StartDrillRun(b.ctx, store.DrillRunRow{Service: "shop", Drill: "weekly", Actor: actor, StartedAt: at}, at.Add(-time.Hour))
	if err != nil {
		b.t.Fatal(err)
	}
	fin := at.Add(time.Duration(rto) * time.Second)
	r.State, r.FinishedAt, r.RTOSeconds, r.RPOSeconds = state, &fin, &rto, &rpo
	if err := b.st.UpdateDrillRun(b.ctx, r); err != nil {
		b.t.Fatal(err)
	}
	b.audit("drill.run", "shop/weekly", state, map[string]any{"run_id": r.ID, "rto_seconds": rto})
	return r
}
