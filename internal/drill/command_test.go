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

	t.Run("plain SQL is refused clearly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml(plain))
		rep, err := b.run("shop", "weekly", drill.RunOptions{})
		b.checkFailed(rep, err, drill.StatusFailed, "shop.sql is not a pg_dump custom-format file")
	})
}
