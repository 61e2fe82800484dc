package readiness

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

// ErrUnknownService is returned by Evaluate for a service not in the config.
var ErrUnknownService = fmt.Errorf("unknown service")

// checkFunc evaluates one control for one service. It fills Status,
// Reason, Fix and Evidence; the evaluator adds the control, applies waivers
// and turns an error into an unknown result that names it.
type checkFunc func(ctx context.Context, en *env) (Result, error)

// env is what a check sees: the service, its thresholds, the evaluation's
// time and the evidence shared by every service of one evaluation.
type env struct {
	*shared
	svc *config.Service
	th  Thresholds
}

// shared holds what one evaluation reads once for all services.
type shared struct {
	e   *Evaluator
	cfg *config.Config
	now time.Time

	mu    sync.Mutex
	audit map[string][]store.AuditRecord // action + "\x00" + target -> events, newest first
	once  map[string]*onceValue
}

type onceValue struct {
	done bool
	v    any
	err  error
}

// memo computes fn once per evaluation under key. An evaluation runs its
// checks one after the other, so fn runs without the lock (it may read
// other memoized values).
func (sh *shared) memo(key string, fn func() (any, error)) (any, error) {
	sh.mu.Lock()
	o, ok := sh.once[key]
	sh.mu.Unlock()
	if ok && o.done {
		return o.v, o.err
	}
	v, err := fn()
	sh.mu.Lock()
	sh.once[key] = &onceValue{done: true, v: v, err: err}
	sh.mu.Unlock()
	return v, err
}

func (e *Evaluator) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Evaluator) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Evaluator) evaluate(ctx context.Context, service string) (*Scorecard, error) {
	if e.Store == nil || e.Config == nil {
		return nil, fmt.Errorf("readiness: the evaluator needs a store and a config")
	}
	cfg := e.Config()
	if cfg == nil {
		return nil, fmt.Errorf("readiness: no config loaded")
	}
	sh := &shared{e: e, cfg: cfg, now: e.now(), audit: map[string][]store.AuditRecord{}, once: map[string]*onceValue{}}
	var services []*config.Service
	if service != "" {
		svc := cfg.Service(service)
		if svc == nil {
			var names []string
			for _, s := range cfg.Services {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("%w %q: the config defines %v", ErrUnknownService, service, names)
		}
		services = append(services, svc)
	} else {
		for i := range cfg.Services {
			services = append(services, &cfg.Services[i])
		}
	}
	card := &Scorecard{EvaluatedAt: sh.now, Services: []ServiceCard{}}
	for _, svc := range services {
		sc, err := e.evaluateService(ctx, sh, svc)
		if err != nil {
			return nil, err
		}
		card.Services = append(card.Services, sc)
	}
	card.Score = overallScore(cfg.Readiness, card.Services)
	if service == "" {
		card.Previous = e.previous(ctx, "", sh.now)
	} else if len(card.Services) == 1 {
		card.Previous = card.Services[0].Previous
	}
	return card, nil
}

func (e *Evaluator) evaluateService(ctx context.Context, sh *shared, svc *config.Service) (ServiceCard, error) {
	en := &env{shared: sh, svc: svc, th: ThresholdsFor(sh.cfg.Readiness, svc.Tier)}
	sc := ServiceCard{Service: svc.Name, Tier: svc.Tier, Results: make([]Result, 0, len(catalog))}
	for _, c := range Catalog() {
		c.Weight = ControlWeight(sh.cfg.Readiness, c)
		check := checks[c.ID]
		var r Result
		if check == nil {
			r = Result{Status: Unknown, Reason: "no evaluation is registered for this control"}
		} else {
			var err error
			r, err = check(ctx, en)
			if err != nil {
				if ctx.Err() != nil {
					return ServiceCard{}, ctx.Err()
				}
				e.logger().Warn("readiness control could not be evaluated", "service", svc.Name, "control", c.ID, "err", err)
				r = Result{Status: Unknown, Reason: "could not read the evidence: " + err.Error(),
					Fix: "check that the store is reachable, then run steward score again"}
			}
		}
		r.Control = c
		if r.Evidence == nil {
			r.Evidence = []Evidence{}
		}
		if r.Status == Pass {
			r.Fix = ""
		}
		if err := e.applyWaiver(ctx, en, &r); err != nil {
			return ServiceCard{}, err
		}
		sc.Results = append(sc.Results, r)
	}
	sc.Score = ServiceScore(sc.Results)
	sc.Previous = e.previous(ctx, svc.Name, sh.now)
	return sc, nil
}

// previousAge is how far back Previous looks, and previousTolerance how far
// from that instant a stored evaluation may be.
const (
	previousAge       = 30 * 24 * time.Hour
	previousTolerance = 7 * 24 * time.Hour
)

// previous is the stored score nearest to 30 days before now, or nil.
func (e *Evaluator) previous(ctx context.Context, service string, now time.Time) *float64 {
	row, err := e.Store.ScorecardNear(ctx, service, now.Add(-previousAge), previousTolerance)
	if err != nil {
		return nil
	}
	v := row.Score
	return &v
}

// statusValue is what a status contributes to a score.
func statusValue(s Status) (float64, bool) {
	switch s {
	case Pass:
		return 1, true
	case Warn:
		return 0.5, true
	case Fail:
		return 0, true
	}
	return 0, false
}

// ServiceScore is 100 × Σ weight·value / Σ weight over the results that are
// not unknown (pass 1, warn 0.5, fail 0), rounded to one decimal; 0 when no
// control could be evaluated.
func ServiceScore(results []Result) float64 {
	var num, den float64
	for _, r := range results {
		v, ok := statusValue(r.Status)
		if !ok || r.Control.Weight <= 0 {
			continue
		}
		num += r.Control.Weight * v
		den += r.Control.Weight
	}
	if den == 0 {
		return 0
	}
	return round1(100 * num / den)
}

// defaultTierWeights weigh the services of each tier in the overall score.
var defaultTierWeights = map[int]float64{1: 4, 2: 3, 3: 2, 4: 1}

// TierWeight is the weight of a tier's services in the overall score.
func TierWeight(r config.Readiness, tier int) float64 {
	if w, ok := r.TierWeights[strconv.Itoa(tier)]; ok {
		return float64(w)
	}
	if w, ok := defaultTierWeights[tier]; ok {
		return w
	}
	return 1
}

// ControlWeight is the configured weight of c, or its catalog default.
func ControlWeight(r config.Readiness, c Control) float64 {
	if w, ok := r.Weights[c.ID]; ok {
		return float64(w)
	}
	return c.Weight
}

// overallScore is Σ tierWeight·score / Σ tierWeight over the services.
func overallScore(r config.Readiness, cards []ServiceCard) float64 {
	var num, den float64
	for _, c := range cards {
		w := TierWeight(r, c.Tier)
		num += w * c.Score
		den += w
	}
	if den == 0 {
		return 0
	}
	return round1(num / den)
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// auditEvents returns the newest events (at most 200) with action and
// target, newest first, read once per evaluation.
func (sh *shared) auditEvents(ctx context.Context, action, target string) ([]store.AuditRecord, error) {
	key := action + "\x00" + target
	sh.mu.Lock()
	evs, ok := sh.audit[key]
	sh.mu.Unlock()
	if ok {
		return evs, nil
	}
	evs, err := sh.e.Store.ListAudit(ctx, store.AuditFilter{Action: action, Target: target, Limit: 200})
	if err != nil {
		return nil, err
	}
	// ListAudit matches the action as a prefix; keep exact matches.
	evs = slices.DeleteFunc(evs, func(r store.AuditRecord) bool { return r.Action != action })
	sh.mu.Lock()
	sh.audit[key] = evs
	sh.mu.Unlock()
	return evs, nil
}

// auditFor finds the event with action and target whose details[field]
// equals id (a run or row id), and sets the evidence's audit fields and
// link from it. Without a match the evidence keeps its own link.
func (sh *shared) auditFor(ctx context.Context, ev *Evidence, action, target, field string, id int64) error {
	evs, err := sh.auditEvents(ctx, action, target)
	if err != nil {
		return err
	}
	for _, r := range evs {
		if field != "" {
			var d map[string]any
			if json.Unmarshal([]byte(r.Details), &d) != nil {
				continue
			}
			if n, ok := d[field].(float64); !ok || int64(n) != id {
				continue
			}
		}
		setAudit(ev, r)
		return nil
	}
	return nil
}

// setAudit points ev at audit event r.
func setAudit(ev *Evidence, r store.AuditRecord) {
	ev.AuditSeq, ev.AuditHash = r.Seq, r.Hash
	if ev.Link == "" {
		ev.Link = auditLink(r.Seq)
	}
}

func auditLink(seq int64) string { return fmt.Sprintf("/audit?seq=%d", seq) }

func serviceLink(svc string) string { return "/services/" + svc }

// ago formats how long before now t was, like 3h or 12d.
func ago(now, t time.Time) string { return fmtDuration(now.Sub(t)) }

// fmtDuration prints d compactly: 0.4s, 45s, 12m, 1.5h, 30h, 3.5d, 40d.
func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%.0fm", d.Minutes())
	case d < 10*time.Hour && d%time.Hour != 0:
		return fmt.Sprintf("%.1fh", d.Hours())
	case d < 48*time.Hour:
		return fmt.Sprintf("%.0fh", d.Hours())
	case d < 10*day && d%day != 0:
		return fmt.Sprintf("%.1fd", d.Hours()/24)
	default:
		return fmt.Sprintf("%.0fd", d.Hours()/24)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
