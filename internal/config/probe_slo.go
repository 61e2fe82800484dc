package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// SLO is a service level objective of a probe or of a whole service: an
// availability target, a latency target, or both, over a rolling window.
type SLO struct {
	Availability string     `yaml:"availability" doc:"Availability objective in percent of checks that succeed, like 99.9 (or \"99.9%\"). A check that could not run (error, broken location, missed run) and checks inside maintenance windows are left out."`
	Latency      LatencySLO `yaml:"latency" doc:"Latency objective: the share of checks that succeed within a threshold."`
	Window       string     `yaml:"window" default:"30d" doc:"Rolling window the objectives are measured over, like 30d or 7d. The error budget is (100 - objective) % of the checks in this window."`
	MinSamples   int        `yaml:"min_samples" minimum:"0" doc:"Fewest counted checks each of a burn-rate alert's two windows needs before it can fire, so that one failure of a sparse probe does not page (default 10; 1 turns the guard off)."`
	Windows      []BurnRate `yaml:"windows" doc:"Burn-rate alerts, replacing the defaults (page when 2% of the budget is spent in 1h, confirmed over 5m, or 5% in 6h over 30m; ticket when 10% is spent in 3d over 6h). An empty list turns burn-rate alerts off."`
}

// LatencySLO is a latency objective.
type LatencySLO struct {
	Threshold string `yaml:"threshold" doc:"Slowest a good check may be, like 500ms."`
	Target    string `yaml:"target" doc:"Percent of checks that must succeed within threshold, like 95."`
}

// BurnRate is one multi-window burn-rate alert: it fires when the error
// budget burns at least this fast over both windows.
type BurnRate struct {
	Severity      string `yaml:"severity" required:"true" enum:"page,ticket" doc:"page (wake someone up) or ticket (look at it in working hours)."`
	Long          string `yaml:"long" required:"true" doc:"Long window, like 1h; at most the objective's window."`
	Short         string `yaml:"short" required:"true" doc:"Short window that confirms the long one is still burning, like 5m; shorter than long."`
	BurnRate      string `yaml:"burn_rate" doc:"Burn rate that fires: 1 spends the whole budget in exactly the objective's window. Set burn_rate or budget_percent."`
	BudgetPercent string `yaml:"budget_percent" doc:"Alternative to burn_rate: the percent of the whole budget spent within long that fires, like 2 (burn_rate = budget_percent/100 × window / long)."`
}

// Maintenance is a planned maintenance window of a service: its probes do
// not open alerts during it, and its checks are left out of the error
// budget.
type Maintenance struct {
	From     string `yaml:"from" doc:"Start of a one-off window, an RFC 3339 time like 2026-03-01T22:00:00Z (with to)."`
	To       string `yaml:"to" doc:"End of a one-off window, an RFC 3339 time after from."`
	Cron     string `yaml:"cron" doc:"Start of a recurring window: a 5-field cron expression (UTC) or descriptor, like \"0 3 * * SUN\" (with duration)."`
	Duration string `yaml:"duration" doc:"Length of each recurring window, like 2h."`
	Reason   string `yaml:"reason" doc:"Why, shown with the SLO status."`
}

// IsZero reports whether no objective is set.
func (s SLO) IsZero() bool {
	return strings.TrimSpace(s.Availability) == "" && s.Latency.Threshold == "" && s.Latency.Target == ""
}

// WindowDuration is the objective's window, 30 days when unset or invalid.
func (s SLO) WindowDuration() time.Duration {
	if d, err := ParseDuration(s.Window); err == nil {
		return d
	}
	return 30 * 24 * time.Hour
}

// AvailabilityTarget is the availability objective as a fraction (0.999),
// and false when none is set.
func (s SLO) AvailabilityTarget() (float64, bool) {
	if strings.TrimSpace(s.Availability) == "" {
		return 0, false
	}
	v, err := parseSLOPercent(s.Availability)
	return v / 100, err == nil
}

// LatencyTarget is the latency objective: its threshold and target as a
// fraction, and false when none is set.
func (s SLO) LatencyTarget() (time.Duration, float64, bool) {
	if s.Latency.Threshold == "" || s.Latency.Target == "" {
		return 0, 0, false
	}
	d, err1 := time.ParseDuration(s.Latency.Threshold)
	v, err2 := parseSLOPercent(s.Latency.Target)
	return d, v / 100, err1 == nil && err2 == nil
}

// Durations returns the long and short windows and the burn rate of w for
// an objective over window.
func (w BurnRate) Durations(window time.Duration) (long, short time.Duration, rate float64) {
	long, _ = ParseDuration(w.Long)
	short, _ = ParseDuration(w.Short)
	if w.BurnRate != "" {
		rate, _ = strconv.ParseFloat(w.BurnRate, 64)
		return long, short, rate
	}
	if p, err := parseSLOPercent(w.BudgetPercent); err == nil && long > 0 {
		rate = p / 100 * float64(window) / float64(long)
	}
	return long, short, rate
}

// Intervals returns the maintenance windows of m that overlap [from, to).
func (m Maintenance) Intervals(from, to time.Time) [][2]time.Time {
	if m.Cron == "" {
		f, err1 := time.Parse(time.RFC3339, m.From)
		t, err2 := time.Parse(time.RFC3339, m.To)
		if err1 != nil || err2 != nil || !t.After(from) || !f.Before(to) {
			return nil
		}
		return [][2]time.Time{{f, t}}
	}
	sched, err := cron.ParseStandard(m.Cron)
	d, err2 := ParseDuration(m.Duration)
	if err != nil || err2 != nil {
		return nil
	}
	var out [][2]time.Time
	// Start early enough to catch a window that began before from.
	t := sched.Next(from.UTC().Add(-d - time.Second))
	for n := 0; !t.IsZero() && t.Before(to) && n < 100000; n++ {
		if end := t.Add(d); end.After(from) {
			out = append(out, [2]time.Time{t, end})
		}
		t = sched.Next(t)
	}
	return out
}

// DependencyKey resolves a depends_on entry of a probe of service to
// "service/probe".
func DependencyKey(service, dep string) string {
	if strings.Contains(dep, "/") {
		return dep
	}
	return service + "/" + dep
}

// parseSLOPercent parses "99.9" or "99.9%" into 99.9, strictly between 0
// and 100.
func parseSLOPercent(s string) (float64, error) {
	t := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("invalid percentage %s: want a number like 99.9", quoteShort(s))
	}
	if v <= 0 || v >= 100 {
		return 0, fmt.Errorf("percentage %s is not between 0 and 100 (exclusive)", quoteShort(s))
	}
	return v, nil
}

// checkSLO validates the slo of a probe or service at path.
func (l *loader) checkSLO(s SLO, path string) {
	_, written := l.pos[path]
	if s.IsZero() {
		if written {
			l.errorf(l.at(path), "slo sets no objective: add availability (like 99.9) or latency {threshold: 500ms, target: 95}")
		}
		return
	}
	window, werr := ParseDuration(s.Window)
	if werr != nil {
		l.errorf(l.at(path+".window"), "%v", werr)
	}
	if strings.TrimSpace(s.Availability) != "" {
		if _, err := parseSLOPercent(s.Availability); err != nil {
			l.errorf(l.at(path+".availability"), "availability: %v", err)
		}
	}
	lt := s.Latency
	switch {
	case lt.Threshold == "" && lt.Target == "":
	case lt.Threshold == "" || lt.Target == "":
		l.errorf(l.at(path+".latency"), "latency needs both threshold (like 500ms) and target (percent, like 95)")
	default:
		if d, err := time.ParseDuration(lt.Threshold); err != nil || d <= 0 {
			l.errorf(l.at(path+".latency.threshold"), "invalid latency threshold %s: want a positive duration like 500ms", quoteShort(lt.Threshold))
		}
		if _, err := parseSLOPercent(lt.Target); err != nil {
			l.errorf(l.at(path+".latency.target"), "latency target: %v", err)
		}
	}
	seen := map[string]int{}
	for k, w := range s.Windows {
		wp := fmt.Sprintf("%s.windows[%d]", path, k)
		long, err1 := ParseDuration(w.Long)
		if err1 != nil && w.Long != "" {
			l.errorf(l.at(wp+".long"), "%v", err1)
		}
		short, err2 := ParseDuration(w.Short)
		if err2 != nil && w.Short != "" {
			l.errorf(l.at(wp+".short"), "%v", err2)
		}
		if err1 == nil && err2 == nil {
			if short >= long {
				l.errorf(l.at(wp+".short"), "short window %s must be shorter than long window %s", w.Short, w.Long)
			}
			if werr == nil && long > window {
				l.errorf(l.at(wp+".long"), "long window %s is longer than the objective window %s; shorten it or lengthen window", w.Long, s.Window)
			}
			name := w.Long + "/" + w.Short
			if first, dup := seen[name]; dup {
				l.errorf(l.at(wp), "burn window %s is listed twice (first at %s)", name, l.at(fmt.Sprintf("%s.windows[%d]", path, first)))
			} else {
				seen[name] = k
			}
		}
		switch {
		case (w.BurnRate == "") == (w.BudgetPercent == ""):
			l.errorf(l.at(wp), "burn window needs exactly one of burn_rate (like 14.4) or budget_percent (like 2)")
		case w.BurnRate != "":
			if v, err := strconv.ParseFloat(w.BurnRate, 64); err != nil || !(v > 0) || math.IsInf(v, 0) {
				l.errorf(l.at(wp+".burn_rate"), "invalid burn_rate %s: want a positive number like 14.4", quoteShort(w.BurnRate))
			}
		default:
			if _, err := parseSLOPercent(w.BudgetPercent); err != nil {
				l.errorf(l.at(wp+".budget_percent"), "budget_percent: %v", err)
			}
		}
	}
}

// checkMaintenance validates a service's maintenance windows.
func (l *loader) checkMaintenance(ms []Maintenance, path string) {
	for k, m := range ms {
		mp := fmt.Sprintf("%s.maintenance[%d]", path, k)
		oneOff := m.From != "" || m.To != ""
		recurring := m.Cron != "" || m.Duration != ""
		switch {
		case oneOff && recurring:
			l.errorf(l.at(mp), "maintenance window sets both from/to and cron/duration; use one form")
		case oneOff:
			f, err1 := time.Parse(time.RFC3339, m.From)
			if err1 != nil {
				l.errorf(l.at(mp+".from"), "invalid from %s: want an RFC 3339 time like 2026-03-01T22:00:00Z", quoteShort(m.From))
			}
			t, err2 := time.Parse(time.RFC3339, m.To)
			if err2 != nil {
				l.errorf(l.at(mp+".to"), "invalid to %s: want an RFC 3339 time like 2026-03-02T02:00:00Z", quoteShort(m.To))
			}
			if err1 == nil && err2 == nil && !t.After(f) {
				l.errorf(l.at(mp+".to"), "maintenance ends (%s) before it starts (%s)", m.To, m.From)
			}
		case recurring:
			if m.Cron == "" || m.Duration == "" {
				l.errorf(l.at(mp), "recurring maintenance needs both cron (like \"0 3 * * SUN\") and duration (like 2h)")
				continue
			}
			if _, err := cron.ParseStandard(m.Cron); err != nil {
				l.errorf(l.at(mp+".cron"), "invalid cron %s: %v", quoteShort(m.Cron), err)
			}
			if _, err := ParseDuration(m.Duration); err != nil {
				l.errorf(l.at(mp+".duration"), "%v", err)
			}
		default:
			l.errorf(l.at(mp), "maintenance window needs from and to, or cron and duration")
		}
	}
}

// validateProbeDeps checks every probe's depends_on: each entry names a
// probe that exists (probe in the same service, or service/probe), not the
// probe itself, and the dependencies have no cycle.
func (l *loader) validateProbeDeps(cfg *Config) {
	exists := map[string]bool{}
	var known []string // in config order, for stable messages
	for _, s := range cfg.Services {
		for _, p := range s.Probes {
			if k := s.Name + "/" + p.Name; !exists[k] {
				exists[k] = true
				known = append(known, k)
			}
		}
	}
	graph := map[string][]string{}
	at := map[string]string{}
	for i, s := range cfg.Services {
		for j, p := range s.Probes {
			self := s.Name + "/" + p.Name
			for k, dep := range p.DependsOn {
				dp := fmt.Sprintf("services[%d].probes[%d].depends_on[%d]", i, j, k)
				key := DependencyKey(s.Name, dep)
				switch {
				case key == self:
					l.errorf(l.at(dp), "probe %q depends on itself; remove it from depends_on", self)
				case !exists[key]:
					l.errorf(l.at(dp), "depends_on names unknown probe %s%s; write probe (same service) or service/probe", quoteShort(dep), knownHint(key, known, "probes"))
				default:
					graph[self] = append(graph[self], key)
					at[self] = fmt.Sprintf("services[%d].probes[%d].depends_on", i, j)
				}
			}
		}
	}
	// Depth-first search for cycles; each cycle is reported once, at the
	// probe of the cycle that comes first in the config.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range graph[n] {
			switch color[d] {
			case grey:
				i := len(stack) - 1
				for i > 0 && stack[i] != d {
					i--
				}
				cycle := append(append([]string(nil), stack[i:]...), d)
				l.errorf(l.at(at[d]), "depends_on forms a cycle: %s; remove one of these dependencies", strings.Join(cycle, " → "))
			case white:
				visit(d)
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	for _, s := range cfg.Services {
		for _, p := range s.Probes {
			if n := s.Name + "/" + p.Name; color[n] == white {
				visit(n)
			}
		}
	}
}
