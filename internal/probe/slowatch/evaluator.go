package slowatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/probe/slo"
	"github.com/stewardhq/steward/internal/store"
)

// Notifier queues a notification; the outbox delivers it (notify.Outbox).
type Notifier interface {
	Enqueue(ctx context.Context, m notify.Message) ([]int64, error)
}

// Notification events.
const (
	EventProbeDown     = "probe.down"
	EventProbeDegraded = "probe.degraded"
	EventSLOBurn       = "slo.burn_rate"
)

// Deps are what an Evaluator works with.
type Deps struct {
	Store *store.Store
	// Notifier receives the alerts; nil records them without sending.
	Notifier Notifier
	// Audit records each alert opened and resolved; nil audits nothing.
	Audit  auth.AuditFunc
	Logger *slog.Logger
	// Metrics exports the steward_slo_* gauges; nil exports nothing.
	Metrics *Metrics
}

// Evaluator evaluates the SLOs and alerts of every configured probe. Its
// in-memory series survive between evaluations; everything an alert
// decision depends on is saved in the store. Safe for concurrent use (one
// evaluation at a time).
type Evaluator struct {
	deps Deps
	log  *slog.Logger

	mu  sync.Mutex
	mem *memory
}

// New returns an Evaluator.
func New(deps Deps) *Evaluator {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Evaluator{deps: deps, log: log.With("component", "slo")}
}

// Outcome summarizes one evaluation.
type Outcome struct {
	Probes   int `json:"probes"`
	Opened   int `json:"opened"`
	Resolved int `json:"resolved"`
}

// Run evaluates cfg at now: it reads the results written since the last
// run, moves the probes' states, opens and resolves alerts, and saves its
// state.
func (e *Evaluator) Run(ctx context.Context, cfg *config.Config, now time.Time) (Outcome, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out Outcome
	m := buildModel(cfg)
	if e.mem == nil || e.mem.hash != m.hash {
		mem, err := load(ctx, e.deps.Store, m, "", "", now)
		if err != nil {
			return out, err
		}
		e.mem = mem
	} else if err := e.mem.catchUp(ctx, e.deps.Store); err != nil {
		return out, err
	}
	e.mem.finalize(now)

	saved, err := loadStates(ctx, e.deps.Store)
	if err != nil {
		return out, err
	}
	openRows, err := e.deps.Store.ListProbeAlerts(ctx, "", true, 10000)
	if err != nil {
		return out, err
	}
	open := map[string]store.ProbeAlertRow{}
	for _, r := range openRows {
		open[alertID(r.Service, r.Probe, r.Name)] = r
	}

	// 1. The probes' states, from the checks since the last run.
	states := map[string]*savedState{}
	for _, ps := range m.probes {
		pd := e.mem.probes[ps.key()]
		st := saved[ps.key()]
		if st == nil {
			st = &savedState{}
		}
		if pd != nil {
			// Results arrive in id order; an agent's late upload can be
			// older than what came before it.
			slices.SortStableFunc(pd.fresh, func(a, b verdict) int { return a.At.Compare(b.At) })
			st.step(pd.fresh, ps.Threshold, ps.Confirmations)
			pd.fresh = pd.fresh[:0]
		}
		st.Alerts = onlyObjectives(st.Alerts, ps.Objectives)
		states[ps.key()] = st
		out.Probes++
	}
	// A probe is down for its dependents when its state is down or a page
	// alert of its objectives is active.
	pageActive := func(key string) bool {
		for _, a := range states[key].Alerts {
			if a.Severity == slo.Page && a.Active {
				return true
			}
		}
		return false
	}
	depDown := func(ps *probeSpec) string {
		seen := map[string]bool{ps.key(): true}
		stack := append([]string(nil), ps.DependsOn...)
		for len(stack) > 0 {
			d := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[d] || states[d] == nil {
				continue
			}
			seen[d] = true
			if states[d].State == StateDown || pageActive(d) {
				return d
			}
			stack = append(stack, m.byKey[d].DependsOn...)
		}
		return ""
	}

	maintFrom := now.Add(-m.longest() - time.Hour)
	var events []alertEvent
	// 2. Per probe: state alerts and burn-rate alerts.
	for _, ps := range m.probes {
		pd := e.mem.probes[ps.key()]
		st := states[ps.key()]
		svc := m.services[ps.Service]
		maint := svc.maintenance(maintFrom, now.Add(time.Minute))
		reason, inMaint := svc.maintenanceReason(now)
		dep := depDown(ps)
		mute := inMaint || dep != ""

		desired := ""
		if st.State == StateDown || st.State == StateDegraded {
			desired = st.State
		}
		for _, name := range []string{StateDown, StateDegraded} {
			_, isOpen := open[alertID(ps.Service, ps.Probe, name)]
			switch {
			case isOpen && name != desired:
				events = append(events, alertEvent{kind: slo.EventResolve, service: ps.Service, probe: ps.Probe, name: name, state: st, now: desired})
			case !isOpen && name == desired && ps.Alert && !mute:
				events = append(events, alertEvent{kind: slo.EventOpen, service: ps.Service, probe: ps.Probe, name: name, state: st})
			case !isOpen && name == desired && ps.Alert:
				e.log.DebugContext(ctx, "alert not opened", "service", ps.Service, "probe", ps.Probe, "alert", name,
					"maintenance", inMaint, "maintenance_reason", reason, "dependency_down", dep)
			}
		}

		if pd == nil || len(ps.Objectives) == 0 {
			st.Alerts = nil
			continue
		}
		obs := make([]slo.Observation, 0, len(ps.Objectives))
		for _, o := range ps.Objectives {
			s := pd.series[o.Name].Evaluate(maint, now)
			s.Muted = s.Muted || dep != ""
			obs = append(obs, slo.Observation{Objective: o.Name, Status: s})
			e.deps.Metrics.setStatus(ps.Service, ps.Probe, o.Name, s)
		}
		evs, alerts := stepAlerter(st.Alerts, ps.Confirmations, now, obs)
		st.Alerts = alerts
		if ps.Alert {
			for _, ev := range evs {
				events = append(events, burnEvent(ev, ps.Service, ps.Probe, st))
			}
		}
	}
	// 3. The services' own objectives.
	svcStates := map[string]*savedState{}
	for _, name := range m.order {
		ss := m.services[name]
		sd := e.mem.services[name]
		if sd == nil || len(ss.Objectives) == 0 {
			continue
		}
		st := saved[name+"/"]
		if st == nil {
			st = &savedState{}
		}
		st.Alerts = onlyObjectives(st.Alerts, ss.Objectives)
		svcStates[name] = st
		maint := ss.maintenance(maintFrom, now.Add(time.Minute))
		obs := make([]slo.Observation, 0, len(ss.Objectives))
		for _, o := range ss.Objectives {
			s := sd.series[o.Name].Evaluate(maint, now)
			obs = append(obs, slo.Observation{Objective: o.Name, Status: s})
			e.deps.Metrics.setStatus(name, "", o.Name, s)
		}
		evs, alerts := stepAlerter(st.Alerts, 0, now, obs)
		st.Alerts = alerts
		for _, ev := range evs {
			events = append(events, burnEvent(ev, name, "", st))
		}
	}

	// Alerts of probes and objectives no longer configured (or whose
	// alert was turned off) are resolved.
	known := map[string]bool{}
	for _, ps := range m.probes {
		if ps.Alert {
			for _, n := range alertNames(ps.Objectives, true) {
				known[alertID(ps.Service, ps.Probe, n)] = true
			}
		}
	}
	for _, ss := range m.services {
		for _, n := range alertNames(ss.Objectives, false) {
			known[alertID(ss.Name, "", n)] = true
		}
	}
	for id, r := range open {
		if !known[id] {
			events = append(events, alertEvent{kind: slo.EventResolve, service: r.Service, probe: r.Probe, name: r.Name, state: &savedState{}, now: "no longer configured"})
		}
	}

	// 4. Alerts first, then the state: a crash in between re-sends
	// nothing, since an open alert is found open again.
	var errs []error
	for _, ev := range events {
		opened, err := e.apply(ctx, ev, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case opened && ev.kind == slo.EventOpen:
			out.Opened++
		case opened:
			out.Resolved++
		}
	}
	if err := saveStates(ctx, e.deps.Store, now, states, svcStates, saved); err != nil {
		errs = append(errs, err)
	}
	if rows, err := e.deps.Store.ListProbeAlerts(ctx, "", true, 10000); err == nil {
		e.deps.Metrics.setOpen(rows)
	}
	e.deps.Metrics.forgetOthers(m)
	return out, errors.Join(errs...)
}

// stepAlerter restores an Alerter from saved, steps it once and returns
// its events and new state.
func stepAlerter(saved []slo.AlertState, confirm int, now time.Time, obs []slo.Observation) ([]slo.Event, []slo.AlertState) {
	a, err := slo.NewAlerter(slo.AlerterConfig{Confirmations: confirm})
	if err != nil {
		return nil, saved
	}
	a.Restore(saved)
	evs := a.Step(now, obs)
	return evs, a.States()
}

// onlyObjectives drops the saved alerter states of objectives no longer
// configured (their open alerts are resolved as unknown).
func onlyObjectives(states []slo.AlertState, objs []slo.Objective) []slo.AlertState {
	return slices.DeleteFunc(states, func(a slo.AlertState) bool {
		return !slices.ContainsFunc(objs, func(o slo.Objective) bool { return o.Name == a.Objective })
	})
}

func alertID(service, probe, name string) string { return service + "/" + probe + "/" + name }

// alertEvent is one alert to open or resolve.
type alertEvent struct {
	kind           slo.EventKind
	service, probe string
	name           string // down, degraded, OBJECTIVE/SEVERITY
	state          *savedState
	burn           *slo.Event
	now            string // for a resolved state alert: the state now ("" up)
}

func burnEvent(ev slo.Event, service, probe string, st *savedState) alertEvent {
	return alertEvent{kind: ev.Kind, service: service, probe: probe, name: ev.Objective + "/" + string(ev.Severity), state: st, burn: &ev}
}

func (ev alertEvent) severity() string {
	switch {
	case strings.Contains(ev.name, "/"):
		_, sev, _ := strings.Cut(ev.name, "/")
		return sev
	case ev.name == StateDown:
		return string(slo.Page)
	}
	return string(slo.Ticket)
}

func (ev alertEvent) target() string {
	if ev.probe == "" {
		return ev.service
	}
	return ev.service + "/" + ev.probe
}

// apply records and sends one alert event; it reports whether it changed
// anything (false: the alert was already open, or nothing was open).
func (e *Evaluator) apply(ctx context.Context, ev alertEvent, now time.Time) (bool, error) {
	msg := e.message(ev)
	var row store.ProbeAlertRow
	if ev.kind == slo.EventOpen {
		details, _ := json.Marshal(msg.Fields)
		r, opened, err := e.deps.Store.OpenProbeAlert(ctx, store.ProbeAlertRow{
			Service: ev.service, Probe: ev.probe, Name: ev.name, Severity: ev.severity(), Title: msg.Title,
			Details: string(details), OpenedAt: now,
		}, func(id int64) string { return fmt.Sprintf("steward-probe-alert-%d", id) })
		if err != nil || !opened {
			return false, err
		}
		row = r
	} else {
		r, ok, err := e.deps.Store.ResolveProbeAlert(ctx, ev.service, ev.probe, ev.name, now)
		if err != nil || !ok {
			return false, err
		}
		row = r
		msg.Resolve = true
	}
	msg.DedupKey = row.DedupKey
	action := "probe.alert.open"
	if msg.Resolve {
		action = "probe.alert.resolve"
	}
	e.log.InfoContext(ctx, "probe alert", "action", action, "service", ev.service, "probe", ev.probe, "alert", ev.name, "id", row.ID)
	var errs []error
	if e.deps.Notifier != nil {
		if _, err := e.deps.Notifier.Enqueue(ctx, msg); err != nil {
			errs = append(errs, fmt.Errorf("queue notification of alert %d (%s %s): %w", row.ID, ev.target(), ev.name, err))
		}
	}
	if e.deps.Audit != nil {
		details := map[string]any{"alert": ev.name, "severity": row.Severity, "id": row.ID, "dedup_key": row.DedupKey, "title": msg.Title}
		if err := e.deps.Audit(ctx, auth.System("slo"), action, "probe:"+ev.target(), "ok", details); err != nil {
			errs = append(errs, fmt.Errorf("audit alert %d: %w", row.ID, err))
		}
	}
	return true, errors.Join(errs...)
}

// message renders an alert event as a notification.
func (e *Evaluator) message(ev alertEvent) notify.Message {
	m := notify.Message{Service: ev.service, Fields: map[string]string{"alert": ev.name}}
	if ev.probe != "" {
		m.Fields["probe"] = ev.target()
	}
	sev := notify.SeverityWarning
	if ev.severity() == string(slo.Page) {
		sev = notify.SeverityCritical
	}
	m.Severity = sev
	switch {
	case strings.Contains(ev.name, "/"):
		var a slo.Alert
		if ev.burn != nil {
			a = ev.burn.Alert
		}
		m.Event = EventSLOBurn
		obj, _, _ := strings.Cut(ev.name, "/")
		m.Fields["objective"] = obj
		m.Fields["window"] = a.Window
		m.Fields["burn_rate"] = fmt.Sprintf("%.2f", a.BurnRate)
		m.Fields["threshold"] = fmt.Sprintf("%.2f", a.Threshold)
		if ev.kind == slo.EventOpen {
			m.Title = fmt.Sprintf("%s %s error budget burning %.1f× over %s (%s)", ev.target(), obj, a.BurnRate, a.Window, ev.severity())
			m.Text = fmt.Sprintf("The %s objective of %s spends its error budget %.1f times as fast as it lasts over the objective window (threshold %.1f over %s).\nDetails: steward slo status %s", obj, ev.target(), a.BurnRate, a.Threshold, a.Window, ev.service)
		} else {
			m.Title = fmt.Sprintf("RESOLVED: %s %s error budget burn over %s", ev.target(), obj, a.Window)
			m.Text = fmt.Sprintf("The %s objective of %s no longer burns its budget faster than %.1f×.", obj, ev.target(), a.Threshold)
		}
	default:
		m.Event = EventProbeDown
		if ev.name == StateDegraded {
			m.Event = EventProbeDegraded
		}
		st := ev.state
		if ev.kind == slo.EventOpen {
			m.Fields["state"] = ev.name
			m.Fields["since"] = st.Since.UTC().Format(time.RFC3339)
			m.Title = fmt.Sprintf("%s is %s", ev.target(), ev.name)
			if st.Reason != "" {
				m.Title += ": " + truncate(st.Reason, 160)
				m.Fields["reason"] = truncate(st.Reason, 500)
			}
			m.Text = fmt.Sprintf("Probe %s has been %s since %s.\nDetails: steward probe status %s", ev.target(), ev.name, st.Since.UTC().Format(time.RFC3339), ev.service)
		} else {
			now := ev.now
			if now == "" {
				now = "recovered"
			}
			m.Fields["state"] = now
			m.Title = fmt.Sprintf("RESOLVED: %s is no longer %s (%s)", ev.target(), ev.name, now)
			m.Text = fmt.Sprintf("Probe %s is %s.", ev.target(), now)
		}
	}
	return m
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func loadStates(ctx context.Context, st *store.Store) (map[string]*savedState, error) {
	rows, err := st.LoadSLOStates(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]*savedState{}
	for _, r := range rows {
		var s savedState
		if err := json.Unmarshal([]byte(r.State), &s); err != nil {
			continue // unreadable: start that one afresh
		}
		out[r.Service+"/"+r.Probe] = &s
	}
	return out, nil
}

func saveStates(ctx context.Context, st *store.Store, now time.Time, probes, services map[string]*savedState, before map[string]*savedState) error {
	var rows []store.SLOState
	keep := map[string]bool{}
	for key, s := range probes {
		service, probe, _ := strings.Cut(key, "/")
		b, _ := json.Marshal(s)
		rows = append(rows, store.SLOState{Service: service, Probe: probe, State: string(b), UpdatedAt: now})
		keep[key] = true
	}
	for name, s := range services {
		b, _ := json.Marshal(s)
		rows = append(rows, store.SLOState{Service: name, State: string(b), UpdatedAt: now})
		keep[name+"/"] = true
	}
	var remove [][2]string
	for key := range before {
		if !keep[key] {
			service, probe, _ := strings.Cut(key, "/")
			remove = append(remove, [2]string{service, probe})
		}
	}
	return st.SaveSLOStates(ctx, rows, remove)
}
