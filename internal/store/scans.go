package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AccessScanRow is one standing-privilege scan of one database as stored;
// the access package gives the report meaning.
type AccessScanRow struct {
	ID        int64
	Service   string
	Database  string
	Status    string // ok | findings | error | skipped
	Findings  int
	Report    string // JSON
	Error     string
	Actor     string
	StartedAt time.Time
}

const accessScanCols = "id, service, database, status, findings, report, error, actor, started_at"

func scanAccessScan(sc scanner) (AccessScanRow, error) {
	var r AccessScanRow
	var started string
	if err := sc.Scan(&r.ID, &r.Service, &r.Database, &r.Status, &r.Findings, &r.Report, &r.Error, &r.Actor, &started); err != nil {
		return AccessScanRow{}, err
	}
	r.StartedAt, _ = ParseTime(started)
	return r, nil
}

// InsertAccessScan records a finished scan and returns it with its id.
func (s *Store) InsertAccessScan(ctx context.Context, r AccessScanRow) (AccessScanRow, error) {
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	r.StartedAt = r.StartedAt.UTC().Truncate(time.Microsecond)
	if r.Report == "" {
		r.Report = "{}"
	}
	err := s.queryRow(ctx, "INSERT INTO access_scans (service, database, status, findings, report, error, actor, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
		r.Service, r.Database, r.Status, r.Findings, r.Report, r.Error, r.Actor, FormatTime(r.StartedAt)).Scan(&r.ID)
	if err != nil {
		return AccessScanRow{}, fmt.Errorf("insert access scan %s/%s: %w", r.Service, r.Database, err)
	}
	return r, nil
}

// GetAccessScan returns a scan by id; ErrNotFound when there is none.
func (s *Store) GetAccessScan(ctx context.Context, id int64) (AccessScanRow, error) {
	r, err := scanAccessScan(s.queryRow(ctx, "SELECT "+accessScanCols+" FROM access_scans WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return AccessScanRow{}, fmt.Errorf("access scan %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return AccessScanRow{}, fmt.Errorf("get access scan %d: %w", id, err)
	}
	return r, nil
}

// AccessScanFilter selects scans; zero values select all.
type AccessScanFilter struct {
	Service     string
	Database    string
	Statuses    []string  // only these statuses
	NotStatuses []string  // all but these statuses
	From        time.Time // started at or after
	To          time.Time // started before
	Limit       int       // default 100, at most 10000
	Oldest      bool      // oldest first instead of newest first
}

// ListAccessScans returns scans newest first (oldest first with Oldest).
func (s *Store) ListAccessScans(ctx context.Context, f AccessScanFilter) ([]AccessScanRow, error) {
	var w filter
	w.eq("service", f.Service)
	w.eq("database", f.Database)
	w.in("status", f.Statuses)
	w.notIn("status", f.NotStatuses)
	if !f.From.IsZero() {
		w.add("started_at >= ?", FormatTime(f.From))
	}
	if !f.To.IsZero() {
		w.add("started_at < ?", FormatTime(f.To))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	order := "DESC"
	if f.Oldest {
		order = "ASC"
	}
	q := "SELECT " + accessScanCols + " FROM access_scans" + w.where() +
		fmt.Sprintf(" ORDER BY started_at %s, id %s LIMIT %d", order, order, min(f.Limit, 10000))
	return list(ctx, s, "access scans", q, w.args, scanAccessScan)
}

// LiveGrantRoles returns the role (or user) names of the Steward grants on
// a database that still exist there: state active, or revoking (expired or
// revoked but not yet proven gone). The scan classifies them as live grants
// rather than findings.
func (s *Store) LiveGrantRoles(ctx context.Context, service, database string) ([]string, error) {
	rows, err := s.query(ctx, "SELECT role_name FROM grants WHERE service = ? AND database = ? AND state IN ('active', 'revoking') ORDER BY role_name", service, database)
	if err != nil {
		return nil, fmt.Errorf("live grants of %s/%s: %w", service, database, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("live grants of %s/%s: %w", service, database, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// AccessReviewGrant is a grant as an access review shows it: who, what,
// why, who approved, and when it was issued, expired and revoked.
type AccessReviewGrant struct {
	ID         int64
	ActionID   *int64
	Service    string
	Database   string
	Profile    string
	Engine     string
	Requester  string
	Reason     string
	RoleName   string
	State      string
	BreakGlass bool
	CreatedAt  time.Time
	IssuedAt   *time.Time
	ExpiresAt  time.Time
	RevokedAt  *time.Time
	LastError  string
	Revocation string // JSON: the revocation record with its steps
	Approvals  []ApprovalRow
}

// AccessReviewGrants returns the grants whose life overlaps [from, to):
// requested before to and not revoked before from, oldest first, each with
// the votes on its action.
func (s *Store) AccessReviewGrants(ctx context.Context, from, to time.Time) ([]AccessReviewGrant, error) {
	rows, err := s.query(ctx, `SELECT id, action_id, service, database, profile, engine, requester, reason, role_name, state, break_glass,
created_at, issued_at, expires_at, revoked_at, last_error, revocation
FROM grants WHERE created_at < ? AND (revoked_at IS NULL OR revoked_at >= ?) ORDER BY created_at, id`, FormatTime(to), FormatTime(from))
	if err != nil {
		return nil, fmt.Errorf("grants for review: %w", err)
	}
	var out []AccessReviewGrant
	for rows.Next() {
		var g AccessReviewGrant
		var action sql.NullInt64
		var bg int
		var created, expires string
		var issued, revoked sql.NullString
		if err := rows.Scan(&g.ID, &action, &g.Service, &g.Database, &g.Profile, &g.Engine, &g.Requester, &g.Reason, &g.RoleName, &g.State, &bg,
			&created, &issued, &expires, &revoked, &g.LastError, &g.Revocation); err != nil {
			rows.Close()
			return nil, fmt.Errorf("grants for review: %w", err)
		}
		if action.Valid {
			g.ActionID = &action.Int64
		}
		g.BreakGlass = bg != 0
		g.CreatedAt, _ = ParseTime(created)
		g.ExpiresAt, _ = ParseTime(expires)
		g.IssuedAt, g.RevokedAt = nullTime(issued), nullTime(revoked)
		out = append(out, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("grants for review: %w", err)
	}
	for i := range out {
		if out[i].ActionID == nil {
			continue
		}
		v, err := s.ListApprovals(ctx, *out[i].ActionID)
		if err != nil {
			return nil, err
		}
		out[i].Approvals = v
	}
	return out, nil
}
