package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func TestDrillRunLifecycle(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		start := time.Now().Add(-time.Minute)
		r, err := s.StartDrillRun(ctx, store.DrillRunRow{Service: "shop", Drill: "weekly", Actor: "alice", StartedAt: start}, start.Add(-time.Hour))
		if err != nil || r.ID == 0 || r.State != store.DrillRunning {
			t.Fatalf("start = %+v, %v", r, err)
		}
		// A second start while the first is running and not stale is refused.
		if _, err := s.StartDrillRun(ctx, store.DrillRunRow{Service: "shop", Drill: "weekly", Actor: "bob"}, start.Add(-time.Hour)); !errors.Is(err, store.ErrDrillRunning) {
			t.Fatalf("second start: %v, want ErrDrillRunning", err)
		}
		// Another drill of the same service is independent.
		if _, err := s.StartDrillRun(ctx, store.DrillRunRow{Service: "shop", Drill: "daily", Actor: "bob"}, start.Add(-time.Hour)); err != nil {
			t.Fatalf("other drill: %v", err)
		}
		rto, rpo := 12.5, 3600.0
		fin := time.Now().UTC().Truncate(time.Microsecond)
		r.State, r.FinishedAt, r.RTOSeconds, r.RPOSeconds, r.RPOSource, r.BackupID, r.Report = store.DrillPassed, &fin, &rto, &rpo, "restored-data", "b1", `{"status":"passed"}`
		if err := s.UpdateDrillRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetDrillRun(ctx, r.ID)
		if err != nil || got.State != store.DrillPassed || *got.RTOSeconds != rto || *got.RPOSeconds != rpo || got.BackupID != "b1" || !got.FinishedAt.Equal(fin) || got.Report != r.Report {
			t.Fatalf("get = %+v, %v", got, err)
		}
		list, err := s.ListDrillRuns(ctx, store.DrillRunFilter{Service: "shop", Drill: "weekly", States: []string{store.DrillPassed}})
		if err != nil || len(list) != 1 || list[0].ID != r.ID {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if _, err := s.GetDrillRun(ctx, 99999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get missing: %v", err)
		}
	})
}

func TestDrillRunStaleIsNotBlocking(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		old := time.Now().Add(-3 * time.Hour)
		r, err := s.StartDrillRun(ctx, store.DrillRunRow{Service: "shop", Drill: "weekly", Actor: "a", StartedAt: old}, old.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// Older than the 2h timeout: presumed interrupted, a new run starts.
		if _, err := s.StartDrillRun(ctx, store.DrillRunRow{Service: "shop", Drill: "weekly", Actor: "a"}, time.Now().Add(-2*time.Hour)); err != nil {
			t.Fatalf("start after stale: %v", err)
		}
		ok, err := s.InterruptDrillRun(ctx, r.ID, store.DrillError, "interrupted", time.Now())
		if err != nil || !ok {
			t.Fatalf("interrupt = %v, %v", ok, err)
		}
		if ok, _ := s.InterruptDrillRun(ctx, r.ID, store.DrillError, "again", time.Now()); ok {
			t.Fatal("interrupting a finished run changed it")
		}
	})
}

func TestDrillRunConcurrentStartsOnce(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		var wg sync.WaitGroup
		var mu sync.Mutex
		started := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.StartDrillRun(ctx, store.DrillRunRow{Service: "shop", Drill: "race", Actor: "a"}, time.Now().Add(-time.Hour))
				if err == nil {
					mu.Lock()
					started++
					mu.Unlock()
				} else if !errors.Is(err, store.ErrDrillRunning) {
					t.Errorf("start: %v", err)
				}
			}()
		}
		wg.Wait()
		if started != 1 {
			t.Fatalf("%d concurrent starts succeeded, want 1", started)
		}
	})
}

func TestScratchResources(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		for _, l := range []string{"steward-drill-shop-weekly-aa", "steward-drill-shop-weekly-bb"} {
			if err := s.InsertScratch(ctx, store.ScratchRow{Label: l, Engine: "postgres", Kind: "ephemeral", Location: `{"dir":"/tmp"}`}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.InsertScratch(ctx, store.ScratchRow{Label: "steward-drill-shop-weekly-aa", Engine: "postgres", Kind: "ephemeral"}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate label: %v", err)
		}
		if err := s.UpdateScratchLocation(ctx, "steward-drill-shop-weekly-bb", `{"dir":"/var"}`); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkScratchDestroyed(ctx, "steward-drill-shop-weekly-aa", time.Now()); err != nil {
			t.Fatal(err)
		}
		live, err := s.LiveScratch(ctx)
		if err != nil || len(live) != 1 || live[0].Label != "steward-drill-shop-weekly-bb" || live[0].Location != `{"dir":"/var"}` {
			t.Fatalf("live = %+v, %v", live, err)
		}
		got, err := s.GetScratch(ctx, "steward-drill-shop-weekly-aa")
		if err != nil || got.DestroyedAt == nil {
			t.Fatalf("get = %+v, %v", got, err)
		}
	})
}
