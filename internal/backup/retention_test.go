package backup_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
)

// daily returns one synthetic manifest per day for days days up to end
// (02:00 UTC), oldest first, with ids named after their dates.
func daily(end time.Time, days int) []backup.Manifest {
	var ms []backup.Manifest
	for i := days - 1; i >= 0; i-- {
		t := end.AddDate(0, 0, -i)
		ms = append(ms, backup.Manifest{ID: t.Format("2006-01-02"), Service: "shop", Backup: "nightly", StartedAt: t, SnapshotTime: t})
	}
	return ms
}

func kept(keep map[string][]string) []string {
	var ids []string
	for id := range keep {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func TestRetain(t *testing.T) {
	t.Parallel()
	// 60 daily backups ending Sunday 2026-03-01; 2026-03-01 is in ISO week 9.
	end := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	now := end.Add(time.Hour)
	sixty := daily(end, 60)
	// Two backups on the last day: only the newer counts for "daily".
	twice := append(slices.Clone(sixty), backup.Manifest{ID: "2026-03-01-late", Service: "shop", Backup: "nightly",
		StartedAt: end.Add(3 * time.Hour), SnapshotTime: end.Add(3 * time.Hour)})
	// Gaps: backups only every 10 days.
	var sparse []backup.Manifest
	for i, m := range sixty {
		if i%10 == 9 {
			sparse = append(sparse, m)
		}
	}
	for _, tc := range []struct {
		name string
		ms   []backup.Manifest
		r    config.Retention
		now  time.Time
		want []string
	}{
		{"keep last 3", sixty, config.Retention{KeepLast: 3}, now,
			[]string{"2026-02-27", "2026-02-28", "2026-03-01"}},
		{"keep last 1 plus 5 daily", sixty, config.Retention{KeepLast: 1, Daily: 5}, now,
			[]string{"2026-02-25", "2026-02-26", "2026-02-27", "2026-02-28", "2026-03-01"}},
		{"weekly keeps each ISO week's newest (Sundays)", sixty, config.Retention{KeepLast: 1, Weekly: 4}, now,
			[]string{"2026-02-08", "2026-02-15", "2026-02-22", "2026-03-01"}},
		{"monthly keeps each month's last day", sixty, config.Retention{KeepLast: 1, Monthly: 3}, now,
			[]string{"2026-01-31", "2026-02-28", "2026-03-01"}},
		{"monthly beyond the history keeps what exists", sixty, config.Retention{KeepLast: 1, Monthly: 12}, now,
			[]string{"2026-01-31", "2026-02-28", "2026-03-01"}},
		{"combined", sixty, config.Retention{KeepLast: 2, Daily: 3, Weekly: 2, Monthly: 2}, now,
			[]string{"2026-02-22", "2026-02-27", "2026-02-28", "2026-03-01"}},
		{"same day twice: daily keeps the newer", twice, config.Retention{KeepLast: 1, Daily: 2}, now,
			[]string{"2026-02-28", "2026-03-01-late"}},
		{"gaps do not use up the daily count", sparse, config.Retention{KeepLast: 1, Daily: 3}, now,
			[]string{"2026-02-09", "2026-02-19", "2026-03-01"}},
		{"no policy keeps everything", sparse, config.Retention{}, now,
			[]string{"2026-01-10", "2026-01-20", "2026-01-30", "2026-02-09", "2026-02-19", "2026-03-01"}},
		{"a lone backup is kept", sixty[:1], config.Retention{Weekly: 1}, now,
			[]string{"2026-01-01"}},
		{"backups dated after now are kept (clock skew)", sixty, config.Retention{KeepLast: 1}, end.AddDate(0, 0, -2),
			[]string{"2026-02-28", "2026-03-01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Order of the input must not matter.
			in := slices.Clone(tc.ms)
			slices.Reverse(in)
			if got := kept(backup.Retain(in, tc.r, tc.now)); !slices.Equal(got, tc.want) {
				t.Fatalf("kept %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestApplyRetentionDeletesFromRepository(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := openRepo(t)
	end := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	for _, m := range daily(end, 60) {
		putManifest(t, repo, m, map[string]string{"dump.sql": "data of " + m.ID})
	}
	svc := &config.Service{Name: "shop"}
	b := &config.Backup{Name: "nightly", Retention: config.Retention{KeepLast: 2, Daily: 3, Weekly: 2, Monthly: 2}}
	deleted, err := backup.ApplyRetention(ctx, repo, svc, b, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 56 || deleted[0] != "2026-01-01" {
		t.Fatalf("deleted %d: %v", len(deleted), deleted)
	}
	left, err := repo.List(ctx, "shop", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range left {
		ids = append(ids, m.ID)
	}
	if want := []string{"2026-02-22", "2026-02-27", "2026-02-28", "2026-03-01"}; !slices.Equal(ids, want) {
		t.Fatalf("left %v, want %v", ids, want)
	}
	// Deleted backups leave no objects behind.
	if inc, err := repo.Incomplete(ctx, "shop", "nightly"); err != nil || len(inc) != 0 {
		t.Fatalf("incomplete after retention: %v, %v", inc, err)
	}
	// Applying again deletes nothing.
	if again, err := backup.ApplyRetention(ctx, repo, svc, b, end); err != nil || len(again) != 0 {
		t.Fatalf("second pass deleted %v, %v", again, err)
	}
}

func TestStale(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := backup.Manifest{StartedAt: now.Add(-30 * time.Hour), SnapshotTime: now.Add(-25 * time.Hour)}
	for _, tc := range []struct {
		rpo  time.Duration
		want bool
	}{
		{24 * time.Hour, true},
		{26 * time.Hour, false},
		{0, false}, // no objective
	} {
		if got := backup.Stale(m, tc.rpo, now); got != tc.want {
			t.Errorf("Stale(age 25h, rpo %v) = %v, want %v", tc.rpo, got, tc.want)
		}
	}
	// Without a snapshot time, the start counts.
	if !backup.Stale(backup.Manifest{StartedAt: now.Add(-2 * time.Hour)}, time.Hour, now) {
		t.Error("a backup started 2h ago is stale for a 1h RPO")
	}
}
