package readiness

import (
	"context"
	"fmt"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// Record stores every service's card of sc, and the overall score under
// service "", as one evaluation in the history.
func Record(ctx context.Context, st *store.Store, sc *Scorecard) error {
	rows := make([]store.ScorecardRow, 0, len(sc.Services)+1)
	for _, c := range sc.Services {
		row := store.ScorecardRow{Service: c.Service, EvaluatedAt: sc.EvaluatedAt, Tier: c.Tier, Score: c.Score,
			Statuses: map[string]string{}, Reasons: map[string]string{}}
		for _, r := range c.Results {
			row.Statuses[r.Control.ID] = string(r.Status)
			row.Reasons[r.Control.ID] = r.Reason
		}
		rows = append(rows, row)
	}
	rows = append(rows, store.ScorecardRow{Service: "", EvaluatedAt: sc.EvaluatedAt, Score: sc.Score})
	if err := st.InsertScorecards(ctx, rows); err != nil {
		return fmt.Errorf("record scorecard: %w", err)
	}
	return nil
}

// Change is a control changing status between two stored evaluations.
type Change struct {
	At      time.Time `json:"at"`
	Control string    `json:"control"`
	From    Status    `json:"from"` // "" for the first evaluation of the control
	To      Status    `json:"to"`
	Reason  string    `json:"reason"`
	Score   float64   `json:"score"` // the service's score at that evaluation
}

// History is a service's stored scores and the status changes of its
// controls, oldest first.
type History struct {
	Service string            `json:"service"`
	Points  []HistoryPoint    `json:"points"`
	Changes []Change          `json:"changes"`
	Current map[string]Status `json:"current"` // control -> status at the newest evaluation
}

// HistoryPoint is one stored evaluation of a service.
type HistoryPoint struct {
	At    time.Time `json:"at"`
	Score float64   `json:"score"`
}

// historyLimit bounds the evaluations read for a history.
const historyLimit = 10000

// LoadHistory reads the stored evaluations of service since from (zero:
// all) and lists when each control (only control, when set) changed
// status: "when did this go red?".
func LoadHistory(ctx context.Context, st *store.Store, service, control string, from time.Time) (*History, error) {
	rows, err := st.ListScorecards(ctx, store.ScorecardFilter{Service: service, From: from, Oldest: true, Limit: historyLimit})
	if err != nil {
		return nil, err
	}
	h := &History{Service: service, Points: []HistoryPoint{}, Changes: []Change{}, Current: map[string]Status{}}
	last := map[string]Status{}
	for _, row := range rows {
		h.Points = append(h.Points, HistoryPoint{At: row.EvaluatedAt, Score: row.Score})
		for _, id := range IDs() {
			if control != "" && id != control {
				continue
			}
			s, ok := row.Statuses[id]
			if !ok {
				continue
			}
			to := Status(s)
			if from, seen := last[id]; !seen || from != to {
				h.Changes = append(h.Changes, Change{At: row.EvaluatedAt, Control: id, From: last[id], To: to, Reason: row.Reasons[id], Score: row.Score})
			}
			last[id] = to
		}
	}
	h.Current = last
	return h, nil
}
