package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Period is the closed time range [From, To] an evidence report covers. The
// queries below return every matching row, without a limit: a report must
// not silently leave evidence out.
type Period struct {
	From, To time.Time
}

// bounds returns the period's ends in the stored time format.
func (p Period) bounds() (string, string) {
	return FormatTime(p.From.UTC().Truncate(time.Microsecond)), FormatTime(p.To.UTC().Truncate(time.Microsecond))
}

// inPeriod is a filter of rows whose column col lies in p, and of one
// service when service is set.
func inPeriod(col, service string, p Period) filter {
	from, to := p.bounds()
	f := filter{conds: []string{col + " >= ?", col + " <= ?"}, args: []any{from, to}}
	f.eq("service", service)
	return f
}

// BackupRunsIn returns the backup runs started in p, of one service when
// service is set, oldest first.
func (s *Store) BackupRunsIn(ctx context.Context, service string, p Period) ([]BackupRun, error) {
	w := inPeriod("started_at", service, p)
	q := "SELECT " + backupRunCols + " FROM backup_runs" + w.where() + " ORDER BY started_at, id"
	return list(ctx, s, "backup runs in period", q, w.args, scanBackupRun)
}

// DrillRunsIn returns the drill and restore runs started in p, oldest
// first.
func (s *Store) DrillRunsIn(ctx context.Context, service string, p Period) ([]DrillRunRow, error) {
	w := inPeriod("started_at", service, p)
	q := "SELECT " + drillRunCols + " FROM drill_runs" + w.where() + " ORDER BY started_at, id"
	return list(ctx, s, "drill runs in period", q, w.args, scanDrillRun)
}

// CheckRunsIn returns the integrity check runs started in p, oldest first.
func (s *Store) CheckRunsIn(ctx context.Context, service string, p Period) ([]CheckRunRow, error) {
	w := inPeriod("started_at", service, p)
	q := "SELECT " + checkRunCols + " FROM check_runs" + w.where() + " ORDER BY started_at, id"
	return list(ctx, s, "check runs in period", q, w.args, scanCheckRun)
}

// AccessScansIn returns the standing-privilege scans started in p, oldest
// first.
func (s *Store) AccessScansIn(ctx context.Context, service string, p Period) ([]AccessScanRow, error) {
	w := inPeriod("started_at", service, p)
	q := "SELECT " + accessScanCols + " FROM access_scans" + w.where() + " ORDER BY started_at, id"
	return list(ctx, s, "access scans in period", q, w.args, scanAccessScan)
}

// GrantsIn returns the grants whose life overlaps p: created by its end and
// not revoked before its start. Oldest first.
func (s *Store) GrantsIn(ctx context.Context, service string, p Period) ([]GrantRow, error) {
	from, to := p.bounds()
	w := filter{conds: []string{"created_at <= ?", "(revoked_at IS NULL OR revoked_at >= ?)"}, args: []any{to, from}}
	w.eq("service", service)
	q := "SELECT " + grantCols + " FROM grants" + w.where() + " ORDER BY created_at, id"
	return list(ctx, s, "grants in period", q, w.args, scanGrant)
}

// ActionsIn returns the actions created by the end of p and changed at or
// after its start, oldest first.
func (s *Store) ActionsIn(ctx context.Context, service string, p Period) ([]ActionRow, error) {
	from, to := p.bounds()
	w := filter{conds: []string{"created_at <= ?", "updated_at >= ?"}, args: []any{to, from}}
	w.eq("service", service)
	q := "SELECT " + actionCols + " FROM actions" + w.where() + " ORDER BY id"
	return list(ctx, s, "actions in period", q, w.args, scanAction)
}

// ReviewsIn returns the break-glass reviews opened by the end of p and
// still open or completed at or after its start, with their signoffs,
// oldest first.
func (s *Store) ReviewsIn(ctx context.Context, p Period) ([]ReviewRow, error) {
	from, to := p.bounds()
	return s.scanReviews(ctx, "SELECT "+reviewCols+" FROM reviews WHERE created_at <= ? AND (completed_at IS NULL OR completed_at >= ?) ORDER BY id", to, from)
}

// OutboxIn returns the notifications created or delivered in p, oldest
// first.
func (s *Store) OutboxIn(ctx context.Context, service string, p Period) ([]OutboxRow, error) {
	from, to := p.bounds()
	w := filter{conds: []string{"((created_at >= ? AND created_at <= ?) OR (delivered_at >= ? AND delivered_at <= ?))"}, args: []any{from, to, from, to}}
	w.eq("service", service)
	q := "SELECT " + outboxCols + " FROM notify_outbox" + w.where() + " ORDER BY id"
	return list(ctx, s, "notifications in period", q, w.args, scanOutbox)
}

// ProbeAvailability counts the results of one probe from one location over
// a period, from the raw results and the minute and hour rollups together
// (a result is in exactly one of them).
type ProbeAvailability struct {
	Service  string
	Probe    string
	Location string
	Runs     int64 // up + down + errors
	Up       int64
	Down     int64
	Errors   int64
	Missed   int64
	// DurationSumMS sums the durations of the runs; DurationMaxMS is the
	// longest.
	DurationSumMS int64
	DurationMaxMS int64
}

// ProbeAvailabilityIn counts every probe's results in p per location. Raw
// results count when they started in p, rollup buckets when they start in
// p: a bucket straddling an end of the period counts whole. Ordered by
// service, probe and location.
func (s *Store) ProbeAvailabilityIn(ctx context.Context, service string, p Period) ([]ProbeAvailability, error) {
	from, to := p.bounds()
	raw := "SELECT service, probe, location, " +
		"CASE WHEN status <> 'missed' THEN 1 ELSE 0 END AS runs, CASE WHEN status = 'up' THEN 1 ELSE 0 END AS up, " +
		"CASE WHEN status = 'down' THEN 1 ELSE 0 END AS down, CASE WHEN status = 'error' THEN 1 ELSE 0 END AS errs, " +
		"CASE WHEN status = 'missed' THEN 1 ELSE 0 END AS missed, CASE WHEN status <> 'missed' THEN duration_ms ELSE 0 END AS dsum, " +
		"CASE WHEN status <> 'missed' THEN duration_ms ELSE 0 END AS dmax FROM probe_results WHERE started_at >= ? AND started_at <= ?"
	rolled := "SELECT service, probe, location, runs, up, down, errors AS errs, missed, duration_sum_ms AS dsum, duration_max_ms AS dmax " +
		"FROM probe_rollups WHERE bucket_start >= ? AND bucket_start <= ?"
	args := []any{from, to, from, to}
	if service != "" {
		raw += " AND service = ?"
		rolled += " AND service = ?"
		args = []any{from, to, service, from, to, service}
	}
	q := "SELECT service, probe, location, SUM(runs), SUM(up), SUM(down), SUM(errs), SUM(missed), SUM(dsum), MAX(dmax) FROM (" +
		raw + " UNION ALL " + rolled + ") AS r GROUP BY service, probe, location ORDER BY service, probe, location"
	return list(ctx, s, "probe availability in period", q, args, func(sc scanner) (ProbeAvailability, error) {
		var a ProbeAvailability
		err := sc.Scan(&a.Service, &a.Probe, &a.Location, &a.Runs, &a.Up, &a.Down, &a.Errors, &a.Missed, &a.DurationSumMS, &a.DurationMaxMS)
		return a, err
	})
}

// AuditEventsByAction returns the audit events with one of actions written
// at or after since, in seq order. The report uses it to find the event
// that records each evidence item.
func (s *Store) AuditEventsByAction(ctx context.Context, actions []string, since time.Time) ([]AuditRecord, error) {
	if len(actions) == 0 {
		return nil, nil
	}
	q := "SELECT " + auditCols + " FROM audit_events WHERE ts >= ? AND action IN (" +
		strings.TrimSuffix(strings.Repeat("?,", len(actions)), ",") + ") ORDER BY seq"
	args := []any{FormatTime(since.UTC().Truncate(time.Microsecond))}
	for _, a := range actions {
		args = append(args, a)
	}
	out, err := list(ctx, s, "audit events", q, args, scanAudit)
	if err != nil {
		return nil, fmt.Errorf("find evidence events: %w", err)
	}
	return out, nil
}

// CheckpointCovering returns the newest stored checkpoint whose size is at
// least seq (it covers the event seq and every one before it);
// ErrNotFound when none does.
func (s *Store) CheckpointCovering(ctx context.Context, seq int64) (Checkpoint, error) {
	cps, err := list(ctx, s, "checkpoints", "SELECT id, size, head_hash, note, created_at FROM audit_checkpoints WHERE size >= ? ORDER BY id DESC LIMIT 1",
		[]any{seq}, func(sc scanner) (Checkpoint, error) {
			var c Checkpoint
			var created string
			if err := sc.Scan(&c.ID, &c.Size, &c.HeadHash, &c.Note, &created); err != nil {
				return Checkpoint{}, err
			}
			c.CreatedAt, _ = ParseTime(created)
			return c, nil
		})
	if err != nil {
		return Checkpoint{}, err
	}
	if len(cps) == 0 {
		return Checkpoint{}, fmt.Errorf("checkpoint covering event %d: %w", seq, ErrNotFound)
	}
	return cps[0], nil
}
