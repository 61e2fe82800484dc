package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
)

func TestCommandListAndFetch(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	for id, data := range map[string]string{"snap-1": "one", "snap-2": "two two"} {
		if err := os.WriteFile(filepath.Join(store, id+".sql"), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := &config.Backup{
		Name: "snapshots", Database: "main", Method: "command",
		// Out of order, a Unix time and a blank line: Steward sorts by time.
		List:  `printf '%s\n' '{"id":"snap-2","time":"2026-01-02T03:00:00Z","size":7}' '' '{"id":"snap-1","time":1767236400,"size":3}'`,
		Fetch: `cp "` + store + `/$STEWARD_BACKUP_ID.sql" "$STEWARD_FETCH_DIR/dump.sql"`,
	}
	ctx := context.Background()
	ms, err := backup.ListCommand(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].ID != "snap-1" || ms[1].ID != "snap-2" {
		t.Fatalf("list = %+v", ms)
	}
	if want := time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC); !ms[0].SnapshotTime.Equal(want) || ms[0].Size != 3 || ms[0].Method != "command" {
		t.Fatalf("snap-1 = %+v, want time %v", ms[0], want)
	}
	dir := t.TempDir()
	files, phase, err := backup.FetchCommand(ctx, b, "snap-2", dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0] != filepath.Join(dir, "dump.sql") || phase.Name != backup.PhaseFetch || phase.Bytes != 7 {
		t.Fatalf("fetch = %v, %+v", files, phase)
	}
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, list, want string
	}{
		{"not json", `echo hello`, "line 1"},
		{"bad time", `echo '{"id":"a","time":"yesterday","size":1}'`, "RFC 3339"},
		{"unknown field", `echo '{"id":"a","time":1,"size":1,"extra":true}'`, "unknown field"},
		{"bad id", `echo '{"id":"../a","time":1,"size":1}'`, "invalid id"},
		{"command fails with its message", `echo "bucket not found" >&2; exit 3`, "bucket not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := backup.ListCommand(ctx, &config.Backup{Name: "x", List: tc.list})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("fetch writes nothing", func(t *testing.T) {
		t.Parallel()
		_, _, err := backup.FetchCommand(ctx, &config.Backup{Name: "x", Fetch: "true"}, "a", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "wrote nothing") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a hung command ends with its context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		// The child sleep keeps the pipe open: the process group is killed.
		_, _, err := backup.FetchCommand(ctx, &config.Backup{Name: "x", Fetch: "sleep 30 & sleep 30"}, "a", t.TempDir())
		if err == nil || time.Since(start) > 10*time.Second {
			t.Fatalf("err = %v after %v", err, time.Since(start))
		}
	})
}
