package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/backup"
)

// openRepo opens a file repository in a fresh directory.
func openRepo(t *testing.T) *backup.Repository {
	t.Helper()
	repo, err := backup.OpenRepository(context.Background(), "file://"+filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	return repo
}

// putManifest stores objects and then the manifest m, as Run does.
func putManifest(t *testing.T, repo *backup.Repository, m backup.Manifest, objects map[string]string) backup.Manifest {
	t.Helper()
	ctx := context.Background()
	for name, data := range objects {
		o, err := repo.Put(ctx, m, name, strings.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		m.Objects = append(m.Objects, o)
		m.Size += o.Size
	}
	if err := repo.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRepositoryLayoutAndLookup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	repo, err := backup.OpenRepository(ctx, dir) // a plain absolute path works too
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := putManifest(t, repo, backup.Manifest{ID: backup.NewID(t0), Service: "shop", Backup: "nightly", StartedAt: t0, SnapshotTime: t0},
		map[string]string{"dump.sql": "hello", "dir/part.dat": "world!"})
	for _, p := range []string{"dump.sql", "dir/part.dat", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(dir, "shop", "nightly", m.ID, filepath.FromSlash(p))); err != nil {
			t.Errorf("layout: %v", err)
		}
	}
	// No sidecar or temporary files.
	entries, _ := os.ReadDir(filepath.Join(dir, "shop", "nightly", m.ID))
	if len(entries) != 3 {
		t.Errorf("backup folder has %d entries, want 3 (dump.sql, dir, manifest.json)", len(entries))
	}
	if m.Size != 11 || len(m.Objects) != 2 {
		t.Fatalf("manifest = %+v", m)
	}
	for _, ref := range []string{m.Ref(), m.ID} {
		got, err := repo.Get(ctx, ref)
		if err != nil || got.ID != m.ID || got.Size != 11 {
			t.Fatalf("Get(%s) = %+v, %v", ref, got, err)
		}
	}
	for _, ref := range []string{"shop/nightly/nope", "nope", "shop/weekly/" + m.ID} {
		if _, err := repo.Get(ctx, ref); !errors.Is(err, backup.ErrNoBackup) {
			t.Errorf("Get(%s) = %v, want ErrNoBackup", ref, err)
		}
	}
	for _, ref := range []string{"../x", "a/b", "shop/../etc/x"} {
		if _, err := repo.Get(ctx, ref); err == nil || errors.Is(err, backup.ErrNoBackup) {
			t.Errorf("Get(%q) = %v, want a reference error", ref, err)
		}
	}
	if _, err := repo.Put(ctx, m, "../escape", strings.NewReader("x")); err == nil {
		t.Error("Put accepted an object name outside the backup folder")
	}
	if err := repo.Delete(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "shop", "nightly", m.ID, "dump.sql")); !os.IsNotExist(err) {
		t.Errorf("object left after Delete: %v", err)
	}
	if _, err := repo.Latest(ctx, "shop", "nightly"); !errors.Is(err, backup.ErrNoBackup) {
		t.Fatalf("Latest after Delete = %v, want ErrNoBackup", err)
	}
}

func TestLatestUsesManifestTimesNotFileTimes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	repo, err := backup.OpenRepository(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ms []backup.Manifest
	for i := range 3 {
		at := base.Add(time.Duration(i) * 24 * time.Hour)
		// Ids sort the other way round from times, to show ids do not decide either.
		ms = append(ms, putManifest(t, repo, backup.Manifest{ID: "b" + string(rune('9'-i)), Service: "shop", Backup: "nightly",
			StartedAt: at, SnapshotTime: at}, map[string]string{"dump.sql": "x"}))
	}
	// Touch the oldest backup's files: they are now the most recently modified.
	future := time.Now().Add(48 * time.Hour)
	filepath.Walk(filepath.Join(dir, "shop", "nightly", ms[0].ID), func(p string, _ os.FileInfo, _ error) error {
		return os.Chtimes(p, future, future)
	})
	latest, err := repo.Latest(ctx, "shop", "nightly")
	if err != nil || latest.ID != ms[2].ID {
		t.Fatalf("Latest = %s, %v; want %s (newest snapshot)", latest.ID, err, ms[2].ID)
	}
	list, err := repo.List(ctx, "shop", "nightly")
	if err != nil || len(list) != 3 || list[0].ID != ms[0].ID || list[2].ID != ms[2].ID {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// Equal snapshot times: the start time breaks the tie.
	tie := putManifest(t, repo, backup.Manifest{ID: "a0", Service: "shop", Backup: "nightly",
		StartedAt: ms[2].StartedAt.Add(time.Minute), SnapshotTime: ms[2].SnapshotTime}, map[string]string{"dump.sql": "x"})
	if latest, _ := repo.Latest(ctx, "shop", "nightly"); latest.ID != tie.ID {
		t.Fatalf("Latest with equal snapshots = %s, want %s (later start)", latest.ID, tie.ID)
	}
}

func TestIncompleteBackupsDoNotCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := openRepo(t)
	m := backup.Manifest{ID: "partial", Service: "shop", Backup: "nightly", StartedAt: time.Now()}
	if _, err := repo.Put(ctx, m, "dump.sql", strings.NewReader("half a dump")); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Latest(ctx, "shop", "nightly"); !errors.Is(err, backup.ErrNoBackup) {
		t.Fatalf("Latest with only an incomplete backup = %v, want ErrNoBackup", err)
	}
	if _, err := repo.Get(ctx, "partial"); !errors.Is(err, backup.ErrNoBackup) {
		t.Fatalf("Get(partial) = %v, want ErrNoBackup", err)
	}
	if inc, err := repo.Incomplete(ctx, "shop", "nightly"); err != nil || len(inc) != 1 || inc[0] != "partial" {
		t.Fatalf("Incomplete = %v, %v", inc, err)
	}
}

func TestOpenRepositoryURLs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, bad := range []string{"", "relative/dir", "ftp://host/x", "file:///", "s3:///prefix"} {
		if r, err := backup.OpenRepository(ctx, bad); err == nil {
			r.Close()
			t.Errorf("OpenRepository(%q) succeeded", bad)
		}
	}
}
