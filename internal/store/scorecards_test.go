package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func TestScorecards(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		for day := range 40 {
			at := base.Add(time.Duration(day) * 24 * time.Hour)
			status := "pass"
			if day >= 35 {
				status = "fail"
			}
			err := s.InsertScorecards(ctx, []store.ScorecardRow{
				{Service: "shop", EvaluatedAt: at, Tier: 1, Score: float64(day),
					Statuses: map[string]string{"backups": status}, Reasons: map[string]string{"backups": "newest backup 2h old"}},
				{Service: "", EvaluatedAt: at, Score: float64(100 - day)},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		rows, err := s.ListScorecards(ctx, store.ScorecardFilter{Service: "shop", Limit: 3})
		if err != nil || len(rows) != 3 {
			t.Fatalf("list = %d rows, %v", len(rows), err)
		}
		if rows[0].Score != 39 || rows[0].Statuses["backups"] != "fail" || rows[0].Reasons["backups"] != "newest backup 2h old" || rows[0].Tier != 1 {
			t.Fatalf("newest = %+v", rows[0])
		}
		old, err := s.ListScorecards(ctx, store.ScorecardFilter{Service: "shop", Oldest: true, From: base.Add(24 * time.Hour), To: base.Add(3 * 24 * time.Hour)})
		if err != nil || len(old) != 2 || old[0].Score != 1 || old[1].Score != 2 {
			t.Fatalf("range = %+v, %v", old, err)
		}
		overall, err := s.ListScorecards(ctx, store.ScorecardFilter{Overall: true, Limit: 1})
		if err != nil || len(overall) != 1 || overall[0].Service != "" || overall[0].Score != 61 || len(overall[0].Statuses) != 0 {
			t.Fatalf("overall = %+v, %v", overall, err)
		}
		// Nearest to day 9 + 20h is day 10 (4h away), not day 9 (20h).
		near, err := s.ScorecardNear(ctx, "shop", base.Add(9*24*time.Hour+20*time.Hour), 48*time.Hour)
		if err != nil || near.Score != 10 {
			t.Fatalf("near = %+v, %v", near, err)
		}
		near, err = s.ScorecardNear(ctx, "shop", base.Add(9*24*time.Hour+2*time.Hour), 48*time.Hour)
		if err != nil || near.Score != 9 {
			t.Fatalf("near = %+v, %v", near, err)
		}
		near, err = s.ScorecardNear(ctx, "", base.Add(-12*time.Hour), 24*time.Hour)
		if err != nil || near.Score != 100 {
			t.Fatalf("near overall = %+v, %v", near, err)
		}
		if _, err := s.ScorecardNear(ctx, "shop", base.Add(-72*time.Hour), 24*time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("near outside tolerance: err = %v, want ErrNotFound", err)
		}
		if _, err := s.ScorecardNear(ctx, "nosuch", base, 24*time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("near unknown service: err = %v, want ErrNotFound", err)
		}
	})
}
