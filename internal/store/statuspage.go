package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ProbeDay is one UTC day of one probe's history, every location
// together: runs (up, down, error; misses are not runs) and how many were
// up.
type ProbeDay struct {
	Service string
	Probe   string
	Day     time.Time // midnight UTC
	Runs    int64
	Up      int64
}

// ProbeDailyAvailability returns the runs and up runs per day of every
// probe of services since the day of since, from the rollups (minute and
// hour buckets) and the raw results together, ordered by service, probe
// and day. The sums are done by the database, so the rows returned are at
// most one per probe and day whatever the history's size.
func (s *Store) ProbeDailyAvailability(ctx context.Context, services []string, since time.Time) ([]ProbeDay, error) {
	if len(services) == 0 {
		return nil, nil
	}
	fail := func(err error) ([]ProbeDay, error) { return nil, fmt.Errorf("daily probe availability: %w", err) }
	in := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(services)), ", ") + ")"
	cut := FormatTime(since.UTC().Truncate(24 * time.Hour))
	q := "SELECT service, probe, day, CAST(SUM(runs) AS BIGINT), CAST(SUM(up) AS BIGINT) FROM (" +
		"SELECT service, probe, substr(bucket_start, 1, 10) AS day, runs, up FROM probe_rollups WHERE service IN " + in + " AND bucket_start >= ?" +
		" UNION ALL " +
		"SELECT service, probe, substr(started_at, 1, 10) AS day, CASE WHEN status <> 'missed' THEN 1 ELSE 0 END AS runs, " +
		"CASE WHEN status = 'up' THEN 1 ELSE 0 END AS up FROM probe_results WHERE service IN " + in + " AND started_at >= ?" +
		") history GROUP BY service, probe, day ORDER BY service, probe, day"
	args := make([]any, 0, 2*len(services)+2)
	for range 2 {
		for _, svc := range services {
			args = append(args, svc)
		}
		args = append(args, cut)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []ProbeDay
	for rows.Next() {
		var d ProbeDay
		var day string
		if err := rows.Scan(&d.Service, &d.Probe, &day, &d.Runs, &d.Up); err != nil {
			return fail(err)
		}
		if d.Day, err = time.Parse(time.DateOnly, day); err != nil {
			return fail(fmt.Errorf("day %q of %s/%s: %w", day, d.Service, d.Probe, err))
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}
