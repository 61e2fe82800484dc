package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func TestProbeAlerts(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
		key := func(id int64) string { return fmt.Sprintf("alert-%d", id) }
		a, opened, err := s.OpenProbeAlert(ctx, store.ProbeAlertRow{Service: "shop", Probe: "home", Name: "down", Severity: "page",
			Title: "shop/home is down", OpenedAt: at}, key)
		if err != nil || !opened || a.ID == 0 || a.DedupKey != key(a.ID) || a.Details != "{}" {
			t.Fatalf("open = %+v, %v, %v", a, opened, err)
		}
		// Opening the same alert again returns the open one.
		again, opened, err := s.OpenProbeAlert(ctx, store.ProbeAlertRow{Service: "shop", Probe: "home", Name: "down", Severity: "page", OpenedAt: at.Add(time.Minute)}, key)
		if err != nil || opened || again.ID != a.ID || again.Title != "shop/home is down" || !again.OpenedAt.Equal(at) || !again.Open() {
			t.Fatalf("open again = %+v, %v, %v", again, opened, err)
		}
		// Another name, and a service objective (probe "").
		b, opened, err := s.OpenProbeAlert(ctx, store.ProbeAlertRow{Service: "shop", Name: "availability/page", Severity: "page", OpenedAt: at.Add(time.Second)}, nil)
		if err != nil || !opened || b.ID == a.ID || b.DedupKey != "" {
			t.Fatalf("open service alert = %+v, %v, %v", b, opened, err)
		}
		open, err := s.ListProbeAlerts(ctx, "shop", true, 0)
		if err != nil || len(open) != 2 || open[0].ID != b.ID || open[1].ID != a.ID {
			t.Fatalf("open alerts = %+v, %v", open, err)
		}
		r, ok, err := s.ResolveProbeAlert(ctx, "shop", "home", "down", at.Add(time.Hour))
		if err != nil || !ok || r.ID != a.ID || !r.ResolvedAt.Equal(at.Add(time.Hour)) || r.Open() || r.DedupKey != key(a.ID) {
			t.Fatalf("resolve = %+v, %v, %v", r, ok, err)
		}
		if _, ok, err := s.ResolveProbeAlert(ctx, "shop", "home", "down", at.Add(2*time.Hour)); ok || err != nil {
			t.Fatalf("resolve twice: %v, %v", ok, err)
		}
		// After the resolve, the same alert opens anew.
		c, opened, err := s.OpenProbeAlert(ctx, store.ProbeAlertRow{Service: "shop", Probe: "home", Name: "down", Severity: "page", OpenedAt: at.Add(3 * time.Hour)}, key)
		if err != nil || !opened || c.ID == a.ID {
			t.Fatalf("reopen = %+v, %v, %v", c, opened, err)
		}
		all, err := s.ListProbeAlerts(ctx, "", false, 0)
		if err != nil || len(all) != 3 || all[0].ID != c.ID {
			t.Fatalf("all alerts = %+v, %v", all, err)
		}
		if other, err := s.ListProbeAlerts(ctx, "blog", false, 0); err != nil || len(other) != 0 {
			t.Fatalf("alerts of blog = %+v, %v", other, err)
		}
	})
}

func TestSLOStatesAndHistory(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
		if err := s.SaveSLOStates(ctx, []store.SLOState{
			{Service: "shop", Probe: "home", State: `{"state":"up"}`, UpdatedAt: at},
			{Service: "shop", State: `{"alerts":[]}`, UpdatedAt: at},
		}, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveSLOStates(ctx, []store.SLOState{{Service: "shop", Probe: "home", State: `{"state":"down"}`, UpdatedAt: at.Add(time.Minute)}},
			[][2]string{{"shop", ""}}); err != nil {
			t.Fatal(err)
		}
		states, err := s.LoadSLOStates(ctx)
		if err != nil || len(states) != 1 || states[0].State != `{"state":"down"}` || !states[0].UpdatedAt.Equal(at.Add(time.Minute)) {
			t.Fatalf("states = %+v, %v", states, err)
		}

		now := time.Now().UTC().Truncate(time.Second)
		var rows []store.ProbeResultRow
		for i := range 30 {
			rows = append(rows, store.ProbeResultRow{Service: "shop", Probe: "home", Status: "up", StartedAt: now.Add(time.Duration(i-30) * time.Minute), DurationMS: 10})
		}
		rows = append(rows, store.ProbeResultRow{Service: "blog", Probe: "feed", Status: "down", StartedAt: now.Add(-time.Minute), Error: "refused"})
		// Ten days old: folded into minute buckets by the rollup.
		rows = append(rows, store.ProbeResultRow{Service: "shop", Probe: "home", Status: "down", StartedAt: now.Add(-10 * 24 * time.Hour), DurationMS: 5})
		if err := s.InsertProbeResults(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RollupProbeResults(ctx, now, 7*24*time.Hour, 30*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		h, err := s.LoadSLOHistory(ctx, "shop", "", now.Add(-31*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Checks) != 30 || len(h.Rollups) != 1 || h.Rollups[0].Down != 1 || h.MaxID == 0 {
			t.Fatalf("history: %d checks, rollups %+v, max id %d", len(h.Checks), h.Rollups, h.MaxID)
		}
		for i := 1; i < len(h.Checks); i++ {
			if h.Checks[i].ID <= h.Checks[i-1].ID || h.Checks[i].Service != "shop" {
				t.Fatalf("checks not by id or of another service: %+v", h.Checks[i])
			}
		}
		recent, err := s.LoadSLOHistory(ctx, "", "", now.Add(-5*time.Minute))
		if err != nil || len(recent.Checks) != 6 || len(recent.Rollups) != 0 {
			t.Fatalf("last 5 minutes of every service: %d checks, %d rollups, %v", len(recent.Checks), len(recent.Rollups), err)
		}
		one, err := s.LoadSLOHistory(ctx, "blog", "feed", now.Add(-5*time.Minute))
		if err != nil || len(one.Checks) != 1 || one.Checks[0].Probe != "feed" {
			t.Fatalf("one probe: %+v, %v", one.Checks, err)
		}
		after, err := s.SLOChecksAfter(ctx, h.Checks[27].ID, 0)
		if err != nil || len(after) != 3 || after[2].Service != "blog" || after[2].Error != "refused" || after[2].Status != "down" {
			t.Fatalf("after = %+v, %v", after, err)
		}
		limited, err := s.SLOChecksAfter(ctx, 0, 2)
		if err != nil || len(limited) != 2 {
			t.Fatalf("limited = %+v, %v", limited, err)
		}
	})
}
