package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ScorecardRow is one stored evaluation of one service's readiness
// scorecard; Service "" holds the overall score of the evaluation. The
// readiness package gives it meaning.
type ScorecardRow struct {
	ID          int64             `json:"id"`
	Service     string            `json:"service"`
	EvaluatedAt time.Time         `json:"evaluated_at"`
	Tier        int               `json:"tier"`
	Score       float64           `json:"score"`
	Statuses    map[string]string `json:"statuses"` // control ID -> status
	Reasons     map[string]string `json:"reasons"`  // control ID -> reason
}

const scorecardCols = "id, service, evaluated_at, tier, score, statuses, reasons"

func scanScorecard(sc scanner) (ScorecardRow, error) {
	var r ScorecardRow
	var at, statuses, reasons string
	if err := sc.Scan(&r.ID, &r.Service, &at, &r.Tier, &r.Score, &statuses, &reasons); err != nil {
		return ScorecardRow{}, err
	}
	var err error
	if r.EvaluatedAt, err = ParseTime(at); err != nil {
		return ScorecardRow{}, fmt.Errorf("scorecard %d: bad time %q: %w", r.ID, at, err)
	}
	if err := json.Unmarshal([]byte(statuses), &r.Statuses); err != nil {
		return ScorecardRow{}, fmt.Errorf("scorecard %d: statuses: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(reasons), &r.Reasons); err != nil {
		return ScorecardRow{}, fmt.Errorf("scorecard %d: reasons: %w", r.ID, err)
	}
	return r, nil
}

// InsertScorecards records the rows of one evaluation in one transaction.
func (s *Store) InsertScorecards(ctx context.Context, rows []ScorecardRow) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert scorecards: %w", s.classify(err))
	}
	defer tx.Rollback() //nolint:errcheck
	for _, r := range rows {
		statuses, err := json.Marshal(nonNil(r.Statuses))
		if err != nil {
			return fmt.Errorf("insert scorecard of %s: %w", r.Service, err)
		}
		reasons, err := json.Marshal(nonNil(r.Reasons))
		if err != nil {
			return fmt.Errorf("insert scorecard of %s: %w", r.Service, err)
		}
		if _, err := tx.ExecContext(ctx, s.rebind("INSERT INTO scorecards (service, evaluated_at, tier, score, statuses, reasons) VALUES (?, ?, ?, ?, ?, ?)"),
			r.Service, FormatTime(r.EvaluatedAt), r.Tier, r.Score, string(statuses), string(reasons)); err != nil {
			return fmt.Errorf("insert scorecard of %s: %w", r.Service, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert scorecards: commit: %w", err)
	}
	return nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// ScorecardFilter selects stored scorecards; zero values select all.
type ScorecardFilter struct {
	Service string // "" with Overall unset: every service and the overall rows
	Overall bool   // only the overall rows (service '')
	From    time.Time
	To      time.Time // before
	Limit   int       // default 100, at most 10000
	Oldest  bool      // oldest first instead of newest first
}

// ListScorecards returns stored scorecards newest first (oldest first with
// Oldest).
func (s *Store) ListScorecards(ctx context.Context, f ScorecardFilter) ([]ScorecardRow, error) {
	var w filter
	switch {
	case f.Overall:
		w.conds = append(w.conds, "service = ''")
	default:
		w.eq("service", f.Service)
	}
	if !f.From.IsZero() {
		w.conds = append(w.conds, "evaluated_at >= ?")
		w.args = append(w.args, FormatTime(f.From))
	}
	if !f.To.IsZero() {
		w.conds = append(w.conds, "evaluated_at < ?")
		w.args = append(w.args, FormatTime(f.To))
	}
	order := " ORDER BY evaluated_at DESC, id DESC"
	if f.Oldest {
		order = " ORDER BY evaluated_at, id"
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q := "SELECT " + scorecardCols + " FROM scorecards" + w.where() + order + fmt.Sprintf(" LIMIT %d", min(limit, 10000))
	return list(ctx, s, "scorecards", q, w.args, scanScorecard)
}

// ScorecardNear returns the stored scorecard of service ("" for the overall
// score) evaluated nearest to at, within tolerance either side;
// ErrNotFound when there is none.
func (s *Store) ScorecardNear(ctx context.Context, service string, at time.Time, tolerance time.Duration) (ScorecardRow, error) {
	before := "SELECT " + scorecardCols + " FROM scorecards WHERE service = ? AND evaluated_at <= ? AND evaluated_at >= ? ORDER BY evaluated_at DESC, id DESC LIMIT 1"
	after := "SELECT " + scorecardCols + " FROM scorecards WHERE service = ? AND evaluated_at > ? AND evaluated_at <= ? ORDER BY evaluated_at, id LIMIT 1"
	var best *ScorecardRow
	for _, q := range []struct {
		sql   string
		bound time.Time
	}{{before, at.Add(-tolerance)}, {after, at.Add(tolerance)}} {
		r, err := scanScorecard(s.queryRow(ctx, q.sql, service, FormatTime(at), FormatTime(q.bound)))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return ScorecardRow{}, fmt.Errorf("scorecard of %q near %s: %w", service, FormatTime(at), err)
		}
		if best == nil || absDuration(r.EvaluatedAt.Sub(at)) < absDuration(best.EvaluatedAt.Sub(at)) {
			best = &r
		}
	}
	if best == nil {
		return ScorecardRow{}, fmt.Errorf("scorecard of %q near %s: %w", service, FormatTime(at), ErrNotFound)
	}
	return *best, nil
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
