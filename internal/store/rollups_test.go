package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// expectRollups aggregates rows the way the store must, into buckets of
// size d.
func expectRollups(rows []store.ProbeResultRow, d time.Duration) map[time.Time]store.ProbeRollupRow {
	out := map[time.Time]store.ProbeRollupRow{}
	for _, r := range rows {
		k := r.StartedAt.Truncate(d)
		b := out[k]
		b.BucketStart = k
		switch r.Status {
		case "missed":
			b.Missed++
			out[k] = b
			continue
		case "up":
			b.Up++
		case "down":
			b.Down++
		case "error":
			b.Errors++
		}
		b.Runs++
		b.DurationSumMS += r.DurationMS
		b.DurationMaxMS = max(b.DurationMaxMS, r.DurationMS)
		out[k] = b
	}
	return out
}

func checkRollups(t *testing.T, s *store.Store, service, probe, resolution string, want map[time.Time]store.ProbeRollupRow) {
	t.Helper()
	got, err := s.ListProbeRollups(context.Background(), service, probe, resolution, time.Time{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s/%s: %d %s buckets, want %d", service, probe, len(got), resolution, len(want))
	}
	for i, g := range got {
		if i > 0 && !g.BucketStart.Before(got[i-1].BucketStart) {
			t.Errorf("%s buckets not newest first: %s after %s", resolution, g.BucketStart, got[i-1].BucketStart)
		}
		w, ok := want[g.BucketStart]
		w.Service, w.Probe, w.Location, w.Resolution = service, probe, "local", resolution
		if !ok || g != w {
			t.Errorf("%s bucket %s = %+v, want %+v", resolution, g.BucketStart, g, w)
		}
	}
}

// total is every occurrence of service/probe the store knows of, raw or
// rolled up.
func total(t *testing.T, s *store.Store, service, probe string) int64 {
	t.Helper()
	ctx := context.Background()
	raw, err := s.ListProbeResults(ctx, service, probe, time.Time{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(raw))
	for _, res := range []string{store.RollupMinute, store.RollupHour} {
		rows, err := s.ListProbeRollups(ctx, service, probe, res, time.Time{}, 10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			n += r.Runs + r.Missed
		}
	}
	return n
}

func TestRollupProbeResults(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		now := time.Date(2026, 3, 1, 0, 0, 30, 0, time.UTC)
		const rawKeep, minuteKeep = 7 * 24 * time.Hour, 30 * 24 * time.Hour
		statuses := []string{"up", "down", "error", "missed", "up"}
		gen := func(from time.Time, every time.Duration, n int) []store.ProbeResultRow {
			var out []store.ProbeResultRow
			for i := range n {
				st := statuses[i%len(statuses)]
				d := int64(i%97 + 1)
				if st == "missed" {
					d = 0
				}
				out = append(out, store.ProbeResultRow{Service: "shop", Probe: "home", Status: st, StartedAt: from.Add(time.Duration(i) * every), DurationMS: d})
			}
			return out
		}
		old := gen(now.Add(-35*24*time.Hour).Truncate(time.Hour).Add(7*time.Second), 20*time.Second, 540) // 3 hours: to hours
		mid := gen(now.Add(-10*24*time.Hour).Truncate(time.Minute), 15*time.Second, 40)                   // 10 minutes: to minutes
		recent := gen(now.Add(-time.Hour), time.Minute, 5)                                                // stays raw
		other := []store.ProbeResultRow{{Service: "blog", Probe: "home", Status: "up", StartedAt: now.Add(-8 * 24 * time.Hour), DurationMS: 9}}
		for _, b := range [][]store.ProbeResultRow{old, mid, recent, other} {
			if err := s.InsertProbeResults(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		inserted := int64(len(old) + len(mid) + len(recent))

		c, err := s.RollupProbeResults(ctx, now, rawKeep, minuteKeep)
		if err != nil {
			t.Fatal(err)
		}
		if want := (store.RollupCounts{Results: 540 + 40 + 1, Minutes: 180}); c != want {
			t.Fatalf("first rollup = %+v, want %+v", c, want)
		}
		check := func() {
			t.Helper()
			checkRollups(t, s, "shop", "home", store.RollupHour, expectRollups(old, time.Hour))
			checkRollups(t, s, "shop", "home", store.RollupMinute, expectRollups(mid, time.Minute))
			raw, err := s.ListProbeResults(ctx, "shop", "home", time.Time{}, 0)
			if err != nil || len(raw) != len(recent) {
				t.Fatalf("raw results left = %d, %v; want %d", len(raw), err, len(recent))
			}
			if n := total(t, s, "shop", "home"); n != inserted {
				t.Fatalf("total occurrences = %d, want %d", n, inserted)
			}
		}
		check()
		blog, err := s.ListProbeRollups(ctx, "blog", "home", store.RollupMinute, time.Time{}, 0)
		if err != nil || len(blog) != 1 || blog[0].Runs != 1 || blog[0].Up != 1 || blog[0].DurationMaxMS != 9 || !blog[0].BucketStart.Equal(other[0].StartedAt.Truncate(time.Minute)) {
			t.Fatalf("blog minute buckets = %+v, %v", blog, err)
		}

		// Again: nothing left to fold, the same totals.
		c, err = s.RollupProbeResults(ctx, now, rawKeep, minuteKeep)
		if err != nil || c != (store.RollupCounts{}) {
			t.Fatalf("second rollup = %+v, %v; want nothing", c, err)
		}
		check()

		// Results uploaded late land in the buckets already written.
		late := []store.ProbeResultRow{
			{Service: "shop", Probe: "home", Status: "down", StartedAt: old[10].StartedAt.Add(time.Second), DurationMS: 5000},
			{Service: "shop", Probe: "home", Status: "missed", StartedAt: mid[3].StartedAt.Add(time.Second)},
		}
		if err := s.InsertProbeResults(ctx, late); err != nil {
			t.Fatal(err)
		}
		old, mid, inserted = append(old, late[0]), append(mid, late[1]), inserted+2
		c, err = s.RollupProbeResults(ctx, now, rawKeep, minuteKeep)
		if err != nil || c != (store.RollupCounts{Results: 2, Minutes: 1}) {
			t.Fatalf("rollup of late results = %+v, %v", c, err)
		}
		check()

		// Later on, the minute buckets become hours and the recent results
		// minutes; nothing is lost.
		c, err = s.RollupProbeResults(ctx, now.Add(25*24*time.Hour), rawKeep, minuteKeep)
		if err != nil || c.Results != int64(len(recent)) || c.Minutes != 10+1 {
			t.Fatalf("rollup a month later = %+v, %v", c, err)
		}
		if n := total(t, s, "shop", "home"); n != inserted {
			t.Fatalf("total occurrences a month later = %d, want %d", n, inserted)
		}
		checkRollups(t, s, "shop", "home", store.RollupMinute, expectRollups(recent, time.Minute))
	})
}

func TestRollupProbeResultsBadInput(t *testing.T) {
	t.Parallel()
	s := open(t, "sqlite://"+t.TempDir()+"/steward.db")
	ctx := context.Background()
	if _, err := s.RollupProbeResults(ctx, time.Now(), 0, time.Hour); err == nil {
		t.Error("rollup with no raw retention: no error")
	}
	if _, err := s.RollupProbeResults(ctx, time.Now(), time.Hour, time.Minute); err == nil {
		t.Error("rollup keeping minutes shorter than raw results: no error")
	}
	if _, err := s.ListProbeRollups(ctx, "shop", "home", "second", time.Time{}, 0); err == nil {
		t.Error("list at an unknown resolution: no error")
	}
}
