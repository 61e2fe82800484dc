//go:build linux

package drill_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/testenv"
)

// TestFullDiskInScratch runs drills whose work directory — where backups
// are fetched to and ephemeral scratch lives — is a real, small tmpfs, so
// that a step of the drill fails with ENOSPC. Each drill must fail with a
// reason that names the step and the full disk, tear its scratch down
// (recorded as destroyed, nothing left on the disk) and alert.
func TestFullDiskInScratch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		engine string // sqlite, postgres or mysql
		drill  string
		backup string
		rows   int    // sqlite: 1 KiB blobs; postgres, mysql: 384-byte rows added to the source
		disk   string // tmpfs size
		reason string // the failure names the step
		more   []string
	}{
		// About 3 MiB: the fetch alone overflows the disk.
		{name: "sqlite fetch", engine: "sqlite", drill: "weekly", backup: "nightly", rows: 3000, disk: "2m", reason: "fetch backup"},
		// About 1.3 MiB: the encrypted copy fits, the decrypted one beside it does not.
		{name: "sqlite decrypt", engine: "sqlite", drill: "sealed", backup: "sealed", rows: 1100, disk: "2m", reason: "decrypt app/sealed/"},
		// About 1.3 MiB: the fetched copy fits, the restored one beside it does not.
		{name: "sqlite restore", engine: "sqlite", drill: "weekly", backup: "nightly", rows: 1100, disk: "2m", reason: "restore: restore into"},
		// initdb needs about 40 MiB: the ephemeral cluster cannot be made.
		{name: "postgres provision", engine: "postgres", drill: "ephemeral", backup: "nightly", disk: "2m", reason: "provision scratch: ephemeral postgres: initdb"},
		// The cluster (about 50 MiB) and the 5 MiB dump fit; the 90 MiB
		// table does not: the scratch server's WAL write PANICs.
		{name: "postgres restore", engine: "postgres", drill: "ephemeral", backup: "nightly", rows: 200000, disk: "72m", reason: "restore: restore into"},
		// The ephemeral MariaDB server (about 125 MiB, most of it the
		// preallocated redo log) and the 40 MiB dump fit; the 50 MiB table
		// does not. InnoDB says "The table 'events' is full" (errno 28 is
		// only in the server's log): the reason must say the disk is full.
		{name: "mysql restore", engine: "mysql", drill: "ephemeral", backup: "nightly", rows: 100000, disk: "190m", reason: "restore: restore into",
			more: []string{"restore data: out of disk space: ERROR 1114 (HY000) at line", "The table 'events' is full", "the scratch server's log says:", "failed with error 28"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b *bundle
			switch tt.engine {
			case "sqlite":
				b = sqliteSetup(t, sqliteOpts{})
				addBlobs(t, string(b.service("app").Database("main").URL), tt.rows)
			case "postgres":
				var src string
				b, src = pgSetup(t)
				if tt.rows > 0 {
					addRows(t, src, tt.rows)
				}
				// The ephemeral server runs as the postgres user, who must
				// reach the work directory, or Steward puts the cluster
				// elsewhere (under $TMPDIR/steward-scratch).
				for _, d := range []string{filepath.Dir(b.dir), b.dir} {
					if err := os.Chmod(d, 0o711); err != nil {
						t.Fatal(err)
					}
				}
			case "mysql":
				var src string
				b, src = mySetup(t)
				addMySQLRows(t, src, tt.rows)
			}
			service := b.cfg.Services[0].Name
			m := b.takeBackup(service, tt.backup)
			t.Logf("backup %s: %d bytes, disk %s", m.ID, m.Size, tt.disk)
			work := filepath.Join(b.dir, "work")
			mountTmpfs(t, work, "size="+tt.disk+",mode=0711")

			rep, err := b.run(service, tt.drill, drill.RunOptions{})
			b.checkFailed(rep, err, drill.StatusFailed, tt.reason)
			t.Logf("reason: %s", rep.Error)
			if !strings.Contains(strings.ToLower(rep.Error), "no space left on device") {
				t.Errorf("reason %q does not say the disk is full", rep.Error)
			}
			for _, m := range tt.more {
				if !strings.Contains(rep.Error, m) {
					t.Errorf("reason %q does not contain %q", rep.Error, m)
				}
			}
			if !strings.Contains(rep.Error+rep.Scratch, work) {
				t.Errorf("the drill did not use the small disk %s: scratch %q, reason %q", work, rep.Scratch, rep.Error)
			}
			if !hasPhase(rep, drill.PhaseTeardown) || rep.ScratchLabel == "" {
				t.Errorf("no teardown of scratch %q: %+v", rep.ScratchLabel, rep.Phases)
			}
			for _, p := range rep.Phases {
				if p.Name == drill.PhaseTeardown && p.Error != "" {
					t.Errorf("teardown failed: %s", p.Error)
				}
			}
			// The scratch server is stopped, not merely unlinked.
			for _, p := range processesUnder(t, work) {
				t.Errorf("still running on the scratch disk: %s", p)
			}
			// Nothing is left on the small disk — no fetched file, no
			// scratch file or cluster, no temporary restore file — and all
			// its space is free again.
			entries, err := os.ReadDir(work)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				t.Errorf("left in the work directory: %s", e.Name())
			}
			var st syscall.Statfs_t
			if err := syscall.Statfs(work, &st); err != nil {
				t.Fatal(err)
			}
			if used := (st.Blocks - st.Bfree) * uint64(st.Bsize); used != 0 {
				t.Errorf("%d bytes still used on the scratch disk", used)
			}
		})
	}
}

// addBlobs adds n rows of 1 KiB of random bytes to the SQLite database at
// path, so that its backup has a known, incompressible size.
func addBlobs(t *testing.T, path string, n int) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE attachments (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?) INSERT INTO attachments SELECT i, randomblob(1024) FROM n`, n); err != nil {
		t.Fatalf("add blobs: %v", err)
	}
}

// addRows adds n rows of 384 bytes to the PostgreSQL database at url: big
// in a table (no TOAST compression at that width), small in a compressed
// dump.
func addRows(t *testing.T, url string, n int) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf(`CREATE TABLE events (id bigint PRIMARY KEY, payload text NOT NULL);
INSERT INTO events SELECT g, repeat(md5(g::text), 12) FROM generate_series(1, %d) g`, n)); err != nil {
		t.Fatalf("add rows: %v", err)
	}
}

// addMySQLRows adds n rows of 384 bytes to the MariaDB database at dsn, as
// addRows does for PostgreSQL.
func addMySQLRows(t *testing.T, dsn string, n int) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE TABLE events (id bigint PRIMARY KEY, payload text NOT NULL) ENGINE=InnoDB",
		fmt.Sprintf("INSERT INTO events SELECT seq, REPEAT(MD5(seq), 12) FROM seq_1_to_%d", n),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("add rows: %v", err)
		}
	}
}

// processesUnder lists the processes whose command line names a path
// under dir (a scratch server started with its data directory there).
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil || len(raw) == 0 {
			continue // exited, or a kernel thread
		}
		cmd := strings.ReplaceAll(strings.TrimRight(string(raw), "\x00"), "\x00", " ")
		if strings.Contains(cmd, dir+"/") {
			if stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat")); strings.Contains(string(stat), ") Z ") {
				continue // exited, not yet reaped by its parent
			}
			found = append(found, filepath.Base(filepath.Dir(p))+": "+cmd)
		}
	}
	return found
}

// mountTmpfs mounts a real tmpfs with opts (e.g. size=2m) on dir for the
// rest of the test. Mounting needs root (or CAP_SYS_ADMIN): without it the
// test skips locally and fails under CI.
func mountTmpfs(t *testing.T, dir, opts string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		testenv.Skip(t, "mount a tmpfs (%s) on %s to fill the disk: %v (needs root or CAP_SYS_ADMIN)", opts, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// TestPgBackRestRealRestoreFullDisk restores a pgBackRest backup for real
// into a data directory on a disk too small for it: the restore fails with
// pgbackrest's "No space left on device", what it wrote is removed (the
// directory is empty again, ready for another attempt), and the failure is
// recorded and alerted like a failed drill.
func TestPgBackRestRealRestoreFullDisk(t *testing.T) {
	t.Parallel()
	s := testenv.StartPgBackRest(t)
	s.PSQL(t, s.Port, "postgres", "CREATE DATABASE shop")
	s.PSQL(t, s.Port, "shop", "CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, updated_at timestamptz NOT NULL); "+
		"INSERT INTO orders SELECT g, 'paid', now() FROM generate_series(1, 1000) g")
	s.Run(t, "pgbackrest", "--config="+s.Conf, "--stanza=demo", "--type=full", "backup")
	// pgBackRest retries a failed write after 15s by default: fail at once.
	s.Run(t, "sh", "-c", "echo job-retry=0 >> "+s.Conf)
	b := setup(t, strings.NewReplacer("SRC", s.URL("shop"), "CONF", s.Conf).Replace(pgbrYAML))

	// A 4 MiB disk the cluster's owner can write: the backup (about 40
	// MiB restored) does not fit.
	small := filepath.Join(s.Dir, "small")
	s.Run(t, "mkdir", small)
	opts := "size=4m,mode=0700"
	if len(s.AsUser) > 0 {
		fi, err := os.Stat(s.Dir)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		opts += fmt.Sprintf(",uid=%d,gid=%d", st.Uid, st.Gid)
	}
	mountTmpfs(t, small, opts)
	dir := filepath.Join(small, "pgdata")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}

	_, rep, err := b.restore("shop", drill.RestoreParams{Database: "main", BackupID: latestLabel(t, b), To: drill.PgDataPrefix + dir})
	if err == nil || rep.Status != drill.StatusFailed {
		t.Fatalf("restore onto a full disk: %v (%+v)", err, rep)
	}
	t.Logf("reason: %s", rep.Error)
	for _, want := range []string{"restore backup " + rep.BackupID + ": pgbackrest", "unable to write", "the disk of " + dir + " is full: no space left on device", "the partial restore was removed, " + dir + " is empty again"} {
		if !strings.Contains(rep.Error, want) {
			t.Errorf("reason %q does not contain %q", rep.Error, want)
		}
	}
	for _, p := range rep.Phases {
		if p.Name == drill.PhaseRestoreData && p.Error == "" {
			t.Errorf("phase %+v has no error", p)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("left in %s: %v, %v", dir, entries, err)
	}
	critical := false
	for _, a := range b.alerts() {
		critical = critical || a.Event == drill.EventFailed && a.Severity == notify.SeverityCritical
	}
	if !critical {
		t.Errorf("no critical alert: %+v", b.alerts())
	}
	if got := b.auditOutcomes("restore.run"); len(got) != 1 || got[0] != drill.StatusFailed {
		t.Errorf("audit restore.run outcomes %v", got)
	}
}
