package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ProbeAlertRow is one alert of a probe or of a service objective, from
// open to resolve (see migration 0010).
type ProbeAlertRow struct {
	ID         int64
	Service    string
	Probe      string // "" for an objective of the whole service
	Name       string // "down", "degraded", or "OBJECTIVE/SEVERITY"
	Severity   string // "page" or "ticket"
	DedupKey   string
	Title      string
	Details    string // JSON object
	OpenedAt   time.Time
	ResolvedAt time.Time // zero while open
}

// Open reports whether the alert is not resolved.
func (r ProbeAlertRow) Open() bool { return r.ResolvedAt.IsZero() }

const probeAlertCols = "id, service, probe, name, severity, dedup_key, title, details, opened_at, resolved_at"

func scanProbeAlert(sc scanner) (ProbeAlertRow, error) {
	var r ProbeAlertRow
	var opened string
	var resolved sql.NullString
	if err := sc.Scan(&r.ID, &r.Service, &r.Probe, &r.Name, &r.Severity, &r.DedupKey, &r.Title, &r.Details, &opened, &resolved); err != nil {
		return ProbeAlertRow{}, err
	}
	r.OpenedAt, _ = ParseTime(opened)
	if resolved.Valid {
		r.ResolvedAt, _ = ParseTime(resolved.String)
	}
	return r, nil
}

// OpenProbeAlert records a new open alert. When an alert of the same
// service, probe and name is already open it returns that one and opened
// false, so two evaluators never open the same alert twice. dedupKey makes
// the alert's notification key from its id ("" keeps r.DedupKey).
func (s *Store) OpenProbeAlert(ctx context.Context, r ProbeAlertRow, dedupKey func(id int64) string) (ProbeAlertRow, bool, error) {
	fail := func(err error) (ProbeAlertRow, bool, error) {
		return ProbeAlertRow{}, false, fmt.Errorf("open alert %s of %s/%s: %w", r.Name, r.Service, r.Probe, err)
	}
	if r.Details == "" {
		r.Details = "{}"
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck
	existing, err := scanProbeAlert(tx.QueryRowContext(ctx, s.rebind("SELECT "+probeAlertCols+
		" FROM probe_alerts WHERE service = ? AND probe = ? AND name = ? AND resolved_at IS NULL"), r.Service, r.Probe, r.Name))
	switch {
	case err == nil:
		return existing, false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return fail(err)
	}
	err = tx.QueryRowContext(ctx, s.rebind(`INSERT INTO probe_alerts (service, probe, name, severity, dedup_key, title, details, opened_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		r.Service, r.Probe, r.Name, r.Severity, r.DedupKey, r.Title, r.Details, FormatTime(r.OpenedAt)).Scan(&r.ID)
	if isUniqueViolation(err) {
		// Another evaluator opened it between the SELECT and the INSERT.
		return fail(fmt.Errorf("already opened concurrently: %w", err))
	}
	if err != nil {
		return fail(err)
	}
	if dedupKey != nil {
		r.DedupKey = dedupKey(r.ID)
		if _, err := tx.ExecContext(ctx, s.rebind("UPDATE probe_alerts SET dedup_key = ? WHERE id = ?"), r.DedupKey, r.ID); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	r.OpenedAt = r.OpenedAt.UTC().Truncate(time.Microsecond)
	return r, true, nil
}

// ResolveProbeAlert marks the open alert of service, probe and name
// resolved at at and returns it; ok is false when none is open.
func (s *Store) ResolveProbeAlert(ctx context.Context, service, probe, name string, at time.Time) (ProbeAlertRow, bool, error) {
	fail := func(err error) (ProbeAlertRow, bool, error) {
		return ProbeAlertRow{}, false, fmt.Errorf("resolve alert %s of %s/%s: %w", name, service, probe, err)
	}
	r, err := scanProbeAlert(s.queryRow(ctx, "UPDATE probe_alerts SET resolved_at = ? WHERE service = ? AND probe = ? AND name = ? AND resolved_at IS NULL RETURNING "+probeAlertCols,
		FormatTime(at), service, probe, name))
	if errors.Is(err, sql.ErrNoRows) {
		return ProbeAlertRow{}, false, nil
	}
	if err != nil {
		return fail(err)
	}
	return r, true, nil
}

// ListProbeAlerts returns the alerts of service (every service when ""),
// newest first: only the open ones with openOnly, else also those
// resolved, at most limit (default 100, at most 10000).
func (s *Store) ListProbeAlerts(ctx context.Context, service string, openOnly bool, limit int) ([]ProbeAlertRow, error) {
	if limit <= 0 {
		limit = 100
	}
	q := "SELECT " + probeAlertCols + " FROM probe_alerts WHERE (? = '' OR service = ?)"
	if openOnly {
		q += " AND resolved_at IS NULL"
	}
	q += fmt.Sprintf(" ORDER BY opened_at DESC, id DESC LIMIT %d", min(limit, 10000))
	rows, err := s.query(ctx, q, service, service)
	if err != nil {
		return nil, fmt.Errorf("list probe alerts: %w", err)
	}
	defer rows.Close()
	var out []ProbeAlertRow
	for rows.Next() {
		r, err := scanProbeAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("list probe alerts: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list probe alerts: %w", err)
	}
	return out, nil
}

// SLOState is the evaluator's saved state of one probe, or of a service
// objective (Probe "").
type SLOState struct {
	Service, Probe string
	State          string // JSON
	UpdatedAt      time.Time
}

// LoadSLOStates returns every saved evaluator state.
func (s *Store) LoadSLOStates(ctx context.Context) ([]SLOState, error) {
	rows, err := s.query(ctx, "SELECT service, probe, state, updated_at FROM probe_slo_state ORDER BY service, probe")
	if err != nil {
		return nil, fmt.Errorf("load slo state: %w", err)
	}
	defer rows.Close()
	var out []SLOState
	for rows.Next() {
		var st SLOState
		var at string
		if err := rows.Scan(&st.Service, &st.Probe, &st.State, &at); err != nil {
			return nil, fmt.Errorf("load slo state: %w", err)
		}
		st.UpdatedAt, _ = ParseTime(at)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load slo state: %w", err)
	}
	return out, nil
}

// SaveSLOStates writes states (upserting by service and probe) and deletes
// the saved states of remove, in one transaction.
func (s *Store) SaveSLOStates(ctx context.Context, states []SLOState, remove [][2]string) error {
	fail := func(err error) error { return fmt.Errorf("save slo state: %w", err) }
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck
	up := s.rebind(`INSERT INTO probe_slo_state (service, probe, state, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (service, probe) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`)
	for _, st := range states {
		if _, err := tx.ExecContext(ctx, up, st.Service, st.Probe, st.State, FormatTime(st.UpdatedAt)); err != nil {
			return fail(err)
		}
	}
	del := s.rebind("DELETE FROM probe_slo_state WHERE service = ? AND probe = ?")
	for _, k := range remove {
		if _, err := tx.ExecContext(ctx, del, k[0], k[1]); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return nil
}

// SLOCheck is a probe result as the SLO evaluator reads it: no details.
type SLOCheck struct {
	ID         int64
	Service    string
	Probe      string
	Location   string
	Status     string
	StartedAt  time.Time
	DurationMS int64
	Error      string
}

// SLOHistory is what the evaluator loads when it starts: the rollups and
// raw results of the probes since a time, read from one snapshot so that a
// rollup running meanwhile neither hides nor doubles a result.
type SLOHistory struct {
	Rollups []ProbeRollupRow
	Checks  []SLOCheck // by id
	// MaxID is the largest result id read; later results come from
	// SLOChecksAfter.
	MaxID int64
}

// LoadSLOHistory reads the rollups (minute and hour) and the raw results
// started at or after since, of the probes of service (every service when
// service is ""), or of one probe of it.
func (s *Store) LoadSLOHistory(ctx context.Context, service, probe string, since time.Time) (SLOHistory, error) {
	var h SLOHistory
	fail := func(err error) (SLOHistory, error) {
		return SLOHistory{}, fmt.Errorf("load probe history for SLOs: %w", err)
	}
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck
	from := FormatTime(since.UTC().Truncate(time.Microsecond))
	rows, err := tx.QueryContext(ctx, s.rebind("SELECT "+probeRollupCols+" FROM probe_rollups WHERE bucket_start >= ? AND (? = '' OR service = ?) AND (? = '' OR probe = ?) ORDER BY bucket_start"),
		from, service, service, probe, probe)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var r ProbeRollupRow
		var start string
		if err := rows.Scan(&r.Service, &r.Probe, &r.Location, &r.Resolution, &start, &r.Runs, &r.Up, &r.Down, &r.Errors, &r.Missed,
			&r.DurationSumMS, &r.DurationMaxMS); err != nil {
			rows.Close()
			return fail(err)
		}
		r.BucketStart, _ = ParseTime(start)
		h.Rollups = append(h.Rollups, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	if h.Checks, err = s.sloChecks(ctx, tx, "started_at >= ? AND (? = '' OR service = ?) AND (? = '' OR probe = ?)", 0, from, service, service, probe, probe); err != nil {
		return fail(err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM probe_results").Scan(&h.MaxID); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return h, nil
}

// SLOChecksAfter returns up to limit results with an id above after, by
// id: the results written (or uploaded by an agent) since the last read.
func (s *Store) SLOChecksAfter(ctx context.Context, after int64, limit int) ([]SLOCheck, error) {
	out, err := s.sloChecks(ctx, s.db, "id > ?", limit, after)
	if err != nil {
		return nil, fmt.Errorf("read new probe results for SLOs: %w", err)
	}
	return out, nil
}

func (s *Store) sloChecks(ctx context.Context, db interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}, where string, limit int, args ...any) ([]SLOCheck, error) {
	q := "SELECT id, service, probe, location, status, started_at, duration_ms, error FROM probe_results WHERE " + where + " ORDER BY id"
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SLOCheck
	for rows.Next() {
		var c SLOCheck
		var started string
		if err := rows.Scan(&c.ID, &c.Service, &c.Probe, &c.Location, &c.Status, &started, &c.DurationMS, &c.Error); err != nil {
			return nil, err
		}
		c.StartedAt, _ = ParseTime(started)
		out = append(out, c)
	}
	return out, rows.Err()
}
