package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CheckRunRow is one run of one integrity check as stored; the integrity
// package gives it meaning.
type CheckRunRow struct {
	ID         int64
	Service    string
	Check      string
	Database   string
	Status     string
	Violations int64
	RowCount   *int64 // rows scanned or counted, when the check knows it
	DurationMS int64
	Query      string
	Sample     string // JSON array of objects
	Error      string
	Actor      string
	StartedAt  time.Time
	FixAction  *int64
}

const checkRunCols = "id, service, check_name, database, status, violations, row_count, duration_ms, query, sample, error, actor, started_at, fix_action"

func scanCheckRun(sc scanner) (CheckRunRow, error) {
	var r CheckRunRow
	var started string
	var rows, fix sql.NullInt64
	if err := sc.Scan(&r.ID, &r.Service, &r.Check, &r.Database, &r.Status, &r.Violations, &rows, &r.DurationMS,
		&r.Query, &r.Sample, &r.Error, &r.Actor, &started, &fix); err != nil {
		return CheckRunRow{}, err
	}
	r.StartedAt, _ = ParseTime(started)
	if rows.Valid {
		r.RowCount = &rows.Int64
	}
	if fix.Valid {
		r.FixAction = &fix.Int64
	}
	return r, nil
}

func int64Ptr(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// InsertCheckRun records a finished check run and returns it with its id.
func (s *Store) InsertCheckRun(ctx context.Context, r CheckRunRow) (CheckRunRow, error) {
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	r.StartedAt = r.StartedAt.UTC().Truncate(time.Microsecond)
	if r.Sample == "" {
		r.Sample = "[]"
	}
	err := s.queryRow(ctx, `INSERT INTO check_runs (service, check_name, database, status, violations, row_count, duration_ms, query, sample, error, actor, started_at, fix_action)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.Service, r.Check, r.Database, r.Status, r.Violations, int64Ptr(r.RowCount), r.DurationMS, r.Query, r.Sample, r.Error,
		r.Actor, FormatTime(r.StartedAt), int64Ptr(r.FixAction)).Scan(&r.ID)
	if err != nil {
		return CheckRunRow{}, fmt.Errorf("insert check run %s/%s: %w", r.Service, r.Check, err)
	}
	return r, nil
}

// InsertCheckRuns records several finished runs in one transaction (one
// commit for a whole run of a service's checks) and returns them with ids.
func (s *Store) InsertCheckRuns(ctx context.Context, runs []CheckRunRow) ([]CheckRunRow, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("insert check runs: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck
	out := make([]CheckRunRow, len(runs))
	for i, r := range runs {
		if r.StartedAt.IsZero() {
			r.StartedAt = time.Now()
		}
		r.StartedAt = r.StartedAt.UTC().Truncate(time.Microsecond)
		if r.Sample == "" {
			r.Sample = "[]"
		}
		err := tx.QueryRowContext(ctx, s.rebind(`INSERT INTO check_runs (service, check_name, database, status, violations, row_count, duration_ms, query, sample, error, actor, started_at, fix_action)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			r.Service, r.Check, r.Database, r.Status, r.Violations, int64Ptr(r.RowCount), r.DurationMS, r.Query, r.Sample, r.Error,
			r.Actor, FormatTime(r.StartedAt), int64Ptr(r.FixAction)).Scan(&r.ID)
		if err != nil {
			return nil, fmt.Errorf("insert check run %s/%s: %w", r.Service, r.Check, err)
		}
		out[i] = r
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("insert check runs: %w", err)
	}
	return out, nil
}

// CheckRunFilter selects check runs; zero values select all.
type CheckRunFilter struct {
	Service     string
	Check       string
	Statuses    []string // only these statuses
	NotStatuses []string // all but these statuses
	Limit       int      // default 100, at most 1000
}

// ListCheckRuns returns check runs newest first.
func (s *Store) ListCheckRuns(ctx context.Context, f CheckRunFilter) ([]CheckRunRow, error) {
	var w filter
	w.eq("service", f.Service)
	w.eq("check_name", f.Check)
	w.in("status", f.Statuses)
	w.notIn("status", f.NotStatuses)
	q := "SELECT " + checkRunCols + " FROM check_runs" + w.where() + " ORDER BY started_at DESC, id DESC" + limitClause(f.Limit)
	return list(ctx, s, "check runs", q, w.args, scanCheckRun)
}

// ViolationDelta is how the violating keys of a check changed with a run.
type ViolationDelta struct {
	New        int
	Persisting int
	Resolved   int
	// FirstSeen maps each current key to when it was first seen violating
	// (now for new keys).
	FirstSeen map[string]time.Time
}

// TrackViolations updates the violation history of a check with the keys
// violating now. Keys seen before and not resolved since persist; others are
// new (a key that was resolved and violates again is new again). When
// complete is true, keys is every violating key, and open keys not in it are
// marked resolved; otherwise (keys is a bounded subset) they stay open.
func (s *Store) TrackViolations(ctx context.Context, service, check string, keys []string, complete bool, now time.Time) (ViolationDelta, error) {
	now = now.UTC().Truncate(time.Microsecond)
	nowS := FormatTime(now)
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	d := ViolationDelta{FirstSeen: make(map[string]time.Time, len(keys))}
	fail := func(err error) (ViolationDelta, error) {
		return ViolationDelta{}, fmt.Errorf("track violations of %s/%s: %w", service, check, err)
	}
	if len(keys) == 0 {
		// The common case of a passing check with nothing open: no write.
		var open int
		if err := s.queryRow(ctx, "SELECT count(*) FROM check_violations WHERE service = ? AND check_name = ? AND resolved_at IS NULL", service, check).Scan(&open); err != nil {
			return fail(err)
		}
		if open == 0 || !complete {
			return d, nil
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck
	open := map[string]time.Time{}
	rows, err := tx.QueryContext(ctx, s.rebind("SELECT row_key, first_seen FROM check_violations WHERE service = ? AND check_name = ? AND resolved_at IS NULL"), service, check)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var k, first string
		if err := rows.Scan(&k, &first); err != nil {
			rows.Close()
			return fail(err)
		}
		open[k], _ = ParseTime(first)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	var persisting, fresh []string
	for _, k := range keys {
		if first, ok := open[k]; ok {
			persisting = append(persisting, k)
			d.FirstSeen[k] = first
		} else {
			fresh = append(fresh, k)
			d.FirstSeen[k] = now
		}
	}
	d.New, d.Persisting = len(fresh), len(persisting)
	const batch = 200
	for chunk := range slices.Chunk(persisting, batch) {
		args := []any{nowS, service, check}
		for _, k := range chunk {
			args = append(args, k)
		}
		if _, err := tx.ExecContext(ctx, s.rebind("UPDATE check_violations SET last_seen = ? WHERE service = ? AND check_name = ? AND resolved_at IS NULL AND row_key IN ("+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+")"), args...); err != nil {
			return fail(err)
		}
	}
	for chunk := range slices.Chunk(fresh, batch) {
		var args []any
		for _, k := range chunk {
			args = append(args, service, check, k, nowS, nowS)
		}
		q := "INSERT INTO check_violations (service, check_name, row_key, first_seen, last_seen, resolved_at) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, NULL),", len(chunk)), ",") +
			" ON CONFLICT (service, check_name, row_key) DO UPDATE SET first_seen = excluded.first_seen, last_seen = excluded.last_seen, resolved_at = NULL"
		if _, err := tx.ExecContext(ctx, s.rebind(q), args...); err != nil {
			return fail(err)
		}
	}
	if complete {
		res, err := tx.ExecContext(ctx, s.rebind("UPDATE check_violations SET resolved_at = ? WHERE service = ? AND check_name = ? AND resolved_at IS NULL AND last_seen <> ?"),
			nowS, service, check, nowS)
		if err != nil {
			return fail(err)
		}
		n, _ := res.RowsAffected()
		d.Resolved = int(n)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return d, nil
}

// ViolationRow is the history of one violating key.
type ViolationRow struct {
	Key        string
	FirstSeen  time.Time
	LastSeen   time.Time
	ResolvedAt *time.Time
}

// ListViolations returns the keys of a check, open ones first, then by key;
// open only when openOnly.
func (s *Store) ListViolations(ctx context.Context, service, check string, openOnly bool, limit int) ([]ViolationRow, error) {
	if limit <= 0 {
		limit = 100
	}
	q := "SELECT row_key, first_seen, last_seen, resolved_at FROM check_violations WHERE service = ? AND check_name = ?"
	if openOnly {
		q += " AND resolved_at IS NULL"
	}
	q += fmt.Sprintf(" ORDER BY CASE WHEN resolved_at IS NULL THEN 0 ELSE 1 END, row_key LIMIT %d", min(limit, 10000))
	rows, err := s.query(ctx, q, service, check)
	if err != nil {
		return nil, fmt.Errorf("list violations of %s/%s: %w", service, check, err)
	}
	defer rows.Close()
	var out []ViolationRow
	for rows.Next() {
		var v ViolationRow
		var first, last string
		var resolved sql.NullString
		if err := rows.Scan(&v.Key, &first, &last, &resolved); err != nil {
			return nil, fmt.Errorf("list violations of %s/%s: %w", service, check, err)
		}
		v.FirstSeen, _ = ParseTime(first)
		v.LastSeen, _ = ParseTime(last)
		v.ResolvedAt = nullTime(resolved)
		out = append(out, v)
	}
	return out, rows.Err()
}
