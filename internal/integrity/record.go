package integrity

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// anomalyRuns is how many recent runs a row_count check's deviation is
// measured against.
const anomalyRuns = 10

// record applies the checks that need history (row_count deviation),
// stores the runs (one transaction), updates the violation history, audits
// each run and alerts on status transitions. fixAction, when set, is the
// fix.apply action the runs follow (check_runs.fix_action).
func record(ctx context.Context, deps Deps, log *slog.Logger, checks []*config.Check, results []Result, actor string, fixAction *int64) error {
	st := deps.Store
	prevStatus := make([]string, len(results)) // last run that was not an error
	prevAny := make([]string, len(results))
	rows := make([]store.CheckRunRow, len(results))
	for i := range results {
		c, r := checks[i], &results[i]
		if c.Type == "row_count" && c.Deviation != "" && r.Status != StatusError && r.Rows != nil {
			if err := deviation(ctx, st, c, r); err != nil {
				return err
			}
		}
		prev, err := st.ListCheckRuns(ctx, store.CheckRunFilter{Service: r.Service, Check: r.Check, Limit: 1})
		if err != nil {
			return err
		}
		if len(prev) > 0 {
			prevAny[i] = prev[0].Status
			prevStatus[i] = prev[0].Status
			if prev[0].Status == StatusError {
				ok, err := st.ListCheckRuns(ctx, store.CheckRunFilter{Service: r.Service, Check: r.Check, NotStatuses: []string{StatusError}, Limit: 1})
				if err != nil {
					return err
				}
				prevStatus[i] = ""
				if len(ok) > 0 {
					prevStatus[i] = ok[0].Status
				}
			}
		}
		sample, err := json.Marshal(r.Sample)
		if err != nil {
			return fmt.Errorf("check %s/%s: encode sample: %w", r.Service, r.Check, err)
		}
		rows[i] = store.CheckRunRow{
			Service: r.Service, Check: r.Check, Database: r.Database, Status: r.Status, Violations: r.Violations, RowCount: r.Rows,
			DurationMS: r.DurationMS, Query: r.Query, Sample: string(sample), Error: r.Error, Actor: actor, StartedAt: r.StartedAt,
			FixAction: fixAction,
		}
	}
	rows, err := st.InsertCheckRuns(ctx, rows)
	if err != nil {
		return err
	}
	for i := range results {
		c, r := checks[i], &results[i]
		r.RunID, r.FixAction = rows[i].ID, fixAction
		if r.Status != StatusError && c.Type != "freshness" && c.Type != "row_count" && !r.noKeys {
			d, err := st.TrackViolations(ctx, r.Service, r.Check, r.keys, r.complete, r.StartedAt)
			if err != nil {
				return err
			}
			r.New, r.Persisting, r.Resolved = d.New, d.Persisting, d.Resolved
			for j := range r.Sample {
				if j >= len(r.keys) {
					break
				}
				first := d.FirstSeen[r.keys[j]]
				r.Keys = append(r.Keys, KeyState{Key: r.keys[j], FirstSeen: first, AgeSeconds: r.StartedAt.Sub(first).Seconds(),
					New: first.Equal(r.StartedAt.UTC().Truncate(time.Microsecond))})
			}
		}
		if deps.Audit != nil {
			details := map[string]any{"run_id": r.RunID, "type": r.Type, "database": r.Database, "violations": r.Violations,
				"duration_ms": r.DurationMS, "new": r.New, "persisting": r.Persisting, "resolved": r.Resolved}
			if r.Error != "" {
				details["error"] = r.Error
			}
			if fixAction != nil {
				details["fix_action"] = *fixAction
			}
			if err := deps.Audit(ctx, actor, "check.run", r.Service+"/"+r.Check, r.Status, details); err != nil {
				return fmt.Errorf("audit check %s/%s: %w", r.Service, r.Check, err)
			}
		}
		for _, m := range transitions(c, r, prevStatus[i], prevAny[i]) {
			if deps.Notifier == nil {
				log.Warn("check status changed but no notifier is configured", "check", r.Check, "event", m.Event)
				continue
			}
			if _, err := deps.Notifier.Enqueue(ctx, m); err != nil {
				return fmt.Errorf("alert for check %s/%s: %w", r.Service, r.Check, err)
			}
		}
	}
	return nil
}

// deviation fails a row_count check whose count moved from the average of
// its recent runs by more than the configured deviation.
func deviation(ctx context.Context, st *store.Store, c *config.Check, r *Result) error {
	limit, err := config.ParsePercent(c.Deviation)
	if err != nil {
		return fmt.Errorf("check %s/%s: deviation: %w", r.Service, r.Check, err)
	}
	runs, err := st.ListCheckRuns(ctx, store.CheckRunFilter{Service: r.Service, Check: r.Check, NotStatuses: []string{StatusError}, Limit: anomalyRuns})
	if err != nil {
		return err
	}
	var sum float64
	var n int
	for _, run := range runs {
		if run.RowCount != nil {
			sum += float64(*run.RowCount)
			n++
		}
	}
	if n == 0 {
		r.Detail += "; no history yet for the deviation"
		return nil
	}
	avg := sum / float64(n)
	cur := float64(*r.Rows)
	change := math.Inf(1)
	if avg > 0 {
		change = math.Abs(cur-avg) / avg
	} else if cur == 0 {
		change = 0
	}
	if change > limit {
		r.Violations = 1
		r.Status = StatusFail
		if r.Severity == StatusWarn {
			r.Status = StatusWarn
		}
		r.Detail = fmt.Sprintf("%d rows, %.1f%% from the average %.0f of the last %d runs (deviation allowed %s)", *r.Rows, change*100, avg, n, c.Deviation)
	} else {
		r.Detail += fmt.Sprintf("; %.1f%% from the average of the last %d runs", change*100, n)
	}
	return nil
}

func failing(s string) bool { return s == StatusFail || s == StatusWarn }

// transitions returns the alerts a run causes: failed when it starts
// failing (the first run counts as after a pass), recovered when it passes
// after failing; error and its recovery likewise, on their own key.
func transitions(c *config.Check, r *Result, prevStatus, prevAny string) []notify.Message {
	id := r.Service + "/" + r.Check
	fields := map[string]string{"check": id, "type": r.Type, "database": r.Database}
	if c.Owner != "" {
		fields["owner"] = c.Owner
	}
	var out []notify.Message
	switch {
	case failing(r.Status) && !failing(prevStatus):
		sev := notify.SeverityCritical
		if r.Status == StatusWarn {
			sev = notify.SeverityWarning
		}
		f := cloneFields(fields)
		f["violations"] = fmt.Sprint(r.Violations)
		if c.Remedy != "" {
			f["remedy"] = c.Remedy
		}
		out = append(out, notify.Message{Event: EventCheckFailed, Severity: sev, Service: r.Service, DedupKey: "check:" + id, Fields: f,
			Title: fmt.Sprintf("check %s %s: %d violations", id, strings.ToUpper(r.Status), r.Violations), Text: r.Detail})
	case r.Status == StatusPass && failing(prevStatus):
		out = append(out, notify.Message{Event: EventCheckRecovered, Severity: notify.SeverityInfo, Service: r.Service, DedupKey: "check:" + id,
			Resolve: true, Fields: fields, Title: fmt.Sprintf("check %s passes again", id), Text: r.Detail})
	}
	switch {
	case r.Status == StatusError && prevAny != StatusError:
		f := cloneFields(fields)
		out = append(out, notify.Message{Event: EventCheckError, Severity: notify.SeverityWarning, Service: r.Service, DedupKey: "check-error:" + id,
			Fields: f, Title: fmt.Sprintf("check %s could not run", id), Text: r.Error})
	case r.Status != StatusError && prevAny == StatusError:
		out = append(out, notify.Message{Event: EventCheckError, Severity: notify.SeverityInfo, Service: r.Service, DedupKey: "check-error:" + id,
			Resolve: true, Fields: fields, Title: fmt.Sprintf("check %s runs again", id)})
	}
	return out
}

func cloneFields(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// fromRow turns a stored run back into a result.
func fromRow(row store.CheckRunRow) Result {
	r := Result{Service: row.Service, Check: row.Check, Database: row.Database, Status: row.Status, Violations: row.Violations,
		Rows: row.RowCount, DurationMS: row.DurationMS, Query: row.Query, Error: row.Error, RunID: row.ID, StartedAt: row.StartedAt,
		FixAction: row.FixAction, Sample: []map[string]any{}}
	_ = json.Unmarshal([]byte(row.Sample), &r.Sample)
	return r
}
