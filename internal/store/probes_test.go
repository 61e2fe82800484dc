package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func TestProbeResults(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		base := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
		// 450 rows: more than one multi-row statement.
		var batch []store.ProbeResultRow
		for i := range 450 {
			status := "up"
			if i%3 == 1 {
				status = "down"
			}
			batch = append(batch, store.ProbeResultRow{Service: "shop", Probe: fmt.Sprintf("p%d", i%3), Status: status,
				StartedAt: base.Add(time.Duration(i) * time.Second), DurationMS: int64(i), Code: 200, Details: `{"i":` + fmt.Sprint(i) + `}`})
		}
		batch = append(batch, store.ProbeResultRow{Service: "blog", Probe: "home", Status: "missed", StartedAt: base, Error: "pool busy"})
		if err := s.InsertProbeResults(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertProbeResults(ctx, nil); err != nil {
			t.Fatalf("empty batch: %v", err)
		}

		latest, err := s.LatestProbeResults(ctx, "shop")
		if err != nil || len(latest) != 3 {
			t.Fatalf("latest = %+v, %v", latest, err)
		}
		for j, r := range latest {
			i := 447 + j
			if r.Probe != fmt.Sprintf("p%d", j) || r.Location != "local" || r.DurationMS != int64(i) || !r.StartedAt.Equal(base.Add(time.Duration(i)*time.Second)) ||
				r.Details != fmt.Sprintf(`{"i":%d}`, i) {
				t.Errorf("latest[%d] = %+v, want run %d", j, r, i)
			}
		}
		all, err := s.LatestProbeResults(ctx, "")
		if err != nil || len(all) != 4 || all[0].Service != "blog" || all[0].Status != "missed" || all[0].Details != "{}" || all[0].Error != "pool busy" {
			t.Fatalf("latest of all services = %+v, %v", all, err)
		}

		since := base.Add(300 * time.Second)
		list, err := s.ListProbeResults(ctx, "shop", "p1", since, 0)
		if err != nil || len(list) != 50 || list[0].DurationMS != 448 || list[49].DurationMS != 301 || list[0].Status != "down" {
			t.Fatalf("list since = %d rows %v", len(list), err)
		}
		list, err = s.ListProbeResults(ctx, "shop", "p1", time.Time{}, 5)
		if err != nil || len(list) != 5 || list[0].DurationMS != 448 {
			t.Fatalf("list limit = %+v, %v", list, err)
		}
		if list, err := s.ListProbeResults(ctx, "shop", "nope", time.Time{}, 0); err != nil || len(list) != 0 {
			t.Fatalf("list of unknown probe = %+v, %v", list, err)
		}
	})
}

// A batch is written whole or not at all, even when it spans several
// statements: the scheduler retries a failed batch unchanged.
func TestProbeResultsAllOrNothing(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		var batch []store.ProbeResultRow
		for i := range 300 {
			batch = append(batch, store.ProbeResultRow{Service: "shop", Probe: "home", Status: "up", StartedAt: time.Now(), DurationMS: int64(i)})
		}
		// The last row, in the second statement, fails.
		if s.Dialect() == store.SQLite {
			if _, err := s.DB().ExecContext(ctx, "CREATE TRIGGER fail_last BEFORE INSERT ON probe_results WHEN NEW.duration_ms = 299 BEGIN SELECT RAISE(ABORT, 'boom'); END"); err != nil {
				t.Fatal(err)
			}
		} else {
			batch[299].Error = "nul \x00 byte" // PostgreSQL text cannot hold NUL
		}
		if err := s.InsertProbeResults(ctx, batch); err == nil {
			t.Fatal("insert with a failing row succeeded")
		}
		if rows, err := s.ListProbeResults(ctx, "shop", "home", time.Time{}, 1000); err != nil || len(rows) != 0 {
			t.Fatalf("after a failed batch: %d rows stored, %v; want none", len(rows), err)
		}
	})
}
