package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrConflict means a row changed since it was read (optimistic locking).
var ErrConflict = errors.New("changed concurrently")

// ActionRow is one action as stored; the action package gives it meaning.
type ActionRow struct {
	ID          int64
	Kind        string
	Service     string
	Target      string
	Params      string // JSON
	Requester   string
	Reason      string
	Ticket      string
	State       string
	Risk        string
	PlanSummary string
	PlanDetails string // JSON
	PlanHash    string
	PlanVersion int
	Rule        string
	Requirement string // JSON
	BreakGlass  bool
	Freeze      string
	Result      string // JSON
	Error       string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	ApprovedAt  *time.Time
	ExpiresAt   *time.Time
	ExecutedAt  *time.Time
	FinishedAt  *time.Time
	Version     int
}

const actionCols = "id, kind, service, target, params, requester, reason, ticket, state, risk, plan_summary, plan_details, plan_hash, plan_version, rule, requirement, break_glass, freeze_name, result, error, created_at, updated_at, approved_at, expires_at, executed_at, finished_at, version"

func scanAction(sc scanner) (ActionRow, error) {
	var a ActionRow
	var bg int
	var created, updated string
	var approved, expires, executed, finished sql.NullString
	if err := sc.Scan(&a.ID, &a.Kind, &a.Service, &a.Target, &a.Params, &a.Requester, &a.Reason, &a.Ticket, &a.State, &a.Risk,
		&a.PlanSummary, &a.PlanDetails, &a.PlanHash, &a.PlanVersion, &a.Rule, &a.Requirement, &bg, &a.Freeze, &a.Result, &a.Error,
		&created, &updated, &approved, &expires, &executed, &finished, &a.Version); err != nil {
		return ActionRow{}, err
	}
	a.BreakGlass = bg != 0
	a.CreatedAt, _ = ParseTime(created)
	a.UpdatedAt, _ = ParseTime(updated)
	a.ApprovedAt, a.ExpiresAt, a.ExecutedAt, a.FinishedAt = nullTime(approved), nullTime(expires), nullTime(executed), nullTime(finished)
	return a, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// InsertAction stores a new action and returns it with its id and version 1.
func (s *Store) InsertAction(ctx context.Context, a ActionRow) (ActionRow, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now
	}
	a.UpdatedAt = a.CreatedAt
	a.Version = 1
	err := s.queryRow(ctx, `INSERT INTO actions (kind, service, target, params, requester, reason, ticket, state, risk, plan_summary, plan_details, plan_hash, plan_version, rule, requirement, break_glass, freeze_name, result, error, created_at, updated_at, approved_at, expires_at, executed_at, finished_at, version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING id`,
		a.Kind, a.Service, a.Target, a.Params, a.Requester, a.Reason, a.Ticket, a.State, a.Risk, a.PlanSummary, a.PlanDetails, a.PlanHash,
		a.PlanVersion, a.Rule, a.Requirement, boolInt(a.BreakGlass), a.Freeze, a.Result, a.Error, FormatTime(a.CreatedAt), FormatTime(a.UpdatedAt),
		timePtrString(a.ApprovedAt), timePtrString(a.ExpiresAt), timePtrString(a.ExecutedAt), timePtrString(a.FinishedAt)).Scan(&a.ID)
	if err != nil {
		return ActionRow{}, fmt.Errorf("insert action: %w", err)
	}
	return a, nil
}

// GetAction returns an action by id; ErrNotFound when there is none.
func (s *Store) GetAction(ctx context.Context, id int64) (ActionRow, error) {
	a, err := scanAction(s.queryRow(ctx, "SELECT "+actionCols+" FROM actions WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return ActionRow{}, fmt.Errorf("action %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return ActionRow{}, fmt.Errorf("get action %d: %w", id, err)
	}
	return a, nil
}

// UpdateAction writes a changed action if nobody changed it since it was
// read (a.Version); it returns the row with the new version, or ErrConflict.
func (s *Store) UpdateAction(ctx context.Context, a ActionRow) (ActionRow, error) {
	a.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
	res, err := s.exec(ctx, `UPDATE actions SET state = ?, risk = ?, plan_summary = ?, plan_details = ?, plan_hash = ?, plan_version = ?, rule = ?, requirement = ?,
break_glass = ?, freeze_name = ?, result = ?, error = ?, updated_at = ?, approved_at = ?, expires_at = ?, executed_at = ?, finished_at = ?, version = version + 1
WHERE id = ? AND version = ?`,
		a.State, a.Risk, a.PlanSummary, a.PlanDetails, a.PlanHash, a.PlanVersion, a.Rule, a.Requirement, boolInt(a.BreakGlass), a.Freeze,
		a.Result, a.Error, FormatTime(a.UpdatedAt), timePtrString(a.ApprovedAt), timePtrString(a.ExpiresAt), timePtrString(a.ExecutedAt),
		timePtrString(a.FinishedAt), a.ID, a.Version)
	if err != nil {
		return ActionRow{}, fmt.Errorf("update action %d: %w", a.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ActionRow{}, fmt.Errorf("action %d: %w; reload it and try again", a.ID, ErrConflict)
	}
	a.Version++
	return a, nil
}

// ActionFilter selects actions; zero values select all.
type ActionFilter struct {
	States  []string
	Service string
	Kind    string
	Limit   int // default 100
}

// ListActions returns actions newest first.
func (s *Store) ListActions(ctx context.Context, f ActionFilter) ([]ActionRow, error) {
	var w filter
	w.in("state", f.States)
	w.eq("service", f.Service)
	w.eq("kind", f.Kind)
	q := "SELECT " + actionCols + " FROM actions" + w.where() + " ORDER BY id DESC" + limitClause(f.Limit)
	return list(ctx, s, "actions", q, w.args, scanAction)
}

// ApprovalRow is one approve or reject vote on an action.
type ApprovalRow struct {
	ID        int64     `json:"id"`
	ActionID  int64     `json:"action_id"`
	User      string    `json:"user"`
	Decision  string    `json:"decision"`
	Comment   string    `json:"comment,omitempty"`
	PlanHash  string    `json:"plan_hash"`
	Roles     []string  `json:"roles"`
	Via       string    `json:"via"`
	CreatedAt time.Time `json:"created_at"`
}

// InsertApproval records a vote.
func (s *Store) InsertApproval(ctx context.Context, v ApprovalRow) (ApprovalRow, error) {
	if v.CreatedAt.IsZero() {
		v.CreatedAt = time.Now()
	}
	v.CreatedAt = v.CreatedAt.UTC().Truncate(time.Microsecond)
	err := s.queryRow(ctx, "INSERT INTO approvals (action_id, user_name, decision, comment, plan_hash, roles, via, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
		v.ActionID, v.User, v.Decision, v.Comment, v.PlanHash, strings.Join(v.Roles, ","), v.Via, FormatTime(v.CreatedAt)).Scan(&v.ID)
	if err != nil {
		return ApprovalRow{}, fmt.Errorf("record %s of action %d: %w", v.Decision, v.ActionID, err)
	}
	return v, nil
}

// ListApprovals returns the votes on an action, oldest first.
func (s *Store) ListApprovals(ctx context.Context, actionID int64) ([]ApprovalRow, error) {
	rows, err := s.query(ctx, "SELECT id, action_id, user_name, decision, comment, plan_hash, roles, via, created_at FROM approvals WHERE action_id = ? ORDER BY id", actionID)
	if err != nil {
		return nil, fmt.Errorf("list approvals of action %d: %w", actionID, err)
	}
	defer rows.Close()
	var out []ApprovalRow
	for rows.Next() {
		var v ApprovalRow
		var roles, created string
		if err := rows.Scan(&v.ID, &v.ActionID, &v.User, &v.Decision, &v.Comment, &v.PlanHash, &roles, &v.Via, &created); err != nil {
			return nil, err
		}
		if roles != "" {
			v.Roles = strings.Split(roles, ",")
		}
		v.CreatedAt, _ = ParseTime(created)
		out = append(out, v)
	}
	return out, rows.Err()
}

// ReviewRow is the review a break-glass use opens.
type ReviewRow struct {
	ID          int64      `json:"id"`
	ActionID    int64      `json:"action_id"`
	Breaker     string     `json:"breaker"`
	Required    int        `json:"required"`
	State       string     `json:"state"` // open | completed
	Deadline    time.Time  `json:"deadline"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	LastAlertAt *time.Time `json:"last_alert_at,omitempty"`
	Signoffs    []Signoff  `json:"signoffs"`
}

// Signoff is one reviewer's completion of a review.
type Signoff struct {
	User      string    `json:"user"`
	Notes     string    `json:"notes"`
	CreatedAt time.Time `json:"created_at"`
}

// InsertReview opens a review.
func (s *Store) InsertReview(ctx context.Context, r ReviewRow) (ReviewRow, error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	r.CreatedAt = r.CreatedAt.UTC().Truncate(time.Microsecond)
	r.Deadline = r.Deadline.UTC().Truncate(time.Microsecond)
	err := s.queryRow(ctx, "INSERT INTO reviews (action_id, breaker, required, state, deadline, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
		r.ActionID, r.Breaker, r.Required, r.State, FormatTime(r.Deadline), FormatTime(r.CreatedAt)).Scan(&r.ID)
	if err != nil {
		return ReviewRow{}, fmt.Errorf("open review of action %d: %w", r.ActionID, err)
	}
	return r, nil
}

const reviewCols = "id, action_id, breaker, required, state, deadline, created_at, completed_at, last_alert_at"

func (s *Store) scanReviews(ctx context.Context, q string, args ...any) ([]ReviewRow, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list reviews: %w", err)
	}
	var out []ReviewRow
	for rows.Next() {
		var r ReviewRow
		var deadline, created string
		var completed, alerted sql.NullString
		if err := rows.Scan(&r.ID, &r.ActionID, &r.Breaker, &r.Required, &r.State, &deadline, &created, &completed, &alerted); err != nil {
			rows.Close()
			return nil, err
		}
		r.Deadline, _ = ParseTime(deadline)
		r.CreatedAt, _ = ParseTime(created)
		r.CompletedAt, r.LastAlertAt = nullTime(completed), nullTime(alerted)
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		so, err := s.listSignoffs(ctx, out[i].ID)
		if err != nil {
			return nil, err
		}
		out[i].Signoffs = so
	}
	return out, nil
}

// GetReview returns a review with its signoffs.
func (s *Store) GetReview(ctx context.Context, id int64) (ReviewRow, error) {
	rs, err := s.scanReviews(ctx, "SELECT "+reviewCols+" FROM reviews WHERE id = ?", id)
	if err != nil {
		return ReviewRow{}, err
	}
	if len(rs) == 0 {
		return ReviewRow{}, fmt.Errorf("review %d: %w", id, ErrNotFound)
	}
	return rs[0], nil
}

// ListReviews returns reviews newest first, optionally only in one state.
func (s *Store) ListReviews(ctx context.Context, state string) ([]ReviewRow, error) {
	if state != "" {
		return s.scanReviews(ctx, "SELECT "+reviewCols+" FROM reviews WHERE state = ? ORDER BY id DESC", state)
	}
	return s.scanReviews(ctx, "SELECT "+reviewCols+" FROM reviews ORDER BY id DESC")
}

// AddSignoff records a reviewer's signoff; ErrExists if they signed already.
func (s *Store) AddSignoff(ctx context.Context, reviewID int64, so Signoff) error {
	if so.CreatedAt.IsZero() {
		so.CreatedAt = time.Now()
	}
	_, err := s.exec(ctx, "INSERT INTO review_signoffs (review_id, user_name, notes, created_at) VALUES (?, ?, ?, ?)",
		reviewID, so.User, so.Notes, FormatTime(so.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("%s already signed review %d: %w", so.User, reviewID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sign review %d: %w", reviewID, err)
	}
	return nil
}

func (s *Store) listSignoffs(ctx context.Context, reviewID int64) ([]Signoff, error) {
	rows, err := s.query(ctx, "SELECT user_name, notes, created_at FROM review_signoffs WHERE review_id = ? ORDER BY created_at", reviewID)
	if err != nil {
		return nil, fmt.Errorf("list signoffs: %w", err)
	}
	defer rows.Close()
	var out []Signoff
	for rows.Next() {
		var so Signoff
		var created string
		if err := rows.Scan(&so.User, &so.Notes, &created); err != nil {
			return nil, err
		}
		so.CreatedAt, _ = ParseTime(created)
		out = append(out, so)
	}
	return out, rows.Err()
}

// SetReviewState updates a review's state, completion and alert times.
func (s *Store) SetReviewState(ctx context.Context, id int64, state string, completedAt, lastAlertAt *time.Time) error {
	_, err := s.exec(ctx, "UPDATE reviews SET state = ?, completed_at = COALESCE(?, completed_at), last_alert_at = COALESCE(?, last_alert_at) WHERE id = ?",
		state, timePtrString(completedAt), timePtrString(lastAlertAt), id)
	if err != nil {
		return fmt.Errorf("update review %d: %w", id, err)
	}
	return nil
}
