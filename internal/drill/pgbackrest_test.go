package drill_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	dbxall "github.com/stewardhq/steward/internal/dbx/all"
	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

const pgbrYAML = `services:
  - name: shop
    objectives: {rto: 10m, rpo: 24h}
    databases:
      - {name: main, engine: postgres, url: "SRC"}
    backups:
      - {name: pitr, database: main, method: pgbackrest, stanza: demo, pgbackrest_config: CONF}
    drills:
      - name: weekly
        backup: pitr
        freshness: SELECT max(updated_at) FROM orders
        amcheck: true
        verify:
          - {name: orders, sql: "SELECT count(*) FROM orders", expect: "== 1500"}
      - name: strict
        backup: pitr
        verify:
          - {name: every order refunded, sql: "SELECT count(*) FROM orders WHERE status = 'refunded'", expect: "> 0"}
      - name: slow
        backup: pitr
        verify:
          - {name: slow, sql: "SELECT count(*) FROM (SELECT pg_sleep(120)) s", expect: "== 1"}
policies:
  approvals:
    - {name: restores, match: {action: [restore.run]}, auto_approve: true}
`

// TestPgBackRestDrills drills a real stanza: a full backup of 1000 orders,
// then 500 newer orders in archived WAL only, which recovery replays.
func TestPgBackRestDrills(t *testing.T) {
	t.Parallel()
	s := testenv.StartPgBackRest(t)
	s.PSQL(t, s.Port, "postgres", "CREATE DATABASE shop")
	s.PSQL(t, s.Port, "shop", "CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, updated_at timestamptz NOT NULL); "+
		"INSERT INTO orders SELECT g, 'paid', now() - interval '3 hours' FROM generate_series(1, 1000) g")
	s.Run(t, "pgbackrest", "--config="+s.Conf, "--stanza=demo", "--type=full", "backup")
	newest := time.Now().Add(-time.Hour).Truncate(time.Second)
	s.PSQL(t, s.Port, "shop", fmt.Sprintf("INSERT INTO orders SELECT g, 'paid', '%s' FROM generate_series(1001, 1500) g", newest.UTC().Format(time.RFC3339)))
	// check switches to a new WAL segment and waits until it is archived.
	s.Run(t, "pgbackrest", "--config="+s.Conf, "--stanza=demo", "check")
	yaml := strings.NewReplacer("SRC", s.URL("shop"), "CONF", s.Conf).Replace(pgbrYAML)

	t.Run("passes with RPO from the restored data", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		rep, err := b.run("shop", "weekly", drill.RunOptions{})
		if err != nil {
			t.Fatalf("drill: %v (%+v)", err, rep)
		}
		if rep.Status != drill.StatusPassed || !strings.HasSuffix(rep.BackupID, "F") || rep.Engine != "postgres" || rep.BackupRef != "shop/pitr/"+rep.BackupID {
			t.Fatalf("report %+v", rep)
		}
		// The newest order is in WAL archived after the backup: the RPO is
		// measured from what recovery restored, not the backup's stop time.
		if rep.RPOSource != drill.RPORestoredData || rep.RPOSeconds == nil || abs(*rep.RPOSeconds-rep.StartedAt.Sub(newest).Seconds()) > 2 {
			t.Fatalf("rpo %v from %s (newest %s), want %.0fs", ptr(rep.RPOSeconds), rep.RPOSource, rep.Freshness, rep.StartedAt.Sub(newest).Seconds())
		}
		status := map[string]drill.Verification{}
		for _, v := range rep.Verifications {
			status[v.Name] = v
		}
		if v := status["row counts"]; v.Status != "skipped" || v.Detail != "not available for pgbackrest backups" {
			t.Errorf("row counts %+v", v)
		}
		for _, n := range []string{"orders", "amcheck", "RTO objective", "RPO objective"} {
			if status[n].Status != "passed" {
				t.Errorf("verification %q = %+v", n, status[n])
			}
		}
		for _, p := range []string{drill.PhasePick, drill.PhaseProvision, drill.PhaseRestoreData, drill.PhaseRecovery, drill.PhaseVerify, drill.PhaseTeardown} {
			if !hasPhase(rep, p) {
				t.Errorf("no phase %q in %+v", p, rep.Phases)
			}
		}
		for _, p := range rep.Phases {
			if p.Name == drill.PhaseRestoreData && (p.Bytes <= 0 || p.Bytes != rep.BackupBytes) {
				t.Errorf("restore data phase %+v, want the backup's %d bytes", p, rep.BackupBytes)
			}
		}
		cmds := strings.Join(rep.Commands, "\n")
		if !strings.Contains(cmds, "pgbackrest --stanza=demo") || !strings.Contains(cmds, "--set="+rep.BackupID) || !strings.Contains(cmds, "pg_ctl") {
			t.Errorf("commands %q", rep.Commands)
		}
		if !strings.HasPrefix(rep.ToolVersions["restore"], "pgBackRest 2.") || !strings.HasPrefix(rep.ToolVersions["scratch_server"], "15") {
			t.Errorf("tool versions %v", rep.ToolVersions)
		}
		b.checkNoScratch()
		checkNoScratchDir(t, b, rep.ScratchLabel)
		// The runbook tells how to restore from the stanza.
		runs, err := drill.History(b.ctx, b.store, "shop", "weekly", 10)
		if err != nil || drill.LastPassed(runs) == nil {
			t.Fatalf("history %+v, %v", runs, err)
		}
		svc := b.service("shop")
		md, err := drill.Runbook(svc, svc.Drill("weekly"), drill.LastPassed(runs).Report, nil)
		if err != nil || !strings.Contains(md, "pgbackrest --stanza=demo --config="+s.Conf+" info") || strings.Contains(md, "sha256sum") {
			t.Fatalf("runbook: %v\n%s", err, md)
		}
	})

	t.Run("failing assertion", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		rep, err := b.run("shop", "strict", drill.RunOptions{})
		b.checkFailed(rep, err, drill.StatusFailed, "every order refunded: value 0 does not satisfy > 0")
		checkNoScratchDir(t, b, rep.ScratchLabel)
	})

	t.Run("missing backup id", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		rep, err := b.run("shop", "weekly", drill.RunOptions{BackupID: "20200101-000000F"})
		b.checkFailed(rep, err, drill.StatusFailed, "no backup to restore: no backup 20200101-000000F in shop/pitr")
	})

	t.Run("restores for real into a data directory", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		restoreDataDir(t, b, s, newest)
	})

	t.Run("real restore refuses what it cannot restore into", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		latest := latestLabel(t, b)
		// A database URL: pgBackRest restores clusters, not databases.
		_, _, err := b.restore("shop", drill.RestoreParams{Database: "main", BackupID: latest, To: s.URL("shop")})
		if err == nil || !strings.Contains(err.Error(), "pgBackRest backup of the whole cluster: it restores into a data directory") {
			t.Fatalf("restore into a database: %v", err)
		}
		// A relative directory.
		if _, _, err := b.restore("shop", drill.RestoreParams{Database: "main", BackupID: latest, To: "pgdata:restored"}); err == nil || !strings.Contains(err.Error(), "absolute path") {
			t.Fatalf("restore into a relative path: %v", err)
		}
		// A directory that is not empty: refused, its file left alone.
		full := filepath.Join(t.TempDir(), "pgdata")
		if err := os.Mkdir(full, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(full, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		act, rep, err := b.restore("shop", drill.RestoreParams{Database: "main", BackupID: latest, To: "pgdata:" + full})
		if err == nil || rep.Status != drill.StatusFailed || !strings.Contains(rep.Error, "target data directory "+full+" is not empty (1 entries: PG_VERSION…)") {
			t.Fatalf("restore into a full directory: %v (%+v)", err, rep)
		}
		if !strings.Contains(act.Plan.Summary, "is not empty (1 entries): the restore will refuse it") {
			t.Fatalf("plan %q", act.Plan.Summary)
		}
		if b, err := os.ReadFile(filepath.Join(full, "PG_VERSION")); err != nil || string(b) != "15\n" {
			t.Fatalf("the target's file changed: %q, %v", b, err)
		}
		// Under root, a directory the postgres OS user cannot reach (a 0700
		// test directory of root): said so before pgbackrest runs.
		if os.Geteuid() == 0 {
			hidden := filepath.Join(t.TempDir(), "pgdata")
			_, rep, err := b.restore("shop", drill.RestoreParams{Database: "main", BackupID: latest, To: "pgdata:" + hidden})
			if err == nil || !strings.Contains(rep.Error, "the postgres OS user cannot reach it") || hasPhase(rep, drill.PhaseRestoreData) {
				t.Fatalf("restore into an unreachable directory: %v (%+v)", err, rep)
			}
			if _, err := os.Stat(hidden); !os.IsNotExist(err) {
				t.Fatalf("the directory the refused restore made is left: %v", err)
			}
		}
		if got := b.auditOutcomes("restore.run"); len(got) == 0 || got[len(got)-1] != drill.StatusFailed {
			t.Fatalf("audit restore.run outcomes %v", got)
		}
	})

	t.Run("killed drill is cleaned at the next start", func(t *testing.T) {
		t.Parallel()
		b := setup(t, yaml)
		killedDrill(t, b, yaml)
	})
}

// restoreDataDir restores the stanza's latest backup for real into a new
// data directory through the restore.run action, checks what it wrote and
// that it started nothing, then starts the cluster the way the result says
// and checks that recovery brought back every order, also those only in
// archived WAL (newest).
func restoreDataDir(t *testing.T, b *bundle, s *testenv.PgBackRest, newest time.Time) {
	t.Helper()
	// Under s.Dir, which the postgres OS user owns (under root).
	dir := filepath.Join(s.Dir, "restored-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if _, _, err := b.restore("shop", drill.RestoreParams{Database: "main", BackupID: "latest-is-not-an-id", To: "pgdata:" + dir}); err == nil ||
		!strings.Contains(err.Error(), "no backup latest-is-not-an-id in shop/pitr: it lists") {
		t.Fatalf("restore of an unknown label: %v", err)
	}
	label := latestLabel(t, b)
	act, rep, err := b.restore("shop", drill.RestoreParams{Database: "main", BackupID: label, To: "pgdata:" + dir})
	if err != nil {
		t.Fatalf("restore: %v (%+v)", err, rep)
	}
	t.Logf("result: %s", act.Result.Summary)
	if !strings.Contains(act.Plan.Summary, "target data directory "+dir+" will be created") {
		t.Fatalf("plan %q", act.Plan.Summary)
	}
	if rep.Status != drill.StatusPassed || rep.Mode != "restore" || rep.BackupID != label || rep.RPOSource != drill.RPOSnapshotTime || rep.RTOSeconds == nil {
		t.Fatalf("report %+v", rep)
	}
	cmds := strings.Join(rep.Commands, "\n")
	if !strings.Contains(cmds, "--pg1-path="+dir) || !strings.Contains(cmds, "--set="+label) || !strings.Contains(cmds, "--archive-mode=preserve") || strings.Contains(cmds, "pg_ctl") {
		t.Fatalf("commands %q", rep.Commands)
	}
	if hasPhase(rep, drill.PhaseRecovery) || !hasPhase(rep, drill.PhaseRestoreData) {
		t.Fatalf("phases %+v", rep.Phases)
	}
	status := map[string]drill.Verification{}
	for _, v := range rep.Verifications {
		status[v.Name] = v
	}
	if v := status["data directory"]; v.Status != "passed" || !strings.Contains(v.Detail, "PostgreSQL 15 data directory of backup "+label) {
		t.Errorf("data directory verification %+v", v)
	}
	for _, n := range []string{"orders", "amcheck"} {
		if v := status[n]; v.Status != "skipped" || !strings.HasPrefix(v.Detail, "not run: the restored cluster is not started") {
			t.Errorf("verification %q = %+v", n, v)
		}
	}
	if v := status["row counts"]; v.Status != "skipped" {
		t.Errorf("row counts %+v", v)
	}
	// Nothing runs on the restored directory.
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("the restored cluster was started: %v", err)
	}
	for _, p := range processesUnder(t, dir) {
		t.Fatalf("running on the restored directory: %s", p)
	}
	if len(rep.NextSteps) == 0 || !strings.HasPrefix(rep.NextSteps[0], "start it: ") || !strings.Contains(act.Result.Summary, "not started; start it: ") {
		t.Fatalf("next steps %q, result %q", rep.NextSteps, act.Result.Summary)
	}
	start := strings.TrimPrefix(rep.NextSteps[0], "start it: ")
	want := filepath.Join(s.Bin, "pg_ctl") + " --pgdata=" + dir
	if os.Geteuid() == 0 {
		want = "runuser -u postgres -- " + want
		fi, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Fatalf("restored files belong to root: %v", err)
		}
	}
	if !strings.HasPrefix(start, want) {
		t.Fatalf("start command %q, want %q…", start, want)
	}

	// Start it as told (on a port and socket of its own: the source runs
	// on this host), and let recovery replay the archived WAL.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	sock := filepath.Join(dir, "sock")
	s.Run(t, "mkdir", sock)
	t.Cleanup(func() {
		full := append(append([]string{}, s.AsUser...), filepath.Join(s.Bin, "pg_ctl"), "-D", dir, "-m", "immediate", "stop")
		_ = exec.Command(full[0], full[1:]...).Run()
	})
	if out, err := exec.Command("sh", "-c", start+fmt.Sprintf(" -w -o \"-p %d -k %s -c listen_addresses='' -c archive_mode=off\"", port, sock)).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "startup.log"))
		t.Fatalf("start the restored cluster: %v\n%s\n%s", err, out, log)
	}
	psql := func(q string) string {
		return strings.TrimSpace(s.Run(t, filepath.Join(s.Bin, "psql"), "-X", "-A", "-t", "-h", sock, "-p", strconv.Itoa(port), "-U", "postgres", "-d", "shop", "-c", q))
	}
	deadline := time.Now().Add(time.Minute)
	for psql("SELECT pg_is_in_recovery()") != "f" {
		if time.Now().After(deadline) {
			t.Fatal("recovery of the restored cluster did not finish")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := psql("SELECT count(*) || ' ' || extract(epoch FROM max(updated_at))::bigint FROM orders"); got != fmt.Sprintf("1500 %d", newest.Unix()) {
		t.Fatalf("restored orders: %q, want 1500 up to %s", got, newest)
	}
}

// latestLabel is the label of the stanza's latest backup.
func latestLabel(t *testing.T, b *bundle) string {
	t.Helper()
	all, err := backup.ListPgBackRest(b.ctx, b.service("shop").Backup("pitr"))
	if err != nil || len(all) == 0 {
		t.Fatalf("list the stanza's backups: %v, %+v", err, all)
	}
	return all[len(all)-1].ID
}

// checkNoScratchDir asserts no scratch directory of label is left where a
// scratch data directory may go.
func checkNoScratchDir(t *testing.T, b *bundle, label string) {
	t.Helper()
	if label == "" {
		t.Fatal("the drill recorded no scratch label")
	}
	if dir := findScratchDir(b, label); dir != "" {
		t.Fatalf("scratch directory %s left", dir)
	}
}

func findScratchDir(b *bundle, label string) string {
	for _, base := range []string{filepath.Join(b.dir, "work"), filepath.Join(os.TempDir(), "steward-scratch")} {
		entries, _ := os.ReadDir(base)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), label+"-") {
				return filepath.Join(base, e.Name())
			}
		}
	}
	return ""
}

// killedDrill runs drill shop/slow in a child process (this test binary),
// kills it with SIGKILL while it verifies — the restored server running in
// its scratch data directory — and checks that CleanLeftovers stops that
// server, removes the directory and marks the run interrupted.
func killedDrill(t *testing.T, b *bundle, yaml string) {
	t.Helper()
	cfgFile := filepath.Join(b.dir, "child.yaml")
	if err := os.WriteFile(cfgFile, []byte("steward:\n  allow_inline_secrets: true\n"+yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDrillChildProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "STEWARD_DRILL_CHILD="+b.dir, "STEWARD_DRILL_CHILD_CONFIG="+cfgFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Log("child: " + sc.Text())
			if strings.Contains(sc.Text(), "shop/slow: verify …") {
				killed <- cmd.Process.Kill()
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case err := <-killed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the child drill did not reach verify")
	}
	_ = cmd.Wait()

	runs, err := b.store.ListDrillRuns(b.ctx, store.DrillRunFilter{States: []string{store.DrillRunning}, Limit: 10})
	if err != nil || len(runs) != 1 || runs[0].ScratchLabel == "" {
		t.Fatalf("running drill runs after the kill: %+v, %v", runs, err)
	}
	label := runs[0].ScratchLabel
	dir := findScratchDir(b, label)
	if dir == "" {
		t.Fatalf("no scratch directory of %s", label)
	}
	pidData, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatalf("the restored server is not running in %s: %v", dir, err)
	}
	pidLine, _, _ := strings.Cut(string(pidData), "\n")
	pid, _ := strconv.Atoi(pidLine)
	if pid <= 1 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("postmaster %q is not alive", pidLine)
	}

	// The next start, after the drill's timeout: the server is stopped, the
	// directory removed and the run marked interrupted.
	deps := b.deps()
	deps.Now = func() time.Time { return time.Now().Add(3 * time.Hour) }
	rep, err := drill.CleanLeftovers(b.ctx, deps)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 1 || rep.Removed[0] != label || len(rep.Interrupted) != 1 || rep.Interrupted[0] != runs[0].ID {
		t.Fatalf("cleanup %+v", rep)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("scratch directory %s still there: %v", dir, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(b), ") Z ") {
			break // a zombie of an exited server
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restored server %d still runs", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	row, _ := b.store.GetDrillRun(b.ctx, runs[0].ID)
	if row.State != store.DrillError || row.Error != drill.Interrupted {
		t.Fatalf("run %+v", row)
	}
	if live, _ := b.store.LiveScratch(b.ctx); len(live) != 0 {
		t.Fatalf("live scratch %+v", live)
	}
}

// TestDrillChildProcess is the drill process killedDrill kills; it runs
// only as that child.
func TestDrillChildProcess(t *testing.T) {
	dir := os.Getenv("STEWARD_DRILL_CHILD")
	if dir == "" {
		return // runs only as the child process of a killed-drill test
	}
	ctx := context.Background()
	cfgFile := os.Getenv("STEWARD_DRILL_CHILD_CONFIG")
	raw, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(cfgFile, raw, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := cfg.Service("shop")
	deps := drill.Deps{Store: st, Engines: dbxall.Registry(), WorkDir: filepath.Join(dir, "work"), Progress: os.Stdout,
		Config: func() *config.Config { return cfg }}
	_, err = drill.Run(ctx, deps, svc, svc.Drill("slow"), drill.RunOptions{Actor: "system:test"})
	t.Fatalf("the drill ended instead of being killed: %v", err)
}
