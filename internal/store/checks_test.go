package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func TestCheckRuns(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		base := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
		rows := int64(42)
		for i, st := range []string{"pass", "fail", "error", "pass"} {
			r, err := s.InsertCheckRun(ctx, store.CheckRunRow{Service: "shop", Check: "c", Database: "main", Status: st, Violations: int64(i),
				RowCount: &rows, DurationMS: 5, Query: "SELECT 1", Actor: "alice", StartedAt: base.Add(time.Duration(i) * time.Minute)})
			if err != nil || r.ID == 0 || r.Sample != "[]" {
				t.Fatalf("insert = %+v, %v", r, err)
			}
		}
		if _, err := s.InsertCheckRun(ctx, store.CheckRunRow{Service: "shop", Check: "other", Database: "main", Status: "pass", Actor: "a"}); err != nil {
			t.Fatal(err)
		}
		all, err := s.ListCheckRuns(ctx, store.CheckRunFilter{Service: "shop", Check: "c"})
		if err != nil || len(all) != 4 || all[0].Status != "pass" || all[0].Violations != 3 || *all[0].RowCount != 42 || !all[0].StartedAt.Equal(base.Add(3*time.Minute)) {
			t.Fatalf("list = %+v, %v", all, err)
		}
		noErr, err := s.ListCheckRuns(ctx, store.CheckRunFilter{Service: "shop", Check: "c", NotStatuses: []string{"error"}, Limit: 2})
		if err != nil || len(noErr) != 2 || noErr[1].Status != "fail" {
			t.Fatalf("list without errors = %+v, %v", noErr, err)
		}
		fails, err := s.ListCheckRuns(ctx, store.CheckRunFilter{Statuses: []string{"fail"}})
		if err != nil || len(fails) != 1 || fails[0].Actor != "alice" || fails[0].FixAction != nil {
			t.Fatalf("list fails = %+v, %v", fails, err)
		}
	})
}

func TestTrackViolations(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
		steps := []struct {
			keys                      []string
			complete                  bool
			new, persisting, resolved int
			firstSeenOfA              time.Time
		}{
			{keys: []string{"a", "b", "b"}, complete: true, new: 2, firstSeenOfA: t0},
			{keys: []string{"a", "c"}, complete: true, new: 1, persisting: 1, resolved: 1, firstSeenOfA: t0},
			// A bounded subset: c is not in it but stays open.
			{keys: []string{"a"}, complete: false, persisting: 1, firstSeenOfA: t0},
			{keys: nil, complete: true, resolved: 2},
			// a violates again: new again, with a new first_seen.
			{keys: []string{"a"}, complete: true, new: 1, firstSeenOfA: t0.Add(4 * time.Minute)},
		}
		for i, st := range steps {
			now := t0.Add(time.Duration(i) * time.Minute)
			d, err := s.TrackViolations(ctx, "shop", "c", st.keys, st.complete, now)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if d.New != st.new || d.Persisting != st.persisting || d.Resolved != st.resolved {
				t.Fatalf("step %d: delta = %+v, want new %d persisting %d resolved %d", i, d, st.new, st.persisting, st.resolved)
			}
			if !st.firstSeenOfA.IsZero() && !d.FirstSeen["a"].Equal(st.firstSeenOfA) {
				t.Fatalf("step %d: first seen of a = %v, want %v", i, d.FirstSeen["a"], st.firstSeenOfA)
			}
		}
		open, err := s.ListViolations(ctx, "shop", "c", true, 0)
		if err != nil || len(open) != 1 || open[0].Key != "a" {
			t.Fatalf("open = %+v, %v", open, err)
		}
		all, err := s.ListViolations(ctx, "shop", "c", false, 0)
		if err != nil || len(all) != 3 || all[1].ResolvedAt == nil {
			t.Fatalf("all = %+v, %v", all, err)
		}
		// Many keys go in batches.
		var many []string
		for i := range 450 {
			many = append(many, string(rune('A'+i%26))+time.Duration(i).String())
		}
		d, err := s.TrackViolations(ctx, "shop", "big", many, true, t0)
		if err != nil || d.New != 450 {
			t.Fatalf("many = %+v, %v", d.New, err)
		}
		d, err = s.TrackViolations(ctx, "shop", "big", many[:300], true, t0.Add(time.Minute))
		if err != nil || d.Persisting != 300 || d.Resolved != 150 {
			t.Fatalf("many again = %d/%d, %v", d.Persisting, d.Resolved, err)
		}
	})
}
