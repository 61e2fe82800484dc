package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrDrillRunning means a drill is already running for the same service and
// drill name.
var ErrDrillRunning = errors.New("drill already running")

// Drill run states.
const (
	DrillRunning = "running"
	DrillPassed  = "passed"
	DrillFailed  = "failed"
	DrillError   = "error"
)

// DrillRunRow is one drill (or real restore) as stored; the drill package
// gives the report its meaning.
type DrillRunRow struct {
	ID           int64
	Service      string
	Drill        string
	BackupID     string
	State        string
	Actor        string
	StartedAt    time.Time
	FinishedAt   *time.Time
	RTOSeconds   *float64
	RPOSeconds   *float64
	RPOSource    string
	ScratchLabel string
	Error        string
	Report       string // JSON
}

const drillRunCols = "id, service, drill, backup_id, state, actor, started_at, finished_at, rto_seconds, rpo_seconds, rpo_source, scratch_label, error, report"

func scanDrillRun(sc scanner) (DrillRunRow, error) {
	var r DrillRunRow
	var started string
	var finished sql.NullString
	var rto, rpo sql.NullFloat64
	if err := sc.Scan(&r.ID, &r.Service, &r.Drill, &r.BackupID, &r.State, &r.Actor, &started, &finished, &rto, &rpo,
		&r.RPOSource, &r.ScratchLabel, &r.Error, &r.Report); err != nil {
		return DrillRunRow{}, err
	}
	r.StartedAt, _ = ParseTime(started)
	r.FinishedAt = nullTime(finished)
	if rto.Valid {
		r.RTOSeconds = &rto.Float64
	}
	if rpo.Valid {
		r.RPOSeconds = &rpo.Float64
	}
	return r, nil
}

func floatPtr(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// StartDrillRun records a drill in state running, unless a run of the same
// service and drill is already running and started after staleBefore (an
// older one is presumed interrupted); then it returns ErrDrillRunning with
// that run. The check and the insert are one transaction, serialized per
// drill.
func (s *Store) StartDrillRun(ctx context.Context, r DrillRunRow, staleBefore time.Time) (DrillRunRow, error) {
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	r.StartedAt = r.StartedAt.UTC().Truncate(time.Microsecond)
	r.State = DrillRunning
	if r.Report == "" {
		r.Report = "{}"
	}
	tx, err := s.db.BeginTx(ctx, nil) // immediate on SQLite (see DSN)
	if err != nil {
		return DrillRunRow{}, fmt.Errorf("start drill run: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7352003, hashtext($1))", r.Service+"/"+r.Drill); err != nil {
			return DrillRunRow{}, fmt.Errorf("start drill run: lock: %w", err)
		}
	}
	running, err := scanDrillRun(tx.QueryRowContext(ctx, s.rebind("SELECT "+drillRunCols+" FROM drill_runs WHERE service = ? AND drill = ? AND state = ? AND started_at > ? ORDER BY id DESC LIMIT 1"),
		r.Service, r.Drill, DrillRunning, FormatTime(staleBefore)))
	switch {
	case err == nil:
		return running, fmt.Errorf("%s/%s: %w since %s (run %d)", r.Service, r.Drill, ErrDrillRunning, running.StartedAt.Format(time.RFC3339), running.ID)
	case !errors.Is(err, sql.ErrNoRows):
		return DrillRunRow{}, fmt.Errorf("start drill run: %w", err)
	}
	err = tx.QueryRowContext(ctx, s.rebind(`INSERT INTO drill_runs (service, drill, backup_id, state, actor, started_at, rpo_source, scratch_label, error, report)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		r.Service, r.Drill, r.BackupID, r.State, r.Actor, FormatTime(r.StartedAt), r.RPOSource, r.ScratchLabel, r.Error, r.Report).Scan(&r.ID)
	if err != nil {
		return DrillRunRow{}, fmt.Errorf("start drill run: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return DrillRunRow{}, fmt.Errorf("start drill run: %w", err)
	}
	return r, nil
}

// UpdateDrillRun writes a run's progress or outcome: everything but the
// service, drill, actor and start time.
func (s *Store) UpdateDrillRun(ctx context.Context, r DrillRunRow) error {
	res, err := s.exec(ctx, `UPDATE drill_runs SET backup_id = ?, state = ?, finished_at = ?, rto_seconds = ?, rpo_seconds = ?, rpo_source = ?, scratch_label = ?, error = ?, report = ?
WHERE id = ?`,
		r.BackupID, r.State, timePtrString(r.FinishedAt), floatPtr(r.RTOSeconds), floatPtr(r.RPOSeconds), r.RPOSource, r.ScratchLabel, r.Error, r.Report, r.ID)
	if err != nil {
		return fmt.Errorf("update drill run %d: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("drill run %d: %w", r.ID, ErrNotFound)
	}
	return nil
}

// InterruptDrillRun marks a run that is still running as state with the
// error, and reports whether it was still running.
func (s *Store) InterruptDrillRun(ctx context.Context, id int64, state, msg string, at time.Time) (bool, error) {
	res, err := s.exec(ctx, "UPDATE drill_runs SET state = ?, error = ?, finished_at = ? WHERE id = ? AND state = ?",
		state, msg, FormatTime(at), id, DrillRunning)
	if err != nil {
		return false, fmt.Errorf("interrupt drill run %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// GetDrillRun returns a run by id; ErrNotFound when there is none.
func (s *Store) GetDrillRun(ctx context.Context, id int64) (DrillRunRow, error) {
	r, err := scanDrillRun(s.queryRow(ctx, "SELECT "+drillRunCols+" FROM drill_runs WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return DrillRunRow{}, fmt.Errorf("drill run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return DrillRunRow{}, fmt.Errorf("get drill run %d: %w", id, err)
	}
	return r, nil
}

// DrillRunFilter selects drill runs; zero values select all.
type DrillRunFilter struct {
	Service string
	Drill   string
	States  []string
	Limit   int // default 100
}

// ListDrillRuns returns drill runs newest first.
func (s *Store) ListDrillRuns(ctx context.Context, f DrillRunFilter) ([]DrillRunRow, error) {
	var w filter
	w.eq("service", f.Service)
	w.eq("drill", f.Drill)
	w.in("state", f.States)
	q := "SELECT " + drillRunCols + " FROM drill_runs" + w.where() + " ORDER BY started_at DESC, id DESC" + limitClause(f.Limit)
	return list(ctx, s, "drill runs", q, w.args, scanDrillRun)
}

// ScratchRow is a scratch resource a drill provisions. It is recorded
// before the resource is created, so a crash leaves a record to clean up.
type ScratchRow struct {
	Label       string
	Engine      string
	Kind        string
	Location    string // JSON the drill package understands; no secrets
	CreatedAt   time.Time
	DestroyedAt *time.Time
}

// InsertScratch records a scratch resource about to be created.
func (s *Store) InsertScratch(ctx context.Context, r ScratchRow) error {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	_, err := s.exec(ctx, "INSERT INTO scratch_resources (label, engine, kind, location, created_at) VALUES (?, ?, ?, ?, ?)",
		r.Label, r.Engine, r.Kind, r.Location, FormatTime(r.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("scratch %s: %w", r.Label, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("record scratch %s: %w", r.Label, err)
	}
	return nil
}

// UpdateScratchLocation replaces what is known about where the resource is
// (e.g. once a provision hook printed it).
func (s *Store) UpdateScratchLocation(ctx context.Context, label, location string) error {
	if _, err := s.exec(ctx, "UPDATE scratch_resources SET location = ? WHERE label = ?", location, label); err != nil {
		return fmt.Errorf("update scratch %s: %w", label, err)
	}
	return nil
}

// MarkScratchDestroyed records that the resource is gone.
func (s *Store) MarkScratchDestroyed(ctx context.Context, label string, at time.Time) error {
	if _, err := s.exec(ctx, "UPDATE scratch_resources SET destroyed_at = ? WHERE label = ? AND destroyed_at IS NULL", FormatTime(at), label); err != nil {
		return fmt.Errorf("mark scratch %s destroyed: %w", label, err)
	}
	return nil
}

// GetScratch returns a scratch resource by label; ErrNotFound when none.
func (s *Store) GetScratch(ctx context.Context, label string) (ScratchRow, error) {
	r, err := scanScratch(s.queryRow(ctx, "SELECT label, engine, kind, location, created_at, destroyed_at FROM scratch_resources WHERE label = ?", label))
	if errors.Is(err, sql.ErrNoRows) {
		return ScratchRow{}, fmt.Errorf("scratch %s: %w", label, ErrNotFound)
	}
	if err != nil {
		return ScratchRow{}, fmt.Errorf("get scratch %s: %w", label, err)
	}
	return r, nil
}

// LiveScratch lists the scratch resources not marked destroyed, oldest
// first.
func (s *Store) LiveScratch(ctx context.Context) ([]ScratchRow, error) {
	rows, err := s.query(ctx, "SELECT label, engine, kind, location, created_at, destroyed_at FROM scratch_resources WHERE destroyed_at IS NULL ORDER BY created_at, label")
	if err != nil {
		return nil, fmt.Errorf("list scratch: %w", err)
	}
	defer rows.Close()
	var out []ScratchRow
	for rows.Next() {
		r, err := scanScratch(rows)
		if err != nil {
			return nil, fmt.Errorf("list scratch: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func scanScratch(sc scanner) (ScratchRow, error) {
	var r ScratchRow
	var created string
	var destroyed sql.NullString
	if err := sc.Scan(&r.Label, &r.Engine, &r.Kind, &r.Location, &created, &destroyed); err != nil {
		return ScratchRow{}, err
	}
	r.CreatedAt, _ = ParseTime(created)
	r.DestroyedAt = nullTime(destroyed)
	return r, nil
}
