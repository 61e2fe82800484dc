package drill_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/dbx"
	dbxall "github.com/stewardhq/steward/internal/dbx/all"
	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/testenv"
)

// cmdSQLiteYAML is a SQLite service whose backups a list and a fetch
// command manage (a snapshot store directory, STORE).
const cmdSQLiteYAML = `services:
  - name: app
    objectives: {rto: 10m, rpo: 24h}
    databases:
      - {name: main, engine: sqlite, url: "SRC"}
    backups:
      - name: snapshots
        database: main
        method: command
        list: "cat STORE/index.jsonl"
        fetch: "cp STORE/$STEWARD_BACKUP_ID.db $STEWARD_FETCH_DIR/app.db"
      - name: denied
        database: main
        method: command
        list: "cat STORE/index.jsonl"
        fetch: "echo 'snapshot store: access denied for role drill' >&2; exit 4"
    drills:
      - name: weekly
        backup: snapshots
        freshness: SELECT max(updated_at) FROM orders
        verify:
          - {sql: "SELECT count(*) FROM orders", expect: "== 2000"}
      - name: denied
        backup: denied
policies:
  approvals:
    - {name: restores, match: {action: [restore.run]}, auto_approve: true}
`

// snapshotStore makes a store of SQLite snapshots: an older one with
// orders up to newest-24h and the latest with orders up to newest, and its
// index of JSON lines.
func snapshotStore(t *testing.T, newest time.Time) string {
	t.Helper()
	dir := t.TempDir()
	var index strings.Builder
	for i, at := range []time.Time{newest.Add(-24 * time.Hour), newest} {
		id := fmt.Sprintf("snap-%d", i+1)
		p := filepath.Join(dir, id+".db")
		seedSQLite(t, p, at)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&index, `{"id":%q,"time":%q,"size":%d}`+"\n", id, at.Add(time.Minute).UTC().Format(time.RFC3339), fi.Size())
	}
	if err := os.WriteFile(filepath.Join(dir, "index.jsonl"), []byte(index.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCommandDrillSQLite(t *testing.T) {
	t.Parallel()
	newest := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	store := snapshotStore(t, newest)
	src := filepath.Join(t.TempDir(), "app.db")
	seedSQLite(t, src, newest)
	yaml := strings.NewReplacer("SRC", src, "STORE", store).Replace(cmdSQLiteYAML)

	t.Run("latest passes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		rep, err := b.run("app", "weekly", drill.RunOptions{})
		if err != nil {
			t.Fatalf("drill: %v (%+v)", err, rep)
		}
		if rep.BackupID != "snap-2" || rep.BackupRef != "app/snapshots/snap-2" || rep.Engine != "sqlite" {
			t.Fatalf("report %+v", rep)
		}
		if rep.RPOSource != drill.RPORestoredData || abs(*rep.RPOSeconds-rep.StartedAt.Sub(newest).Seconds()) > 1 {
			t.Fatalf("rpo %v from %s (%s)", ptr(rep.RPOSeconds), rep.RPOSource, rep.Freshness)
		}
		status := map[string]drill.Verification{}
		for _, v := range rep.Verifications {
			status[v.Name] = v
		}
		if v := status["row counts"]; v.Status != "skipped" || v.Detail != "not available for command backups" {
			t.Errorf("row counts %+v", v)
		}
		if status["SELECT count(*) FROM orders"].Status != "passed" {
			t.Errorf("verifications %+v", rep.Verifications)
		}
		for _, p := range []string{drill.PhasePick, drill.PhaseProvision, drill.PhaseFetch, "restore data", drill.PhaseVerify, drill.PhaseTeardown} {
			if !hasPhase(rep, p) {
				t.Errorf("no phase %q in %+v", p, rep.Phases)
			}
		}
		for _, p := range rep.Phases {
			if p.Name == drill.PhaseFetch && p.Bytes != rep.BackupBytes {
				t.Errorf("fetch phase %+v, want %d bytes", p, rep.BackupBytes)
			}
		}
		b.checkNoScratch()
		runs, _ := drill.History(b.ctx, b.store, "app", "weekly", 10)
		svc := b.service("app")
		md, err := drill.Runbook(svc, svc.Drill("weekly"), drill.LastPassed(runs).Report, nil)
		if err != nil || !strings.Contains(md, "cat "+store+"/index.jsonl") || !strings.Contains(md, "STEWARD_BACKUP_ID=snap-2") {
			t.Fatalf("runbook: %v\n%s", err, md)
		}
	})

	t.Run("by id", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		// The older snapshot is 26h old: the drill restores it and misses the RPO.
		rep, err := b.run("app", "weekly", drill.RunOptions{BackupID: "app/snapshots/snap-1"})
		b.checkFailed(rep, err, drill.StatusFailed, "objective missed: RPO")
		if rep.BackupID != "snap-1" {
			t.Fatalf("restored %s", rep.BackupID)
		}
	})

	t.Run("unknown id", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		rep, err := b.run("app", "weekly", drill.RunOptions{BackupID: "snap-9"})
		b.checkFailed(rep, err, drill.StatusFailed, "no backup to restore: no backup snap-9 in app/snapshots: the list command lists snap-2, snap-1")
	})

	t.Run("fetch fails", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		rep, err := b.run("app", "denied", drill.RunOptions{})
		b.checkFailed(rep, err, drill.StatusFailed, "snapshot store: access denied for role drill")
	})

	t.Run("restores for real", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		target := filepath.Join(t.TempDir(), "restored.db")
		// The older snapshot, 26h old: a real restore is measured against
		// the RPO objective, not failed by it.
		params := drill.RestoreParams{Database: "main", BackupID: "snap-1", To: target}
		act, rep, err := b.restore("app", params)
		if err != nil {
			t.Fatalf("restore: %v (%+v)", err, rep)
		}
		if !strings.Contains(act.Plan.Summary, "restore app/snapshots/snap-1") || !strings.Contains(act.Result.Summary, "restored and verified") {
			t.Fatalf("plan %q, result %q", act.Plan.Summary, act.Result.Summary)
		}
		if rep.Mode != "restore" || rep.Status != drill.StatusPassed || rep.BackupID != "snap-1" || rep.Scratch != "target "+target || rep.ScratchLabel != "" {
			t.Fatalf("report %+v", rep)
		}
		for _, p := range []string{drill.PhasePick, drill.PhaseFetch, "restore data", drill.PhaseVerify} {
			if !hasPhase(rep, p) {
				t.Errorf("no phase %q in %+v", p, rep.Phases)
			}
		}
		if hasPhase(rep, drill.PhaseProvision) || hasPhase(rep, drill.PhaseTeardown) {
			t.Errorf("a real restore provisioned or tore down: %+v", rep.Phases)
		}
		// The restored file is the snapshot, with the data up to its time.
		eng, _ := b.engines.Get("sqlite")
		if v, err := eng.QueryValue(b.ctx, target, "SELECT count(*) FROM orders"); err != nil || v != "2000" {
			t.Fatalf("restored orders: %q, %v", v, err)
		}
		if rep.RPOSource != drill.RPORestoredData || abs(*rep.RPOSeconds-rep.StartedAt.Sub(newest.Add(-24*time.Hour)).Seconds()) > 1 {
			t.Fatalf("rpo %v from %s (%s)", ptr(rep.RPOSeconds), rep.RPOSource, rep.Freshness)
		}
		if got := b.auditOutcomes("restore.run"); len(got) != 1 || got[0] != drill.StatusPassed {
			t.Fatalf("audit restore.run outcomes %v", got)
		}
		b.checkNoScratch()

		// Again, into the file it just wrote: refused, nothing merged.
		_, rep, err = b.restore("app", params)
		if err == nil || rep.Status != drill.StatusFailed || !strings.Contains(rep.Error, "not empty") || !strings.Contains(rep.Error, "nothing was changed") {
			t.Fatalf("restore over data: %v (%+v)", err, rep)
		}
		critical := false
		for _, a := range b.alerts() {
			critical = critical || a.Event == drill.EventFailed && a.Severity == notify.SeverityCritical
		}
		if !critical {
			t.Fatalf("no critical alert for the failed restore: %+v", b.alerts())
		}

		// An id the list command does not print: refused before anything runs.
		params.BackupID = "snap-9"
		if _, _, err := b.restore("app", params); err == nil || !strings.Contains(err.Error(), "no backup snap-9 in app/snapshots: it lists snap-2, snap-1") {
			t.Fatalf("restore of an unknown id: %v", err)
		}
	})
}

const cmdPgYAML = `services:
  - name: shop
    objectives: {rto: 10m, rpo: 24h}
    databases:
      - {name: main, engine: postgres, url: "SRC"}
    backups:
      - name: snapshots
        database: main
        method: command
        list: "echo '{\"id\":\"dump-1\",\"time\":\"TIME\",\"size\":SIZE}'"
        fetch: "cp DUMP $STEWARD_FETCH_DIR/"
    drills:
      - name: weekly
        backup: snapshots
        scratch: {kind: server, url: "ADMIN"}
        freshness: SELECT max(updated_at) FROM orders
        amcheck: true
        verify:
          - {name: orders, sql: "SELECT count(*) FROM orders", expect: "== 20000"}
policies:
  approvals:
    - {name: restores, match: {action: [restore.run]}, auto_approve: true}
`

func TestCommandDrillPostgres(t *testing.T) {
	t.Parallel()
	src := testenv.PostgresURL(t)
	newest := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	seedPostgres(t, src, newest)
	eng, err := dbxall.Registry().Get("postgres")
	if err != nil {
		t.Fatal(err)
	}
	// A real pg_dump custom-format file, as a user's script would keep.
	dumpDir := t.TempDir()
	d, err := eng.Dump(context.Background(), src, dumpDir, dbx.DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	custom := filepath.Join(dumpDir, d.Files[0])
	plain := filepath.Join(t.TempDir(), "shop.sql")
	if err := os.WriteFile(plain, []byte("CREATE TABLE orders (id int);\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := func(dump string) string {
		fi, err := os.Stat(dump)
		if err != nil {
			t.Fatal(err)
		}
		return strings.NewReplacer("SRC", src, "ADMIN", pgAdminURL(t), "DUMP", dump, "SIZE", fmt.Sprint(fi.Size()),
			"TIME", d.SnapshotTime.UTC().Format(time.RFC3339)).Replace(cmdPgYAML)
	}

	t.Run("custom dump passes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml(custom))
		rep, err := b.run("shop", "weekly", drill.RunOptions{})
		if err != nil {
			t.Fatalf("drill: %v (%+v)", err, rep)
		}
		if rep.RPOSource != drill.RPORestoredData || abs(*rep.RPOSeconds-rep.StartedAt.Sub(newest).Seconds()) > 2 {
			t.Fatalf("rpo %v from %s (%s)", ptr(rep.RPOSeconds), rep.RPOSource, rep.Freshness)
		}
		if !hasPhase(rep, "build indexes/constraints") || !strings.Contains(strings.Join(rep.Commands, "\n"), "pg_restore") {
			t.Fatalf("phases %+v, commands %q", rep.Phases, rep.Commands)
		}
		for _, v := range rep.Verifications {
			if v.Status != "passed" && v.Name != "row counts" {
				t.Errorf("verification %+v", v)
			}
		}
		b.checkNoScratch()
	})

	t.Run("restores for real", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml(custom))
		target := testenv.PostgresURL(t) // a new, empty database
		act, rep, err := b.restore("shop", drill.RestoreParams{Database: "main", BackupID: "shop/snapshots/dump-1", To: target})
		if err != nil {
			t.Fatalf("restore: %v (%+v)", err, rep)
		}
		if !strings.Contains(act.Plan.Summary, "target is empty") || rep.Status != drill.StatusPassed || rep.Mode != "restore" {
			t.Fatalf("plan %q, report %+v", act.Plan.Summary, rep)
		}
		if !strings.Contains(strings.Join(rep.Commands, "\n"), "pg_restore") || !hasPhase(rep, "build indexes/constraints") {
			t.Fatalf("commands %q, phases %+v", rep.Commands, rep.Phases)
		}
		for _, v := range rep.Verifications {
			if v.Status != "passed" && v.Name != "row counts" {
				t.Errorf("verification %+v", v)
			}
		}
		if v, err := eng.QueryValue(b.ctx, target, "SELECT count(*) FROM orders"); err != nil || v != "20000" {
			t.Fatalf("restored target: %q, %v", v, err)
		}
		b.checkNoScratch()
	})

	t.Run("plain SQL is refused clearly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml(plain))
		rep, err := b.run("shop", "weekly", drill.RunOptions{})
		b.checkFailed(rep, err, drill.StatusFailed, "shop.sql is not a pg_dump custom-format file")
	})
}
