package backup_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

func sha256File(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func TestRunSQLiteBackup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := time.Now().UTC()
	m := b.run(t)
	after := time.Now().UTC()

	// The manifest: identity, versions, times, row counts, freshness.
	if m.Service != "shop" || m.Backup != "nightly" || m.Database != "main" || m.Method != "sqlite" || m.Engine != "sqlite" ||
		m.ServerVersion == "" || !strings.Contains(m.ToolVersion, "SQLite") || m.Encrypted || m.Dump.Format != "sqlite" || len(m.Commands) == 0 {
		t.Fatalf("manifest = %+v", m)
	}
	if m.StartedAt.Before(before.Truncate(time.Microsecond)) || m.FinishedAt.After(after) || m.SnapshotTime.Before(m.StartedAt) || m.SnapshotTime.After(m.FinishedAt) {
		t.Errorf("times: start %v snapshot %v finish %v, run between %v and %v", m.StartedAt, m.SnapshotTime, m.FinishedAt, before, after)
	}
	if m.RowCounts["orders"] != 2000 || m.RowCounts["customers"] != 50 || !m.SameSnapshot {
		t.Errorf("row counts = %v (same snapshot %v)", m.RowCounts, m.SameSnapshot)
	}
	if m.Freshness != "2026-01-01T23:59:00Z" {
		t.Errorf("freshness = %q", m.Freshness)
	}
	// Checksums are of the stored bytes.
	if len(m.Objects) != 1 || m.Size != m.Objects[0].Size || m.Size == 0 {
		t.Fatalf("objects = %+v, size %d", m.Objects, m.Size)
	}
	if got := sha256File(t, b.objectPath(m, m.Objects[0].Name)); got != m.Objects[0].SHA256 {
		t.Errorf("object sha256 %s, manifest says %s", got, m.Objects[0].SHA256)
	}
	// The manifest in the repository is the one returned.
	repo := b.repo(t)
	latest, err := repo.Latest(b.ctx, "shop", "nightly")
	if err != nil || latest.ID != m.ID || latest.Objects[0].SHA256 != m.Objects[0].SHA256 || !latest.SnapshotTime.Equal(m.SnapshotTime) {
		t.Fatalf("latest = %+v, %v", latest, err)
	}
	if err := backup.Verify(b.ctx, repo, m); err != nil {
		t.Fatalf("verify: %v", err)
	}

	// Evidence: the run row, the audit event.
	runs, err := b.store.ListBackupRuns(b.ctx, store.BackupRunFilter{Service: "shop", Backup: "nightly"})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	r := runs[0]
	var stored backup.Manifest
	if r.State != store.BackupSucceeded || r.BackupID != m.ID || r.SizeBytes != m.Size || r.Actor != "alice" || r.FinishedAt == nil ||
		json.Unmarshal([]byte(r.Manifest), &stored) != nil || stored.ID != m.ID {
		t.Fatalf("run = %+v", r)
	}
	recs := b.audits(t)
	if len(recs) != 1 || recs[0].Action != "backup.run" || recs[0].Outcome != "ok" || recs[0].Actor != "alice" ||
		recs[0].Target != "backup:shop/nightly" || !strings.Contains(recs[0].Details, m.ID) {
		t.Fatalf("audit:\n%s", describe(recs))
	}
	// Progress: the upload's last report is complete.
	if p, ok := b.lastProgress("upload"); !ok || !p.Done || p.Bytes != p.Total || p.Total == 0 {
		t.Errorf("upload progress = %+v, %v", p, ok)
	}

	// Fetch and restore it with the engine: the same rows come back.
	dir := t.TempDir()
	files, phases, err := backup.Fetch(b.ctx, repo, m, dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || len(phases) != 2 || phases[0].Name != backup.PhaseFetch || phases[1].Name != backup.PhaseVerify || phases[0].Bytes != m.Size {
		t.Fatalf("fetch = %v, %+v", files, phases)
	}
	restored := filepath.Join(t.TempDir(), "restored.db")
	eng, _ := b.engines.Get("sqlite")
	if _, err := eng.Restore(b.ctx, &m.Dump, dir, restored, dbx.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	counts, err := eng.RowCounts(b.ctx, restored)
	if err != nil || counts["orders"] != 2000 || counts["customers"] != 50 {
		t.Fatalf("restored counts = %v, %v", counts, err)
	}
}

func TestEncryptedBackupRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(b.dir, "age.key")
	if err := os.WriteFile(keyFile, []byte("# created: test\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bk := b.backup()
	bk.Encrypt = config.Encrypt{Recipients: []string{id.Recipient().String(), other.Recipient().String()}, Identity: config.Secret("file:" + keyFile)}
	m := b.run(t)
	if !m.Encrypted || len(m.Recipients) != 2 || len(m.Objects) != 1 || !strings.HasSuffix(m.Objects[0].Name, ".age") {
		t.Fatalf("manifest = %+v", m)
	}
	stored, err := os.ReadFile(b.objectPath(m, m.Objects[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(stored), "age-encryption.org/v1") || strings.Contains(string(stored), "SQLite format 3") {
		t.Fatal("stored object is not age ciphertext")
	}
	repo := b.repo(t)
	if err := backup.Verify(b.ctx, repo, m); err != nil {
		t.Fatalf("verify encrypted: %v", err)
	}

	// The identity comes from its secret reference; decrypting restores the
	// SQLite file under its dump name.
	identity, err := backup.Identity(bk)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, phases, err := backup.Fetch(b.ctx, repo, m, dir, identity, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0] != filepath.Join(dir, m.Dump.Files[0]) {
		t.Fatalf("files = %v, dump files %v", files, m.Dump.Files)
	}
	plain, _ := os.ReadFile(files[0])
	if !strings.HasPrefix(string(plain), "SQLite format 3") {
		t.Fatal("decrypted file is not a SQLite database")
	}
	if len(phases) != 3 || phases[2].Name != backup.PhaseDecrypt || phases[2].Bytes != int64(len(plain)) || phases[0].Bytes != m.Size {
		t.Fatalf("phases = %+v", phases)
	}
	if _, err := os.Stat(files[0] + ".age"); !os.IsNotExist(err) {
		t.Errorf("ciphertext left in the fetch directory: %v", err)
	}
	eng, _ := b.engines.Get("sqlite")
	restored := filepath.Join(t.TempDir(), "restored.db")
	if _, err := eng.Restore(b.ctx, &m.Dump, dir, restored, dbx.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if counts, err := eng.RowCounts(b.ctx, restored); err != nil || counts["orders"] != 2000 {
		t.Fatalf("restored counts = %v, %v", counts, err)
	}
	// The second recipient's key works too.
	if _, _, err := backup.Fetch(b.ctx, repo, m, t.TempDir(), other.String(), nil); err != nil {
		t.Fatalf("fetch with the second recipient: %v", err)
	}

	t.Run("wrong identity", func(t *testing.T) {
		wrong, _ := age.GenerateX25519Identity()
		dir := t.TempDir()
		_, _, err := backup.Fetch(b.ctx, repo, m, dir, wrong.String(), nil)
		if !errors.Is(err, backup.ErrDecrypt) || !strings.Contains(err.Error(), id.Recipient().String()) || !strings.Contains(err.Error(), "encrypt.identity") {
			t.Fatalf("err = %v, want ErrDecrypt naming the recipients and the setting", err)
		}
		if strings.Contains(err.Error(), wrong.String()) {
			t.Fatal("the error repeats the secret key")
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("fetch left %d file(s) after failing", len(entries))
		}
	})
	t.Run("no identity", func(t *testing.T) {
		if _, _, err := backup.Fetch(b.ctx, repo, m, t.TempDir(), "", nil); !errors.Is(err, backup.ErrDecrypt) {
			t.Fatalf("err = %v, want ErrDecrypt", err)
		}
	})
	t.Run("not a key", func(t *testing.T) {
		_, _, err := backup.Fetch(b.ctx, repo, m, t.TempDir(), "AGE-SECRET-KEY-1NOTAKEY", nil)
		if !errors.Is(err, backup.ErrDecrypt) || strings.Contains(err.Error(), "NOTAKEY") {
			t.Fatalf("err = %v, want ErrDecrypt without the key", err)
		}
	})
	t.Run("corrupted ciphertext is a checksum error, found before decrypting", func(t *testing.T) {
		path := b.objectPath(m, m.Objects[0].Name)
		orig, _ := os.ReadFile(path)
		t.Cleanup(func() { os.WriteFile(path, orig, 0o600) })
		bad := append([]byte{}, orig...)
		bad[len(bad)-10] ^= 0xff
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := backup.Fetch(b.ctx, repo, m, t.TempDir(), identity, nil); !errors.Is(err, backup.ErrChecksum) {
			t.Fatalf("err = %v, want ErrChecksum", err)
		}
	})
}

func TestCorruptedTruncatedAndMissingObjects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := b.run(t)
	repo := b.repo(t)
	obj := m.Objects[0]
	path := b.objectPath(m, obj.Name)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func() error
		want   string
	}{
		{"corrupted", func() error {
			bad := append([]byte{}, orig...)
			bad[len(bad)/2] ^= 0x01
			return os.WriteFile(path, bad, 0o600)
		}, "corrupted"},
		{"truncated", func() error { return os.WriteFile(path, orig[:len(orig)/3], 0o600) }, "truncated"},
		{"missing", func() error { return os.Remove(path) }, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.change(); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(path, orig, 0o600)
			err := backup.Verify(b.ctx, repo, m)
			if !errors.Is(err, backup.ErrChecksum) || !strings.Contains(err.Error(), obj.Name) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify: %v, want ErrChecksum naming %s (%s)", err, obj.Name, tc.want)
			}
			dir := t.TempDir()
			_, _, err = backup.Fetch(b.ctx, repo, m, dir, "", nil)
			if !errors.Is(err, backup.ErrChecksum) || !strings.Contains(err.Error(), obj.Name) {
				t.Fatalf("fetch: %v, want ErrChecksum naming %s", err, obj.Name)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("fetch left %d file(s) after a checksum error", len(entries))
			}
		})
	}
	if err := backup.Verify(b.ctx, repo, m); err != nil {
		t.Fatalf("restored object: %v", err)
	}
}

func TestMissingBackup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	repo := b.repo(t)
	if _, err := repo.Latest(b.ctx, "shop", "nightly"); !errors.Is(err, backup.ErrNoBackup) || !strings.Contains(err.Error(), "steward backup run shop/nightly") {
		t.Fatalf("latest of nothing = %v", err)
	}
	m := b.run(t)
	if _, err := repo.Get(b.ctx, "shop/nightly/20990101T000000Z-000000"); !errors.Is(err, backup.ErrNoBackup) {
		t.Fatalf("get unknown = %v", err)
	}
	if err := repo.Delete(b.ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, _, err := backup.Fetch(b.ctx, repo, m, t.TempDir(), "", nil); !errors.Is(err, backup.ErrChecksum) {
		t.Fatalf("fetch of a deleted backup = %v, want an error naming the missing object", err)
	}
}

// failed asserts what a failed run leaves: nothing in the repository, a
// failed run row, an audit event with outcome error, an alert.
func (b *bundle) failed(t *testing.T, runErr error, want string) {
	t.Helper()
	if runErr == nil || !strings.Contains(runErr.Error(), want) {
		t.Fatalf("run error = %v, want %q", runErr, want)
	}
	var files []string
	filepath.Walk(b.repoDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("failed run left files in the repository: %v", files)
	}
	if _, err := b.repo(t).Latest(b.ctx, "shop", "nightly"); !errors.Is(err, backup.ErrNoBackup) {
		t.Errorf("latest after a failed run = %v", err)
	}
	runs, err := b.store.ListBackupRuns(b.ctx, store.BackupRunFilter{Service: "shop"})
	if err != nil || len(runs) != 1 || runs[0].State != store.BackupFailed || !strings.Contains(runs[0].Error, want) || runs[0].FinishedAt == nil {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	recs := b.audits(t)
	if len(recs) != 1 || recs[0].Action != "backup.run" || recs[0].Outcome != "error" || !strings.Contains(recs[0].Details, want) {
		t.Fatalf("audit:\n%s", describe(recs))
	}
	alerts, err := b.store.ListOutbox(b.ctx, "ops", "", 10)
	if err != nil || len(alerts) != 1 || alerts[0].Event != backup.EventFailed || alerts[0].Severity != "warning" || alerts[0].Service != "shop" ||
		!strings.Contains(alerts[0].Payload, want) {
		t.Fatalf("alerts = %+v, %v", alerts, err)
	}
}

func TestFailedDumpLeavesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The source is unreachable: its directory does not exist.
	b.svc.Databases[0].URL = config.Secret(filepath.Join(b.dir, "gone", "shop.db"))
	_, err := backup.Run(b.ctx, b.deps, b.svc, b.backup(), "alice")
	b.failed(t, err, "dump database main")
}

func TestCancelledAfterUploadRemovesObjects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	// Steward is stopped once every object is uploaded, before the manifest.
	b.deps.Progress = func(p backup.Progress) {
		if p.Phase == "upload" && p.Done {
			cancel()
		}
	}
	_, err := backup.Run(ctx, b.deps, b.svc, b.backup(), "alice")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	b.failed(t, err, "context canceled")
}

func TestRecoveryResolvesTheAlert(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good := b.svc.Databases[0].URL
	b.svc.Databases[0].URL = config.Secret(filepath.Join(b.dir, "gone", "shop.db"))
	if _, err := backup.Run(b.ctx, b.deps, b.svc, b.backup(), "alice"); err == nil {
		t.Fatal("backup of a missing database succeeded")
	}
	b.svc.Databases[0].URL = good
	b.run(t)
	alerts, err := b.store.ListOutbox(b.ctx, "ops", "", 10)
	if err != nil || len(alerts) != 2 || !strings.HasSuffix(alerts[0].DedupKey, store.OutboxResolveSuffix) && !strings.HasSuffix(alerts[1].DedupKey, store.OutboxResolveSuffix) {
		t.Fatalf("alerts = %+v, %v; want the failure and its resolve", alerts, err)
	}
}

func TestRetentionAfterRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.backup().Retention = config.Retention{KeepLast: 2}
	var ids []string
	for range 4 {
		ids = append(ids, b.run(t).ID)
	}
	ms, err := b.repo(t).List(b.ctx, "shop", "nightly")
	if err != nil || len(ms) != 2 || ms[0].ID != ids[2] || ms[1].ID != ids[3] {
		t.Fatalf("after 4 runs with keep_last 2: %+v, %v", ms, err)
	}
	var deleted int
	for _, r := range b.audits(t) {
		if r.Action == backup.AuditDelete {
			deleted++
			if r.Outcome != "ok" {
				t.Errorf("retention audit: %+v", r)
			}
		}
	}
	if deleted != 2 {
		t.Errorf("retention audit events = %d, want 2:\n%s", deleted, describe(b.audits(t)))
	}
}

func TestRunRefusesMethodsItDoesNotRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk := &config.Backup{Name: "pitr", Database: "main", Method: "pgbackrest", Stanza: "main"}
	_, err := backup.Run(b.ctx, b.deps, b.svc, bk, "alice")
	if !errors.Is(err, backup.ErrNotRun) {
		t.Fatalf("err = %v, want ErrNotRun", err)
	}
}

func TestPgDumpBackupAndRestore(t *testing.T) {
	t.Parallel()
	src := testenv.PostgresURL(t)
	b := setup(t)
	eng, err := b.engines.Get("postgres")
	if err != nil {
		t.Fatal(err)
	}
	exec, ok := eng.(interface {
		Exec(ctx context.Context, url, script string) error
	})
	if !ok {
		t.Fatal("postgres engine has no Exec")
	}
	if err := exec.Exec(b.ctx, src, `CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
INSERT INTO orders SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 5000) g;`); err != nil {
		t.Fatal(err)
	}
	b.svc.Databases = append(b.svc.Databases, config.Database{Name: "pg", Engine: "postgres", URL: config.Secret(src)})
	id, _ := age.GenerateX25519Identity()
	bk := &config.Backup{Name: "pgnightly", Database: "pg", Method: "pg_dump", Format: "custom", Jobs: 2,
		Repository: "file://" + b.repoDir, Freshness: "SELECT max(updated_at) FROM orders",
		Encrypt: config.Encrypt{Recipients: []string{id.Recipient().String()}}, Retention: config.Retention{KeepLast: 3}}
	m, err := backup.Run(b.ctx, b.deps, b.svc, bk, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if m.Engine != "postgres" || m.Dump.Format != "custom" || !strings.HasPrefix(m.ServerVersion, "1") || m.RowCounts["public.orders"]+m.RowCounts["orders"] != 5000 ||
		!strings.HasPrefix(m.Freshness, "2026-01-04T11:20:00") || m.SnapshotTime.IsZero() || !m.Encrypted || len(m.Commands) == 0 {
		t.Fatalf("manifest = %+v", m)
	}
	repo := b.repo(t)
	dir := t.TempDir()
	if _, _, err := backup.Fetch(b.ctx, repo, m, dir, id.String(), nil); err != nil {
		t.Fatal(err)
	}
	target := testenv.PostgresURL(t)
	if _, err := eng.Restore(b.ctx, &m.Dump, dir, target, dbx.RestoreOptions{Jobs: 2}); err != nil {
		t.Fatal(err)
	}
	if v, err := eng.QueryValue(b.ctx, target, "SELECT count(*) FROM orders"); err != nil || v != "5000" {
		t.Fatalf("restored count = %q, %v", v, err)
	}
}
