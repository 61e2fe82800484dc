package slowatch

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe/slo"
	"github.com/stewardhq/steward/internal/store"
)

// ObjectiveStatus is the state of one objective, as steward slo status and
// GET /api/v1/slo show it.
type ObjectiveStatus struct {
	Service string `json:"service"`
	// Probe is empty for an objective of the whole service.
	Probe     string `json:"probe,omitempty"`
	Objective string `json:"objective"` // availability or latency
	// Target is in percent (99.9); LatencyThresholdMS applies to latency.
	Target             float64 `json:"target"`
	LatencyThresholdMS int64   `json:"latency_threshold_ms,omitempty"`
	Window             string  `json:"window"`
	// SLI is the good fraction over the window (1 without checks).
	SLI float64 `json:"sli"`
	// Good and Counted count the checks over the window; Excluded those
	// left out: error, broken or missed (ExcludedBroken) and inside
	// maintenance (ExcludedMaintenance).
	Good                int `json:"good"`
	Counted             int `json:"counted"`
	ExcludedBroken      int `json:"excluded_broken"`
	ExcludedMaintenance int `json:"excluded_maintenance"`
	// BudgetRemaining is the fraction of the error budget left (1 all,
	// negative overspent); BudgetRemainingSeconds is it as full downtime.
	BudgetRemaining        float64 `json:"budget_remaining"`
	BudgetRemainingSeconds float64 `json:"budget_remaining_seconds"`
	BudgetTotalSeconds     float64 `json:"budget_total_seconds"`
	// BurnRates are per window length ("1h", "5m", …), longest first.
	BurnRates []BurnRate `json:"burn_rates"`
	// Firing lists the burn windows at or above their threshold.
	Firing []Firing `json:"firing"`
	// Muted: now is inside a maintenance window (MaintenanceReason).
	Muted             bool   `json:"muted"`
	MaintenanceReason string `json:"maintenance_reason,omitempty"`
}

// BurnRate is the burn rate over one window.
type BurnRate struct {
	Window string  `json:"window"`
	Rate   float64 `json:"rate"`
}

// Firing is one burn window that fires.
type Firing struct {
	Severity  string  `json:"severity"`
	Window    string  `json:"window"`
	BurnRate  float64 `json:"burn_rate"`
	Threshold float64 `json:"threshold"`
}

// ProbeState is the alert state of one probe.
type ProbeState struct {
	Service string    `json:"service"`
	Probe   string    `json:"probe"`
	State   string    `json:"state"` // up, degraded, down, unknown
	Since   time.Time `json:"since,omitzero"`
	Reason  string    `json:"reason,omitempty"`
}

// Alert is an open alert.
type Alert struct {
	ID       int64     `json:"id"`
	Service  string    `json:"service"`
	Probe    string    `json:"probe,omitempty"`
	Name     string    `json:"name"`
	Severity string    `json:"severity"`
	Title    string    `json:"title"`
	OpenedAt time.Time `json:"opened_at"`
}

// Status is the SLO status of the configured services.
type Status struct {
	At         time.Time         `json:"at"`
	Objectives []ObjectiveStatus `json:"objectives"`
	Probes     []ProbeState      `json:"probes"`
	Alerts     []Alert           `json:"open_alerts"`
}

// ErrUnknownService is returned for a service that is not configured.
var ErrUnknownService = fmt.Errorf("unknown service")

// View is the SLO history of the configured services (or one) at one
// instant, loaded from the store once: Status and Charts read it.
type View struct {
	st      *store.Store
	m       *model
	mem     *memory
	service string
	probe   string // set by LoadProbe
	now     time.Time
}

// Load reads the history of service (every service when "") for a View
// at now.
func Load(ctx context.Context, st *store.Store, cfg *config.Config, service string, now time.Time) (*View, error) {
	if service != "" && cfg.Service(service) == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownService, service)
	}
	m := buildModel(cfg)
	mem, err := load(ctx, st, m, service, "", now)
	if err != nil {
		return nil, err
	}
	mem.finalize(now)
	return &View{st: st, m: m, mem: mem, service: service, now: now}, nil
}

// LoadProbe is Load for one probe of service: its objectives, state and
// alerts only, reading only its history.
func LoadProbe(ctx context.Context, st *store.Store, cfg *config.Config, service, probe string, now time.Time) (*View, error) {
	if cfg.Service(service) == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownService, service)
	}
	m := buildModel(cfg)
	mem, err := load(ctx, st, m, service, probe, now)
	if err != nil {
		return nil, err
	}
	mem.finalize(now)
	return &View{st: st, m: m, mem: mem, service: service, probe: probe, now: now}, nil
}

// Report computes the status of the objectives of service (every service
// when "") at now from the store, with the probes' states and the open
// alerts the evaluator saved. It changes nothing.
func Report(ctx context.Context, st *store.Store, cfg *config.Config, service string, now time.Time) (*Status, error) {
	v, err := Load(ctx, st, cfg, service, now)
	if err != nil {
		return nil, err
	}
	return v.Status(ctx)
}

// Status is the status of the view's objectives, probes and open alerts.
func (v *View) Status(ctx context.Context) (*Status, error) {
	m, mem, service, now := v.m, v.mem, v.service, v.now
	only := func(ps *probeSpec) bool {
		return (service == "" || ps.Service == service) && (v.probe == "" || ps.Probe == v.probe)
	}
	out := &Status{At: now, Objectives: []ObjectiveStatus{}, Probes: []ProbeState{}, Alerts: []Alert{}}
	maintFrom := now.Add(-m.longest() - time.Hour)
	for _, name := range m.order {
		if service != "" && name != service {
			continue
		}
		ss := m.services[name]
		maint := ss.maintenance(maintFrom, now.Add(time.Minute))
		reason, _ := ss.maintenanceReason(now)
		if sd := mem.services[name]; sd != nil {
			for _, o := range ss.Objectives {
				out.Objectives = append(out.Objectives, objectiveStatus(name, "", o, sd.series[o.Name], maint, reason, now))
			}
		}
		for _, ps := range m.probes {
			if ps.Service != name || !only(ps) {
				continue
			}
			pd := mem.probes[ps.key()]
			for _, o := range ps.Objectives {
				out.Objectives = append(out.Objectives, objectiveStatus(name, ps.Probe, o, pd.series[o.Name], maint, reason, now))
			}
		}
	}
	saved, err := loadStates(ctx, v.st)
	if err != nil {
		return nil, err
	}
	for _, ps := range m.probes {
		if !only(ps) {
			continue
		}
		p := ProbeState{Service: ps.Service, Probe: ps.Probe, State: StateUnknown}
		if s := saved[ps.key()]; s != nil && s.State != "" {
			p.State, p.Since = s.State, s.Since
			if s.State != StateUp {
				p.Reason = s.Reason
			}
		}
		out.Probes = append(out.Probes, p)
	}
	rows, err := v.st.ListProbeAlerts(ctx, service, true, 1000)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if v.probe != "" && r.Probe != v.probe {
			continue
		}
		out.Alerts = append(out.Alerts, Alert{ID: r.ID, Service: r.Service, Probe: r.Probe, Name: r.Name, Severity: r.Severity, Title: r.Title, OpenedAt: r.OpenedAt})
	}
	return out, nil
}

func objectiveStatus(service, probe string, o slo.Objective, s *slo.Series, maint []slo.Interval, reason string, now time.Time) ObjectiveStatus {
	st := s.Evaluate(maint, now)
	all := s.Evaluate(nil, now)
	os := ObjectiveStatus{
		Service: service, Probe: probe, Objective: o.Name, Target: o.Target * 100,
		Window: slo.FormatDuration(o.Window), SLI: st.SLI, Good: st.Good, Counted: st.Total, ExcludedBroken: st.Broken,
		ExcludedMaintenance: max(all.Total+all.Broken-st.Total-st.Broken, 0),
		BudgetRemaining:     st.BudgetRemaining,
		BudgetTotalSeconds:  o.BudgetTime().Seconds(),
		Muted:               st.Muted, Firing: []Firing{}, BurnRates: []BurnRate{},
	}
	os.BudgetRemainingSeconds = st.BudgetRemaining * os.BudgetTotalSeconds
	if st.Muted {
		os.MaintenanceReason = reason
	}
	if o.Kind == slo.Latency {
		os.LatencyThresholdMS = o.LatencyThreshold.Milliseconds()
	}
	for w, r := range st.BurnRates {
		os.BurnRates = append(os.BurnRates, BurnRate{Window: w, Rate: r})
	}
	slices.SortFunc(os.BurnRates, func(a, b BurnRate) int {
		da, _ := config.ParseDuration(a.Window)
		db, _ := config.ParseDuration(b.Window)
		return int((db - da) / time.Second)
	})
	for _, f := range st.Firing {
		os.Firing = append(os.Firing, Firing{Severity: string(f.Severity), Window: f.Window, BurnRate: f.BurnRate, Threshold: f.Threshold})
	}
	return os
}

// ChartPoint is one point of an SLO chart.
type ChartPoint struct {
	At    time.Time `json:"at"`
	Value float64   `json:"value"`
}

// Chart is the history of one objective of a probe: the budget remaining at
// the end of each day of the window, and the burn rate of the shortest
// page window's long window (1h by default) at each hour of the last two
// days.
type Chart struct {
	Objective   string       `json:"objective"`
	Target      float64      `json:"target"`
	Budget      []ChartPoint `json:"budget"`
	BurnWindow  string       `json:"burn_window"`
	BurnRate    []ChartPoint `json:"burn_rate"`
	BurnPage    float64      `json:"burn_page"` // the threshold of that window
	WindowStart time.Time    `json:"window_start"`
}

// Charts returns the charts of the objectives of one probe of the view.
// Points before the history the store holds count what there is.
func (v *View) Charts(service, probe string) []Chart {
	m, mem, now := v.m, v.mem, v.now
	ps := m.byKey[service+"/"+probe]
	if ps == nil || len(ps.Objectives) == 0 || mem.probes[ps.key()] == nil {
		return nil
	}
	pd := mem.probes[ps.key()]
	maint := m.services[service].maintenance(now.Add(-m.longest()-time.Hour), now.Add(time.Minute))
	var out []Chart
	for _, o := range ps.Objectives {
		s := pd.series[o.Name]
		ws := o.Windows
		if ws == nil {
			ws = slo.DefaultWindows()
		}
		c := Chart{Objective: o.Name, Target: o.Target * 100, WindowStart: now.Add(-o.Window)}
		var bw *slo.BurnWindow
		for i := range ws {
			if ws[i].Severity == slo.Page && (bw == nil || ws[i].Long < bw.Long) {
				bw = &ws[i]
			}
		}
		days := int(o.Window / (24 * time.Hour))
		days = min(max(days, 1), 90)
		for i := days; i >= 0; i-- {
			t := now.Add(-time.Duration(i) * 24 * time.Hour)
			c.Budget = append(c.Budget, ChartPoint{At: t, Value: s.Evaluate(maint, t).BudgetRemaining})
		}
		if bw != nil {
			c.BurnWindow, c.BurnPage = slo.FormatDuration(bw.Long), bw.BurnRate
			for i := 48; i >= 0; i-- {
				t := now.Add(-time.Duration(i) * time.Hour)
				c.BurnRate = append(c.BurnRate, ChartPoint{At: t, Value: s.Evaluate(maint, t).BurnRates[c.BurnWindow]})
			}
		}
		out = append(out, c)
	}
	return out
}
