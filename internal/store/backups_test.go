package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func TestBackupRuns(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
		r, err := s.InsertBackupRun(ctx, store.BackupRun{Service: "shop", Backup: "nightly", BackupID: "id-1", Method: "pg_dump", Actor: "alice", StartedAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		if r.ID == 0 || r.State != store.BackupRunning || !r.StartedAt.Equal(t0.Truncate(time.Microsecond)) {
			t.Fatalf("inserted %+v", r)
		}
		fin := t0.Add(90 * time.Second)
		r.State, r.SizeBytes, r.Manifest, r.FinishedAt = store.BackupSucceeded, 4096, `{"id":"id-1"}`, &fin
		if _, err := s.FinishBackupRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetBackupRun(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.BackupSucceeded || got.SizeBytes != 4096 || got.Manifest != `{"id":"id-1"}` || got.FinishedAt == nil ||
			!got.FinishedAt.Equal(fin.Truncate(time.Microsecond)) || got.Actor != "alice" || got.BackupID != "id-1" {
			t.Fatalf("got %+v", got)
		}
		// A finished run is not finished again.
		r.State, r.Error = store.BackupFailed, "late"
		if _, err := s.FinishBackupRun(ctx, r); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("finishing twice: %v, want ErrConflict", err)
		}
		if _, err := s.GetBackupRun(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing run: %v", err)
		}

		// A second run (failed) and one of another backup; list newest first, filtered.
		r2, _ := s.InsertBackupRun(ctx, store.BackupRun{Service: "shop", Backup: "nightly", BackupID: "id-2", Method: "pg_dump", Actor: "steward", StartedAt: t0.Add(time.Hour)})
		r2.State, r2.Error = store.BackupFailed, "dump database main: connection refused"
		if _, err := s.FinishBackupRun(ctx, r2); err != nil {
			t.Fatal(err)
		}
		if _, err := s.InsertBackupRun(ctx, store.BackupRun{Service: "blog", Backup: "daily", Method: "sqlite", Actor: "steward", StartedAt: t0.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		runs, err := s.ListBackupRuns(ctx, store.BackupRunFilter{Service: "shop", Backup: "nightly"})
		if err != nil || len(runs) != 2 || runs[0].ID != r2.ID || runs[0].Error == "" || runs[1].ID != r.ID {
			t.Fatalf("list shop/nightly = %+v, %v", runs, err)
		}
		failed, err := s.ListBackupRuns(ctx, store.BackupRunFilter{States: []string{store.BackupFailed}})
		if err != nil || len(failed) != 1 || failed[0].ID != r2.ID {
			t.Fatalf("list failed = %+v, %v", failed, err)
		}
		all, err := s.ListBackupRuns(ctx, store.BackupRunFilter{Limit: 2})
		if err != nil || len(all) != 2 || all[0].Service != "blog" {
			t.Fatalf("list limit 2 = %+v, %v", all, err)
		}

		// The blog run is still running; a restart marks it failed.
		changed, err := s.FailInterruptedBackupRuns(ctx, t0.Add(3*time.Hour), "steward stopped during the backup")
		if err != nil || len(changed) != 1 || changed[0].Service != "blog" || changed[0].State != store.BackupFailed {
			t.Fatalf("fail interrupted = %+v, %v", changed, err)
		}
		if running, _ := s.ListBackupRuns(ctx, store.BackupRunFilter{States: []string{store.BackupRunning}}); len(running) != 0 {
			t.Fatalf("still running: %+v", running)
		}
	})
}
