package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// States of a backup run.
const (
	BackupRunning   = "running"
	BackupSucceeded = "succeeded"
	BackupFailed    = "failed"
)

// BackupRun is the evidence of one backup Steward took (or tried to).
type BackupRun struct {
	ID         int64      `json:"id"`
	Service    string     `json:"service"`
	Backup     string     `json:"backup"`
	BackupID   string     `json:"backup_id"`
	Method     string     `json:"method"`
	State      string     `json:"state"`
	Actor      string     `json:"actor"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	SizeBytes  int64      `json:"size_bytes"`
	Error      string     `json:"error,omitempty"`
	Manifest   string     `json:"manifest"` // JSON
}

const backupRunCols = "id, service, backup, backup_id, method, state, actor, started_at, finished_at, size_bytes, error, manifest"

func scanBackupRun(sc scanner) (BackupRun, error) {
	var r BackupRun
	var started string
	var finished sql.NullString
	if err := sc.Scan(&r.ID, &r.Service, &r.Backup, &r.BackupID, &r.Method, &r.State, &r.Actor, &started, &finished, &r.SizeBytes, &r.Error, &r.Manifest); err != nil {
		return BackupRun{}, err
	}
	r.StartedAt, _ = ParseTime(started)
	r.FinishedAt = nullTime(finished)
	return r, nil
}

// InsertBackupRun records a backup run (normally in state running) and
// returns it with its id.
func (s *Store) InsertBackupRun(ctx context.Context, r BackupRun) (BackupRun, error) {
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	r.StartedAt = r.StartedAt.UTC().Truncate(time.Microsecond)
	if r.State == "" {
		r.State = BackupRunning
	}
	if r.Manifest == "" {
		r.Manifest = "{}"
	}
	err := s.queryRow(ctx, `INSERT INTO backup_runs (service, backup, backup_id, method, state, actor, started_at, finished_at, size_bytes, error, manifest)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.Service, r.Backup, r.BackupID, r.Method, r.State, r.Actor, FormatTime(r.StartedAt), timePtrString(r.FinishedAt),
		r.SizeBytes, r.Error, r.Manifest).Scan(&r.ID)
	if err != nil {
		return BackupRun{}, fmt.Errorf("insert backup run of %s/%s: %w", r.Service, r.Backup, err)
	}
	return r, nil
}

// FinishBackupRun records the outcome of a running backup run: its state,
// backup id, finish time, size, error and manifest. A run that is no longer
// running is not changed (ErrConflict).
func (s *Store) FinishBackupRun(ctx context.Context, r BackupRun) (BackupRun, error) {
	if r.FinishedAt == nil {
		now := time.Now()
		r.FinishedAt = &now
	}
	f := r.FinishedAt.UTC().Truncate(time.Microsecond)
	r.FinishedAt = &f
	if r.Manifest == "" {
		r.Manifest = "{}"
	}
	res, err := s.exec(ctx, "UPDATE backup_runs SET state = ?, backup_id = ?, finished_at = ?, size_bytes = ?, error = ?, manifest = ? WHERE id = ? AND state = ?",
		r.State, r.BackupID, FormatTime(f), r.SizeBytes, r.Error, r.Manifest, r.ID, BackupRunning)
	if err != nil {
		return BackupRun{}, fmt.Errorf("finish backup run %d: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return BackupRun{}, fmt.Errorf("backup run %d is not running: %w", r.ID, ErrConflict)
	}
	return r, nil
}

// GetBackupRun returns a backup run by id; ErrNotFound when there is none.
func (s *Store) GetBackupRun(ctx context.Context, id int64) (BackupRun, error) {
	r, err := scanBackupRun(s.queryRow(ctx, "SELECT "+backupRunCols+" FROM backup_runs WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return BackupRun{}, fmt.Errorf("backup run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return BackupRun{}, fmt.Errorf("get backup run %d: %w", id, err)
	}
	return r, nil
}

// BackupRunFilter selects backup runs; zero values select all.
type BackupRunFilter struct {
	Service string
	Backup  string
	States  []string
	Limit   int // default 100
}

// ListBackupRuns returns backup runs newest first.
func (s *Store) ListBackupRuns(ctx context.Context, f BackupRunFilter) ([]BackupRun, error) {
	var w filter
	w.eq("service", f.Service)
	w.eq("backup", f.Backup)
	w.in("state", f.States)
	q := "SELECT " + backupRunCols + " FROM backup_runs" + w.where() + " ORDER BY started_at DESC, id DESC" + limitClause(f.Limit)
	return list(ctx, s, "backup runs", q, w.args, scanBackupRun)
}

// FailInterruptedBackupRuns marks runs still running that started before
// the cutoff as failed with reason: Steward stopped while they ran. It
// returns the runs it changed.
func (s *Store) FailInterruptedBackupRuns(ctx context.Context, before time.Time, reason string) ([]BackupRun, error) {
	runs, err := s.ListBackupRuns(ctx, BackupRunFilter{States: []string{BackupRunning}, Limit: 1000})
	if err != nil {
		return nil, err
	}
	var out []BackupRun
	now := time.Now()
	for _, r := range runs {
		if !r.StartedAt.Before(before) {
			continue
		}
		r.State, r.Error, r.FinishedAt = BackupFailed, reason, &now
		done, err := s.FinishBackupRun(ctx, r)
		if errors.Is(err, ErrConflict) {
			continue // finished meanwhile
		}
		if err != nil {
			return out, err
		}
		out = append(out, done)
	}
	return out, nil
}
