package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ProbeLocation is a place probes run from other than the server itself,
// as its agent's heartbeats last described it.
type ProbeLocation struct {
	Name         string
	AgentUser    string // the user whose token the agent uses
	Version      string // the agent's steward version
	FirstSeen    time.Time
	LastSeen     time.Time
	Healthy      bool   // the agent's own self-check
	Reason       string // why it is unhealthy
	Buffered     int64  // results waiting in the agent's spool
	Dropped      int64  // results the agent dropped since it started (spool full)
	PollInterval time.Duration
}

const probeLocationCols = "name, agent_user, version, first_seen, last_seen, healthy, reason, buffered, dropped, poll_interval_ms"

// UpsertProbeLocation records a heartbeat: it creates the location (created
// is true the first time) or updates everything but its first_seen.
func (s *Store) UpsertProbeLocation(ctx context.Context, loc ProbeLocation) (created bool, err error) {
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("record heartbeat of location %s: %w", loc.Name, err)
	}
	healthy := 0
	if loc.Healthy {
		healthy = 1
	}
	seen := FormatTime(loc.LastSeen.UTC().Truncate(time.Microsecond))
	args := []any{loc.AgentUser, loc.Version, seen, healthy, loc.Reason, loc.Buffered, loc.Dropped, loc.PollInterval.Milliseconds()}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck
	res, err := tx.ExecContext(ctx, s.rebind("INSERT INTO probe_locations ("+probeLocationCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING"),
		append([]any{loc.Name, loc.AgentUser, loc.Version, seen}, args[2:]...)...)
	if err != nil {
		return fail(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fail(err)
	}
	if n == 0 {
		q := "UPDATE probe_locations SET agent_user = ?, version = ?, last_seen = ?, healthy = ?, reason = ?, buffered = ?, dropped = ?, poll_interval_ms = ? WHERE name = ?"
		if _, err := tx.ExecContext(ctx, s.rebind(q), append(args, loc.Name)...); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return n == 1, nil
}

// ListProbeLocations returns every location by name.
func (s *Store) ListProbeLocations(ctx context.Context) ([]ProbeLocation, error) {
	rows, err := s.query(ctx, "SELECT "+probeLocationCols+" FROM probe_locations ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list probe locations: %w", err)
	}
	defer rows.Close()
	var out []ProbeLocation
	for rows.Next() {
		loc, err := scanProbeLocation(rows)
		if err != nil {
			return nil, fmt.Errorf("list probe locations: %w", err)
		}
		out = append(out, loc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list probe locations: %w", err)
	}
	return out, nil
}

// GetProbeLocation returns one location, or ErrNotFound.
func (s *Store) GetProbeLocation(ctx context.Context, name string) (ProbeLocation, error) {
	loc, err := scanProbeLocation(s.queryRow(ctx, "SELECT "+probeLocationCols+" FROM probe_locations WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return ProbeLocation{}, fmt.Errorf("probe location %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return ProbeLocation{}, fmt.Errorf("get probe location %s: %w", name, err)
	}
	return loc, nil
}

func scanProbeLocation(sc scanner) (ProbeLocation, error) {
	var loc ProbeLocation
	var first, last string
	var healthy int
	var pollMS int64
	if err := sc.Scan(&loc.Name, &loc.AgentUser, &loc.Version, &first, &last, &healthy, &loc.Reason, &loc.Buffered, &loc.Dropped, &pollMS); err != nil {
		return ProbeLocation{}, err
	}
	loc.FirstSeen, _ = ParseTime(first)
	loc.LastSeen, _ = ParseTime(last)
	loc.Healthy = healthy == 1
	loc.PollInterval = time.Duration(pollMS) * time.Millisecond
	return loc, nil
}

// AgentResultRow is a probe result uploaded by an agent: UID names it, so
// that uploading it again stores nothing.
type AgentResultRow struct {
	UID string
	ProbeResultRow
}

// InsertProbeResultsOnce records results that carry a UID, in one
// transaction, skipping those whose UID is already stored. It returns how
// many were new. A batch that repeats a UID stores it once.
func (s *Store) InsertProbeResultsOnce(ctx context.Context, rows []AgentResultRow) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("insert %d agent probe results: %w", len(rows), err)
	}
	for i, r := range rows {
		if r.UID == "" {
			return fail(fmt.Errorf("result %d (%s/%s) has no uid", i, r.Service, r.Probe))
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck
	inserted := 0
	for chunk := range slices.Chunk(rows, probeResultChunk) {
		args := make([]any, 0, 10*len(chunk))
		for _, r := range chunk {
			if r.Location == "" {
				r.Location = "local"
			}
			if r.Details == "" {
				r.Details = "{}"
			}
			args = append(args, r.UID, r.Service, r.Probe, r.Location, r.Status, FormatTime(r.StartedAt.UTC().Truncate(time.Microsecond)),
				r.DurationMS, r.Code, r.Error, r.Details)
		}
		q := "INSERT INTO probe_results (uid, service, probe, location, status, started_at, duration_ms, code, error, details) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?),", len(chunk)), ",") + " ON CONFLICT (uid) DO NOTHING"
		res, err := tx.ExecContext(ctx, s.rebind(q), args...)
		if err != nil {
			return fail(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fail(err)
		}
		inserted += int(n)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return inserted, nil
}

// CountProbeResultUIDs counts the stored results of location that carry a
// uid, and their distinct uids (equal, as the index is unique).
func (s *Store) CountProbeResultUIDs(ctx context.Context, location string) (results, distinct int, err error) {
	err = s.queryRow(ctx, "SELECT COUNT(uid), COUNT(DISTINCT uid) FROM probe_results WHERE location = ?", location).Scan(&results, &distinct)
	if err != nil {
		return 0, 0, fmt.Errorf("count results of location %s: %w", location, err)
	}
	return results, distinct, nil
}
