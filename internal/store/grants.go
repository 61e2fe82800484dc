package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// GrantRow is one just-in-time database grant as stored; the access package
// gives it meaning. The password is never stored: CredentialHash is the
// SHA-256 of it, and Revocation is the JSON record of the revocation steps.
type GrantRow struct {
	ID             int64
	ActionID       int64 // 0 when not tied to an action
	Service        string
	Database       string
	Profile        string
	Engine         string
	Requester      string
	Reason         string
	RoleName       string
	State          string
	BreakGlass     bool
	CreatedAt      time.Time
	IssuedAt       *time.Time
	ExpiresAt      time.Time
	RevokeAfter    *time.Time
	RevokedAt      *time.Time
	RevokeAttempts int
	NextAttemptAt  *time.Time
	LastError      string
	Revocation     string // JSON
	CredentialHash string
}

const grantCols = "id, action_id, service, database, profile, engine, requester, reason, role_name, state, break_glass, created_at, issued_at, expires_at, revoke_after, revoked_at, revoke_attempts, next_attempt_at, last_error, revocation, credential_hash"

func scanGrant(sc scanner) (GrantRow, error) {
	var g GrantRow
	var actionID sql.NullInt64
	var bg int
	var created, expires string
	var issued, revokeAfter, revoked, next sql.NullString
	if err := sc.Scan(&g.ID, &actionID, &g.Service, &g.Database, &g.Profile, &g.Engine, &g.Requester, &g.Reason, &g.RoleName, &g.State, &bg,
		&created, &issued, &expires, &revokeAfter, &revoked, &g.RevokeAttempts, &next, &g.LastError, &g.Revocation, &g.CredentialHash); err != nil {
		return GrantRow{}, err
	}
	g.ActionID = actionID.Int64
	g.BreakGlass = bg != 0
	g.CreatedAt, _ = ParseTime(created)
	g.ExpiresAt, _ = ParseTime(expires)
	g.IssuedAt, g.RevokeAfter, g.RevokedAt, g.NextAttemptAt = nullTime(issued), nullTime(revokeAfter), nullTime(revoked), nullTime(next)
	return g, nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// InsertGrant stores a new grant and returns it with its id.
func (s *Store) InsertGrant(ctx context.Context, g GrantRow) (GrantRow, error) {
	if g.CreatedAt.IsZero() {
		g.CreatedAt = time.Now()
	}
	g.CreatedAt = g.CreatedAt.UTC().Truncate(time.Microsecond)
	if g.Revocation == "" {
		g.Revocation = "{}"
	}
	err := s.queryRow(ctx, `INSERT INTO grants (action_id, service, database, profile, engine, requester, reason, role_name, state, break_glass, created_at, issued_at, expires_at, revoke_after, revoked_at, revoke_attempts, next_attempt_at, last_error, revocation, credential_hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		nullID(g.ActionID), g.Service, g.Database, g.Profile, g.Engine, g.Requester, g.Reason, g.RoleName, g.State, boolInt(g.BreakGlass),
		FormatTime(g.CreatedAt), timePtrString(g.IssuedAt), FormatTime(g.ExpiresAt), timePtrString(g.RevokeAfter), timePtrString(g.RevokedAt),
		g.RevokeAttempts, timePtrString(g.NextAttemptAt), g.LastError, g.Revocation, g.CredentialHash).Scan(&g.ID)
	if isUniqueViolation(err) {
		return GrantRow{}, fmt.Errorf("grant role %s: %w", g.RoleName, ErrExists)
	}
	if err != nil {
		return GrantRow{}, fmt.Errorf("insert grant: %w", err)
	}
	return g, nil
}

// GetGrant returns a grant by id; ErrNotFound when there is none.
func (s *Store) GetGrant(ctx context.Context, id int64) (GrantRow, error) {
	g, err := scanGrant(s.queryRow(ctx, "SELECT "+grantCols+" FROM grants WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return GrantRow{}, fmt.Errorf("grant %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return GrantRow{}, fmt.Errorf("get grant %d: %w", id, err)
	}
	return g, nil
}

// UpdateGrant writes the mutable fields of g (role name, state, times,
// attempts, error, revocation record, credential hash) if the grant is still
// in state from; otherwise it returns ErrConflict and changes nothing.
func (s *Store) UpdateGrant(ctx context.Context, g GrantRow, from string) error {
	res, err := s.exec(ctx, `UPDATE grants SET role_name = ?, state = ?, issued_at = ?, expires_at = ?, revoke_after = ?, revoked_at = ?,
revoke_attempts = ?, next_attempt_at = ?, last_error = ?, revocation = ?, credential_hash = ? WHERE id = ? AND state = ?`,
		g.RoleName, g.State, timePtrString(g.IssuedAt), FormatTime(g.ExpiresAt), timePtrString(g.RevokeAfter), timePtrString(g.RevokedAt),
		g.RevokeAttempts, timePtrString(g.NextAttemptAt), g.LastError, g.Revocation, g.CredentialHash, g.ID, from)
	if err != nil {
		return fmt.Errorf("update grant %d: %w", g.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("grant %d is no longer %s: %w", g.ID, from, ErrConflict)
	}
	return nil
}

// ClaimGrant takes the grant for one revocation attempt: it succeeds only if
// the grant is in state and its next attempt is due at now, and it pushes the
// next attempt to until, so that another process sweeping at the same time
// leaves it alone until then (a lease; a crashed claimer's lease runs out).
func (s *Store) ClaimGrant(ctx context.Context, id int64, state string, now, until time.Time) (bool, error) {
	res, err := s.exec(ctx, "UPDATE grants SET next_attempt_at = ? WHERE id = ? AND state = ? AND (next_attempt_at IS NULL OR next_attempt_at <= ?)",
		FormatTime(until), id, state, FormatTime(now))
	if err != nil {
		return false, fmt.Errorf("claim grant %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// GrantFilter selects grants; zero values select all.
type GrantFilter struct {
	States   []string
	Service  string
	ActionID int64
	// ExpiresBy selects grants whose expiry is at or before it.
	ExpiresBy *time.Time
	// DueBy selects grants whose next attempt is unset or at or before it.
	DueBy *time.Time
	// CreatedBefore selects grants created before it.
	CreatedBefore *time.Time
	Limit         int // default 100, at most 10000
	// Oldest lists in id order instead of newest first.
	Oldest bool
}

// ListGrants returns grants newest first (or oldest first with f.Oldest).
func (s *Store) ListGrants(ctx context.Context, f GrantFilter) ([]GrantRow, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		where = append(where, "state IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.States)), ",")+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	if f.Service != "" {
		where = append(where, "service = ?")
		args = append(args, f.Service)
	}
	if f.ActionID != 0 {
		where = append(where, "action_id = ?")
		args = append(args, f.ActionID)
	}
	if f.ExpiresBy != nil {
		where = append(where, "expires_at <= ?")
		args = append(args, FormatTime(*f.ExpiresBy))
	}
	if f.DueBy != nil {
		where = append(where, "(next_attempt_at IS NULL OR next_attempt_at <= ?)")
		args = append(args, FormatTime(*f.DueBy))
	}
	if f.CreatedBefore != nil {
		where = append(where, "created_at < ?")
		args = append(args, FormatTime(*f.CreatedBefore))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := "SELECT " + grantCols + " FROM grants"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	order := "DESC"
	if f.Oldest {
		order = "ASC"
	}
	q += fmt.Sprintf(" ORDER BY id %s LIMIT %d", order, min(f.Limit, 10000))
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	defer rows.Close()
	var out []GrantRow
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, fmt.Errorf("list grants: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}
