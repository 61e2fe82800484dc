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

func scanProbeResult(sc interface{ Scan(...any) error }) (ProbeResultRow, error) {
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
