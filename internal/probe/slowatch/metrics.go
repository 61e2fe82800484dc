package slowatch

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/probe/slo"
	"github.com/stewardhq/steward/internal/store"
)

// Metrics are the steward_slo_* and steward_probe_alert_open gauges. A nil
// *Metrics exports nothing.
type Metrics struct {
	burn      *prometheus.GaugeVec
	budget    *prometheus.GaugeVec
	sli       *prometheus.GaugeVec
	alertOpen *prometheus.GaugeVec

	mu   sync.Mutex
	seen map[[3]string]bool // service, probe, objective
}

// NewMetrics registers the gauges on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		burn: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "steward_slo_burn_rate",
			Help: "Error budget burn rate of an objective over a window: the bad fraction of checks divided by the budget (1 - target); 1 spends the budget in exactly the objective window. probe is empty for a service objective.",
		}, []string{"service", "probe", "objective", "window"}),
		budget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "steward_slo_budget_remaining_ratio",
			Help: "Fraction of the error budget left over the objective window: 1 untouched, 0 spent, negative overspent.",
		}, []string{"service", "probe", "objective"}),
		sli: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "steward_slo_sli_ratio",
			Help: "Good checks divided by counted checks over the objective window (1 without checks).",
		}, []string{"service", "probe", "objective"}),
		alertOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "steward_probe_alert_open",
			Help: "1 for each open probe alert: alert is down, degraded or OBJECTIVE/SEVERITY (burn rate); severity is page or ticket.",
		}, []string{"service", "probe", "alert", "severity"}),
		seen: map[[3]string]bool{},
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.burn, m.budget, m.sli, m.alertOpen} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("slo: register metrics: another evaluator already exports them: %w", err)
			}
			return nil, fmt.Errorf("slo: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) setStatus(service, probe, objective string, s slo.Status) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.seen[[3]string{service, probe, objective}] = true
	m.mu.Unlock()
	for w, r := range s.BurnRates {
		m.burn.WithLabelValues(service, probe, objective, w).Set(r)
	}
	m.budget.WithLabelValues(service, probe, objective).Set(s.BudgetRemaining)
	m.sli.WithLabelValues(service, probe, objective).Set(s.SLI)
}

func (m *Metrics) setOpen(rows []store.ProbeAlertRow) {
	if m == nil {
		return
	}
	m.alertOpen.Reset()
	for _, r := range rows {
		m.alertOpen.WithLabelValues(r.Service, r.Probe, r.Name, r.Severity).Set(1)
	}
}

// forgetOthers removes the series of objectives no longer configured.
func (m *Metrics) forgetOthers(mod *model) {
	if m == nil {
		return
	}
	want := map[[3]string]bool{}
	for _, ss := range mod.services {
		for _, o := range ss.Objectives {
			want[[3]string{ss.Name, "", o.Name}] = true
		}
	}
	for _, ps := range mod.probes {
		for _, o := range ps.Objectives {
			want[[3]string{ps.Service, ps.Probe, o.Name}] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.seen {
		if want[k] {
			continue
		}
		l := prometheus.Labels{"service": k[0], "probe": k[1], "objective": k[2]}
		m.burn.DeletePartialMatch(l)
		m.budget.DeletePartialMatch(l)
		m.sli.DeletePartialMatch(l)
		delete(m.seen, k)
	}
}

// alertNames lists the alerts a configured probe (or service, probe "")
// may have open.
func alertNames(objs []slo.Objective, state bool) []string {
	var out []string
	if state {
		out = append(out, StateDown, StateDegraded)
	}
	for _, o := range objs {
		out = append(out, o.Name+"/"+string(slo.Page), o.Name+"/"+string(slo.Ticket))
	}
	return out
}
