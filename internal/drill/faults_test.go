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
		engine string // sqlite or postgres
		drill  string
		backup string
		rows   int    // sqlite: 1 KiB blobs; postgres: 384-byte rows added to the source
		disk   string // tmpfs size
		reason string // the failure names the step
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
