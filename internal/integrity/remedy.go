package integrity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/fix"
)

// ErrNoRemedy is returned for a check that names no fix as its remedy.
var ErrNoRemedy = errors.New("check has no remedy")

// ErrRemedyMapping is returned when the violating rows of a check cannot
// supply the parameters of its remedy (a column missing from the sample,
// masked, or of the wrong type).
var ErrRemedyMapping = errors.New("violations cannot be mapped to the remedy's parameters")

// AfterFixActor is the actor recorded for a check run that follows a fix.
var AfterFixActor = auth.System("fix")

// Remedy is what a check's violations ask of its remedy fix: fix.apply
// requests with parameters taken from the violating rows.
type Remedy struct {
	Service    string `json:"service"`
	Check      string `json:"check"`
	Fix        string `json:"fix"`
	RunID      int64  `json:"run_id"`
	Violations int64  `json:"violations"`
	// Rows is how many violating rows the run read (at most 1000).
	Rows int `json:"rows"`
	// Covered is how many of them the requests cover; Skipped how many
	// were left out (NULL in a mapped column, or beyond the limit).
	Covered  int             `json:"covered"`
	Skipped  int             `json:"skipped"`
	Requests []RemedyRequest `json:"requests"`
}

// RemedyRequest is one proposed fix.apply: its parameters and how many
// violating rows it covers.
type RemedyRequest struct {
	Params fix.ApplyParams `json:"params"`
	Rows   int             `json:"rows"`
}

// Request returns the action request for r with the given reason.
func (r RemedyRequest) Request(reason string) action.Request {
	b, _ := json.Marshal(r.Params)
	return action.Request{Kind: fix.ApplyKindName, Service: r.Params.Service, Target: r.Params.Fix, Params: b, Reason: reason}
}

// ProposeRemedy maps the violating rows of a check run (res, as Run
// returns it) to requests of the check's remedy fix. Each fix parameter
// takes its value from the sample column remedy_params names (default: the
// column of the same name). Rows with the same scalar parameters share one
// request; a list parameter ([]int, …) collects the values of all of them,
// so a fix over a list of keys is one request for every violation read.
// At most limit requests are proposed (limit <= 0: no limit); the rest are
// counted as skipped. Each request's parameters are checked against the
// fix's declared types.
func ProposeRemedy(svc *config.Service, res Result, limit int) (*Remedy, error) {
	c := svc.Check(res.Check)
	if c == nil {
		return nil, fmt.Errorf("service %s: %w %q", svc.Name, ErrUnknownCheck, res.Check)
	}
	id := svc.Name + "/" + c.Name
	if c.Remedy == "" {
		return nil, fmt.Errorf("check %s: %w: set remedy: FIX in its config", id, ErrNoRemedy)
	}
	f := svc.Fix(c.Remedy)
	if f == nil {
		return nil, fmt.Errorf("check %s: remedy %q is not a fix of %s", id, c.Remedy, svc.Name)
	}
	if res.Status == StatusError {
		return nil, fmt.Errorf("check %s could not run (%s); nothing to propose until it does", id, res.Error)
	}
	rem := &Remedy{Service: svc.Name, Check: c.Name, Fix: f.Name, RunID: res.RunID, Violations: res.Violations,
		Rows: len(res.violating), Requests: []RemedyRequest{}}
	if res.Violations == 0 {
		return rem, nil
	}
	if len(res.violating) == 0 {
		return nil, fmt.Errorf("check %s: %w: the check reports no violating rows to take parameters from (%s checks have no sample)", id, ErrRemedyMapping, c.Type)
	}
	names := make([]string, 0, len(f.Params))
	for n := range f.Params {
		names = append(names, n)
	}
	sort.Strings(names)
	for p := range c.RemedyParams {
		if _, ok := f.Params[p]; !ok {
			return nil, fmt.Errorf("check %s: %w: remedy_params names %q, which fix %s does not declare (it has: %s)", id, ErrRemedyMapping, p, f.Name, strings.Join(names, ", "))
		}
	}
	cols := make(map[string]string, len(names))
	for _, n := range names {
		col := n
		if m, ok := c.RemedyParams[n]; ok {
			col = m
		}
		if slices.Contains(c.Mask, col) {
			return nil, fmt.Errorf("check %s: %w: parameter %s would come from column %s, which the check masks; map it to an unmasked column in remedy_params", id, ErrRemedyMapping, n, col)
		}
		if _, ok := res.violating[0][col]; !ok {
			have := make([]string, 0, len(res.violating[0]))
			for k := range res.violating[0] {
				have = append(have, k)
			}
			sort.Strings(have)
			return nil, fmt.Errorf("check %s: %w: parameter %s of fix %s needs column %s, which the violating rows do not have (they have: %s); add it to the check's show or map the parameter in remedy_params",
				id, ErrRemedyMapping, n, f.Name, col, strings.Join(have, ", "))
		}
		cols[n] = col
	}

	type group struct {
		scalars map[string]string
		lists   map[string][]string
		seen    map[string]map[string]bool
		rows    int
	}
	var groups []*group
	index := map[string]*group{}
rows:
	for _, row := range res.violating {
		scalars := map[string]string{}
		items := map[string]string{}
		var key []string
		for _, n := range names {
			v := row[cols[n]]
			if v == nil {
				rem.Skipped++
				continue rows
			}
			s := paramText(v)
			if strings.HasPrefix(f.Params[n], "[]") {
				items[n] = s
				continue
			}
			scalars[n] = s
			key = append(key, n+"="+s)
		}
		k := strings.Join(key, "\x00")
		g := index[k]
		if g == nil {
			if limit > 0 && len(groups) == limit {
				rem.Skipped++
				continue
			}
			g = &group{scalars: scalars, lists: map[string][]string{}, seen: map[string]map[string]bool{}}
			index[k] = g
			groups = append(groups, g)
		}
		g.rows++
		for n, s := range items {
			if g.seen[n] == nil {
				g.seen[n] = map[string]bool{}
			}
			if !g.seen[n][s] {
				g.seen[n][s] = true
				g.lists[n] = append(g.lists[n], s)
			}
		}
	}
	for _, g := range groups {
		params := make(map[string]string, len(names))
		for n, s := range g.scalars {
			params[n] = s
		}
		for n, items := range g.lists {
			b, _ := json.Marshal(items)
			params[n] = string(b)
		}
		if _, err := fix.ParseParams(f.Params, params); err != nil {
			return nil, fmt.Errorf("check %s: %w: %w", id, ErrRemedyMapping, err)
		}
		rem.Requests = append(rem.Requests, RemedyRequest{Params: fix.ApplyParams{Service: svc.Name, Fix: f.Name, Params: params, Check: c.Name}, Rows: g.rows})
		rem.Covered += g.rows
	}
	return rem, nil
}

// paramText renders a sampled value the way fix parameters are given.
func paramText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// RunAfterFix re-runs check of svc after the fix.apply action actionID,
// proposed for its violations, was applied, and records the run linked to
// the action (check_runs.fix_action), audited and alerting like any run.
func RunAfterFix(ctx context.Context, deps Deps, svc *config.Service, check string, actionID int64) (Result, error) {
	if deps.Store == nil {
		return Result{}, errors.New("run check after fix: no store")
	}
	checks, err := selectChecks(svc, []string{check})
	if err != nil {
		return Result{}, err
	}
	log := deps.log().With("service", svc.Name, "fix_action", actionID)
	ts := newTargets(svc, nil)
	defer ts.close()
	results := execute(ctx, log, deps.now, ts, svc, checks)
	if err := record(ctx, deps, log, checks, results, AfterFixActor, &actionID); err != nil {
		return results[0], err
	}
	return results[0], nil
}

// AfterFix returns the fix.Deps.Applied hook that re-runs the check a
// fix.apply action was proposed for (its params name the check) with
// RunAfterFix. cfg returns the current config. Errors are logged: the fix
// itself is applied either way.
func AfterFix(deps Deps, cfg func() *config.Config) func(ctx context.Context, a *action.Action, p fix.ApplyParams) {
	return func(ctx context.Context, a *action.Action, p fix.ApplyParams) {
		if p.Check == "" {
			return
		}
		log := deps.log().With("service", p.Service, "check", p.Check, "fix_action", a.ID)
		svc := cfg().Service(p.Service)
		if svc == nil || svc.Check(p.Check) == nil {
			log.Warn("the check this fix was proposed for is no longer configured; not re-run")
			return
		}
		// The change is committed: record the re-run even if the
		// executor's context is ending.
		r, err := RunAfterFix(context.WithoutCancel(ctx), deps, svc, p.Check, a.ID)
		if err != nil {
			log.Error("re-run check after fix", "err", err)
			return
		}
		log.Info("check re-run after fix", "status", r.Status, "violations", r.Violations, "run", r.RunID)
	}
}
