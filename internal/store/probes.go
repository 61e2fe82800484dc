package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ProbeResultRow is one scheduled occurrence of a probe as stored: a run
// (up, down, error) or a miss. The probe package gives it meaning.
type ProbeResultRow struct {
	ID         int64
	Service    string
	Probe      string
	Location   string // where it ran from; "local" when empty
	Status     string
	StartedAt  time.Time // for a miss, when the run was due
	DurationMS int64
	Code       int // HTTP status, when there is one
	Error      string
	Details    string // JSON object
}

const probeResultCols = "id, service, probe, location, status, started_at, duration_ms, code, error, details"

// probeResultChunk bounds the rows of one INSERT statement (10 parameters
// each, far below the parameter limits of both dialects).
const probeResultChunk = 200

func scanProbeResult(sc scanner) (ProbeResultRow, error) {
	var r ProbeResultRow
	var started string
	if err := sc.Scan(&r.ID, &r.Service, &r.Probe, &r.Location, &r.Status, &started, &r.DurationMS, &r.Code, &r.Error, &r.Details); err != nil {
		return ProbeResultRow{}, err
	}
	r.StartedAt, _ = ParseTime(started)
	return r, nil
}

// InsertProbeResults records a batch of probe results in one transaction,
// with multi-row inserts: the whole batch is written, or nothing.
func (s *Store) InsertProbeResults(ctx context.Context, rows []ProbeResultRow) error {
	if len(rows) == 0 {
		return nil
	}
	fail := func(err error) error { return fmt.Errorf("insert %d probe results: %w", len(rows), err) }
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck
	for chunk := range slices.Chunk(rows, probeResultChunk) {
		args := make([]any, 0, 9*len(chunk))
		for _, r := range chunk {
			if r.Location == "" {
				r.Location = "local"
			}
			if r.Details == "" {
				r.Details = "{}"
			}
			args = append(args, r.Service, r.Probe, r.Location, r.Status, FormatTime(r.StartedAt.UTC().Truncate(time.Microsecond)),
				r.DurationMS, r.Code, r.Error, r.Details)
		}
		q := "INSERT INTO probe_results (service, probe, location, status, started_at, duration_ms, code, error, details) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?),", len(chunk)), ",")
		if _, err := tx.ExecContext(ctx, s.rebind(q), args...); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return nil
}

// LatestProbeResults returns the newest result of each probe (and
// location) of service, or of every service when service is "", ordered by
// service, probe and location.
func (s *Store) LatestProbeResults(ctx context.Context, service string) ([]ProbeResultRow, error) {
	inner := "SELECT " + probeResultCols + ", ROW_NUMBER() OVER (PARTITION BY service, probe, location ORDER BY started_at DESC, id DESC) AS rn FROM probe_results"
	var args []any
	if service != "" {
		inner += " WHERE service = ?"
		args = append(args, service)
	}
	q := "SELECT " + probeResultCols + " FROM (" + inner + ") latest WHERE rn = 1 ORDER BY service, probe, location"
	out, err := s.listProbeResults(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("latest probe results: %w", err)
	}
	return out, nil
}

// ListProbeResults returns the results of one probe started at or after
// since, newest first; limit defaults to 100 and is at most 10000.
func (s *Store) ListProbeResults(ctx context.Context, service, probe string, since time.Time, limit int) ([]ProbeResultRow, error) {
	if limit <= 0 {
		limit = 100
	}
	q := "SELECT " + probeResultCols + " FROM probe_results WHERE service = ? AND probe = ? AND started_at >= ?" +
		fmt.Sprintf(" ORDER BY started_at DESC, id DESC LIMIT %d", min(limit, 10000))
	out, err := s.listProbeResults(ctx, q, service, probe, FormatTime(since.UTC().Truncate(time.Microsecond)))
	if err != nil {
		return nil, fmt.Errorf("list probe results of %s/%s: %w", service, probe, err)
	}
	return out, nil
}

func (s *Store) listProbeResults(ctx context.Context, q string, args ...any) ([]ProbeResultRow, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ProbeResultRow
	for rows.Next() {
		r, err := scanProbeResult(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Resolutions of probe rollups.
const (
	RollupMinute = "minute"
	RollupHour   = "hour"
)

// ProbeRollupRow aggregates the results of one probe, from one location,
// over one minute or one hour. Runs counts the runs (up, down, error);
// Missed counts the misses; the durations are over the runs.
type ProbeRollupRow struct {
	Service       string
	Probe         string
	Location      string
	Resolution    string // RollupMinute or RollupHour
	BucketStart   time.Time
	Runs          int64
	Up            int64
	Down          int64
	Errors        int64
	Missed        int64
	DurationSumMS int64
	DurationMaxMS int64
}

// RollupCounts is what one RollupProbeResults folded.
type RollupCounts struct {
	Results int64 `json:"results"` // raw results folded into minute buckets
	Minutes int64 `json:"minutes"` // minute buckets folded into hour buckets
	// Artifacts counts the artifacts deleted with the raw results.
	Artifacts int64 `json:"artifacts"`
}

const probeRollupCols = "service, probe, location, resolution, bucket_start, runs, up, down, errors, missed, duration_sum_ms, duration_max_ms"

// RollupProbeResults downsamples the probe history as of before: raw results
// started more than rawKeep earlier are folded into minute buckets, then
// minute buckets older than minuteKeep into hour buckets (both cut-offs
// rounded down to a whole minute and hour). Each step runs in one
// transaction that adds the aggregates to the buckets and deletes what it
// aggregated, so running it again, or after a crash, never counts a result
// twice; a result that arrives late for a bucket already written is added
// to it on the next run.
func (s *Store) RollupProbeResults(ctx context.Context, before time.Time, rawKeep, minuteKeep time.Duration) (RollupCounts, error) {
	var c RollupCounts
	if rawKeep <= 0 || minuteKeep < rawKeep {
		return c, fmt.Errorf("roll up probe results: keep raw results a positive time (got %s) and minute buckets at least as long (got %s)", rawKeep, minuteKeep)
	}
	rawCut := FormatTime(before.Add(-rawKeep).UTC().Truncate(time.Minute))
	minuteCut := FormatTime(before.Add(-minuteKeep).UTC().Truncate(time.Hour))
	greatest := "GREATEST"
	if s.dialect != Postgres {
		greatest = "MAX"
	}
	upsert := " ON CONFLICT (service, probe, location, resolution, bucket_start) DO UPDATE SET " +
		"runs = probe_rollups.runs + excluded.runs, up = probe_rollups.up + excluded.up, down = probe_rollups.down + excluded.down, " +
		"errors = probe_rollups.errors + excluded.errors, missed = probe_rollups.missed + excluded.missed, " +
		"duration_sum_ms = probe_rollups.duration_sum_ms + excluded.duration_sum_ms, " +
		"duration_max_ms = " + greatest + "(probe_rollups.duration_max_ms, excluded.duration_max_ms)"

	minuteBucket := "substr(started_at, 1, 16) || ':00.000000Z'"
	rawStep := rollupQuery{
		what:      "raw probe results",
		where:     "started_at < ?",
		source:    "probe_results",
		returning: "service, probe, location, status, started_at, duration_ms",
		aggregate: "SELECT service, probe, location, '" + RollupMinute + "', " + minuteBucket + ", " +
			"SUM(CASE WHEN status <> 'missed' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'up' THEN 1 ELSE 0 END), " +
			"SUM(CASE WHEN status = 'down' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), " +
			"SUM(CASE WHEN status = 'missed' THEN 1 ELSE 0 END), SUM(CASE WHEN status <> 'missed' THEN duration_ms ELSE 0 END), " +
			"MAX(CASE WHEN status <> 'missed' THEN duration_ms ELSE 0 END) FROM %s WHERE %s GROUP BY service, probe, location, " + minuteBucket,
	}
	hourBucket := "substr(bucket_start, 1, 13) || ':00:00.000000Z'"
	minuteStep := rollupQuery{
		what:      "minute probe rollups",
		where:     "resolution = '" + RollupMinute + "' AND bucket_start < ?",
		source:    "probe_rollups",
		returning: probeRollupCols,
		aggregate: "SELECT service, probe, location, '" + RollupHour + "', " + hourBucket + ", " +
			"SUM(runs), SUM(up), SUM(down), SUM(errors), SUM(missed), SUM(duration_sum_ms), MAX(duration_max_ms) " +
			"FROM %s WHERE %s GROUP BY service, probe, location, " + hourBucket,
	}
	var err error
	if c.Results, err = s.rollupStep(ctx, rawStep, upsert, rawCut); err != nil {
		return c, err
	}
	if c.Artifacts, err = s.deleteProbeArtifactsBefore(ctx, rawCut); err != nil {
		return c, err
	}
	if c.Minutes, err = s.rollupStep(ctx, minuteStep, upsert, minuteCut); err != nil {
		return c, err
	}
	return c, nil
}

// rollupQuery folds the rows of source matching where (with one parameter)
// into coarser buckets of probe_rollups. aggregate is a SELECT with two %s,
// for its source and its filter.
type rollupQuery struct {
	what      string
	source    string
	where     string
	returning string // the columns aggregate reads
	aggregate string
}

// rollupStep runs q: it aggregates and deletes in one transaction. On SQLite the
// INSERT takes the database's write lock, so nothing is added between it
// and the DELETE. On PostgreSQL one statement deletes the rows and
// aggregates exactly those it deleted, so a row committed meanwhile is
// neither lost nor counted twice.
func (s *Store) rollupStep(ctx context.Context, st rollupQuery, upsert, cut string) (int64, error) {
	fail := func(err error) (int64, error) { return 0, fmt.Errorf("roll up %s before %s: %w", st.what, cut, err) }
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck
	insert := "INSERT INTO probe_rollups (" + probeRollupCols + ") "
	var n int64
	if s.dialect == Postgres {
		q := "WITH moved AS (DELETE FROM " + st.source + " WHERE " + st.where + " RETURNING " + st.returning + "), " +
			"ins AS (" + insert + fmt.Sprintf(st.aggregate, "moved", "true") + upsert + ") SELECT COUNT(*) FROM moved"
		if err := tx.QueryRowContext(ctx, s.rebind(q), cut).Scan(&n); err != nil {
			return fail(err)
		}
	} else {
		q := insert + fmt.Sprintf(st.aggregate, st.source, st.where) + upsert
		if _, err := tx.ExecContext(ctx, q, cut); err != nil {
			return fail(err)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM "+st.source+" WHERE "+st.where, cut)
		if err != nil {
			return fail(err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return n, nil
}

// ListProbeRollups returns the buckets of one probe (every location) at
// resolution whose start is at or after since, newest first; limit defaults
// to 100 and is at most 10000.
func (s *Store) ListProbeRollups(ctx context.Context, service, probe, resolution string, since time.Time, limit int) ([]ProbeRollupRow, error) {
	if resolution != RollupMinute && resolution != RollupHour {
		return nil, fmt.Errorf("list probe rollups of %s/%s: resolution %q is neither %q nor %q", service, probe, resolution, RollupMinute, RollupHour)
	}
	if limit <= 0 {
		limit = 100
	}
	q := "SELECT " + probeRollupCols + " FROM probe_rollups WHERE service = ? AND probe = ? AND resolution = ? AND bucket_start >= ?" +
		fmt.Sprintf(" ORDER BY bucket_start DESC, location LIMIT %d", min(limit, 10000))
	fail := func(err error) ([]ProbeRollupRow, error) {
		return nil, fmt.Errorf("list probe rollups of %s/%s: %w", service, probe, err)
	}
	rows, err := s.query(ctx, q, service, probe, resolution, FormatTime(since.UTC().Truncate(time.Microsecond)))
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []ProbeRollupRow
	for rows.Next() {
		var r ProbeRollupRow
		var start string
		if err := rows.Scan(&r.Service, &r.Probe, &r.Location, &r.Resolution, &start, &r.Runs, &r.Up, &r.Down, &r.Errors, &r.Missed,
			&r.DurationSumMS, &r.DurationMaxMS); err != nil {
			return fail(err)
		}
		if r.BucketStart, err = ParseTime(start); err != nil {
			return fail(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}
