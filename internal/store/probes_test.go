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

// The newest run of each probe and location wins, whatever the order the
// runs were written in; a tie on started_at goes to the row written last.
func TestLatestProbeResultsPerLocation(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
		// Batches out of time order: the newest run is not the last written.
		batches := [][]store.ProbeResultRow{
			{
				{Service: "shop", Probe: "home", Location: "eu", Status: "up", StartedAt: at(30), DurationMS: 30},
				{Service: "shop", Probe: "home", Location: "us", Status: "down", StartedAt: at(10), DurationMS: 10},
				{Service: "shop", Probe: "api", Location: "eu", Status: "up", StartedAt: at(5), DurationMS: 5},
				{Service: "blog", Probe: "home", Location: "eu", Status: "up", StartedAt: at(99), DurationMS: 99},
			},
			{
				{Service: "shop", Probe: "home", Location: "eu", Status: "down", StartedAt: at(20), DurationMS: 20},
				{Service: "shop", Probe: "home", Location: "us", Status: "up", StartedAt: at(40), DurationMS: 40},
				{Service: "shop", Probe: "home", Status: "missed", StartedAt: at(15), DurationMS: 15}, // location "local"
				{Service: "shop", Probe: "api", Location: "eu", Status: "down", StartedAt: at(50), DurationMS: 50},
			},
			{
				{Service: "shop", Probe: "home", Location: "eu", Status: "error", StartedAt: at(25), DurationMS: 25},
				{Service: "shop", Probe: "home", Location: "us", Status: "down", StartedAt: at(40), DurationMS: 41}, // ties at(40), written later
				{Service: "shop", Probe: "api", Location: "eu", Status: "up", StartedAt: at(45), DurationMS: 45},
				{Service: "shop", Probe: "home", Status: "up", StartedAt: at(12), DurationMS: 12},
			},
		}
		for _, b := range batches {
			if err := s.InsertProbeResults(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		type want struct {
			service, probe, location, status string
			started                          int // seconds after base
			ms                               int64
		}
		check := func(name string, got []store.ProbeResultRow, wants []want) {
			t.Helper()
			if len(got) != len(wants) {
				t.Fatalf("%s: %d rows %+v, want %d", name, len(got), got, len(wants))
			}
			for i, w := range wants {
				g := got[i]
				if g.Service != w.service || g.Probe != w.probe || g.Location != w.location || g.Status != w.status || g.DurationMS != w.ms ||
					!g.StartedAt.Equal(at(w.started)) {
					t.Errorf("%s[%d] = %+v, want %+v", name, i, g, w)
				}
			}
		}
		shop := []want{
			{"shop", "api", "eu", "down", 50, 50},
			{"shop", "home", "eu", "up", 30, 30},
			{"shop", "home", "local", "missed", 15, 15},
			{"shop", "home", "us", "down", 40, 41},
		}
		latest, err := s.LatestProbeResults(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		check("shop", latest, shop)
		all, err := s.LatestProbeResults(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		check("all", all, append([]want{{"blog", "home", "eu", "up", 99, 99}}, shop...))
		if none, err := s.LatestProbeResults(ctx, "nope"); err != nil || len(none) != 0 {
			t.Fatalf("latest of unknown service = %+v, %v", none, err)
		}
	})
}
