package integrity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// Statuses of a check run.
const (
	StatusPass  = "pass"
	StatusWarn  = "warn"
	StatusFail  = "fail"
	StatusError = "error" // the check could not run
)

// Events Steward sends about checks.
const (
	EventCheckFailed    = "check.failed"
	EventCheckRecovered = "check.recovered"
	EventCheckError     = "check.error"
)

// ErrUnknownCheck is returned for a check name the service does not have.
var ErrUnknownCheck = errors.New("unknown check")

// trackLimit bounds the violating keys fetched per check for the violation
// history (the sample is the first Sample of them).
const trackLimit = 1000

// Notifier queues alerts (the notify outbox).
type Notifier interface {
	Enqueue(ctx context.Context, m notify.Message) ([]int64, error)
}

// Deps are what running checks uses. Store is required by Run; Audit and
// Notifier may be nil (then nothing is audited or alerted).
type Deps struct {
	Store    *store.Store
	Audit    auth.AuditFunc
	Notifier Notifier
	Logger   *slog.Logger
	Now      func() time.Time
}

func (d Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d Deps) log() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// KeyState is the history of one sampled violating row.
type KeyState struct {
	Key        string    `json:"key"`
	FirstSeen  time.Time `json:"first_seen"`
	AgeSeconds float64   `json:"age_seconds"`
	New        bool      `json:"new"`
}

// Result is the outcome of one check.
type Result struct {
	Service    string           `json:"service"`
	Check      string           `json:"check"`
	Type       string           `json:"type"`
	Database   string           `json:"database"`
	Severity   string           `json:"severity"`
	Owner      string           `json:"owner,omitempty"`
	Status     string           `json:"status"`
	Violations int64            `json:"violations"`
	Rows       *int64           `json:"rows,omitempty"` // rows scanned or counted, when known
	Detail     string           `json:"detail,omitempty"`
	Sample     []map[string]any `json:"sample"`
	Keys       []KeyState       `json:"keys,omitempty"` // history of the sampled rows, in sample order
	New        int              `json:"new"`
	Persisting int              `json:"persisting"`
	Resolved   int              `json:"resolved"`
	DurationMS int64            `json:"duration_ms"`
	Query      string           `json:"query"`
	Error      string           `json:"error,omitempty"`
	RunID      int64            `json:"run_id,omitempty"`
	StartedAt  time.Time        `json:"started_at"`
	// FixAction is the fix.apply action this run followed: the check
	// re-ran after a fix proposed for its violations was applied.
	FixAction *int64 `json:"fix_action,omitempty"`

	cols        []string         // columns of rows
	rows        []map[string]any // violating rows as read (up to trackLimit), before masking
	noKeys      bool             // rows lack the key columns: no history
	keyOverride []string         // key columns of rows when not the check's key
	keys        []string         // masked row keys of rows
	complete    bool             // rows holds every violating row
	violating   []map[string]any // every violating row read (up to trackLimit), masked: what a remedy is proposed from
}

// Failed reports a status of fail or error.
func (r Result) Failed() bool { return r.Status == StatusFail || r.Status == StatusError }

// Run runs the named checks of svc (all when names is empty), records each
// run, its violation history and an audit event, and alerts on status
// transitions. A check that could not run has status error; the error
// returned is about names or recording, not about the checks.
func Run(ctx context.Context, deps Deps, svc *config.Service, names []string, actor string) ([]Result, error) {
	if deps.Store == nil {
		return nil, errors.New("run checks: no store")
	}
	checks, err := selectChecks(svc, names)
	if err != nil {
		return nil, err
	}
	log := deps.log().With("service", svc.Name)
	ts := newTargets(svc, nil)
	defer ts.close()
	results := execute(ctx, log, deps.now, ts, svc, checks)
	return results, record(ctx, deps, log, checks, results, actor, nil)
}

// RunAgainst runs the checks of svc on database dbName against the
// database at url instead (a restored copy, in a drill). Nothing is
// recorded, alerted or audited: the caller reports the results. Checks
// that also read another database (reconcile) are left out.
func RunAgainst(ctx context.Context, deps Deps, svc *config.Service, dbName, url string) ([]Result, error) {
	if svc.Database(dbName) == nil {
		return nil, fmt.Errorf("service %s has no database %q", svc.Name, dbName)
	}
	var checks []*config.Check
	for i := range svc.Checks {
		c := &svc.Checks[i]
		if c.Database != dbName {
			continue
		}
		if c.Type == "reconcile" && (c.Left.Database != "" && c.Left.Database != dbName || c.Right.Database != "" && c.Right.Database != dbName) {
			continue
		}
		cp := *c
		cp.Replica = false
		checks = append(checks, &cp)
	}
	log := deps.log().With("service", svc.Name, "against", "copy")
	ts := newTargets(svc, map[string]string{dbName: url})
	defer ts.close()
	return execute(ctx, log, deps.now, ts, svc, checks), nil
}

func selectChecks(svc *config.Service, names []string) ([]*config.Check, error) {
	if len(names) == 0 {
		out := make([]*config.Check, len(svc.Checks))
		for i := range svc.Checks {
			out[i] = &svc.Checks[i]
		}
		return out, nil
	}
	var out []*config.Check
	for _, n := range names {
		c := svc.Check(n)
		if c == nil {
			var known []string
			for _, k := range svc.Checks {
				known = append(known, k.Name)
			}
			return nil, fmt.Errorf("service %s: %w %q (configured: %s)", svc.Name, ErrUnknownCheck, n, strings.Join(known, ", "))
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// History returns the recorded runs of a check, newest first.
func History(ctx context.Context, st *store.Store, service, check string, limit int) ([]Result, error) {
	rows, err := st.ListCheckRuns(ctx, store.CheckRunFilter{Service: service, Check: check, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(rows))
	for _, r := range rows {
		out = append(out, fromRow(r))
	}
	return out, nil
}
