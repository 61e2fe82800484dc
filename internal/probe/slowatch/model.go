package slowatch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/probe/sched"
	"github.com/stewardhq/steward/internal/probe/slo"
)

// Probe states.
const (
	StateUp       = "up"
	StateDegraded = "degraded"
	StateDown     = "down"
	// StateUnknown: no usable check yet.
	StateUnknown = "unknown"
)

// Objective names within a probe or service.
const (
	ObjAvailability = string(slo.Availability)
	ObjLatency      = string(slo.Latency)
)

// objectives converts a configured SLO into slo objectives, availability
// first; none when s sets no objective.
func objectives(s config.SLO) []slo.Objective {
	if s.IsZero() {
		return nil
	}
	window := s.WindowDuration()
	var windows []slo.BurnWindow
	if s.Windows != nil {
		windows = []slo.BurnWindow{}
		for _, w := range s.Windows {
			long, short, rate := w.Durations(window)
			windows = append(windows, slo.BurnWindow{Severity: slo.Severity(w.Severity), Long: long, Short: short, BurnRate: rate})
		}
	}
	var out []slo.Objective
	if t, ok := s.AvailabilityTarget(); ok {
		out = append(out, slo.Objective{Name: ObjAvailability, Kind: slo.Availability, Target: t, Window: window, Windows: windows, MinSamples: s.MinSamples})
	}
	if d, t, ok := s.LatencyTarget(); ok {
		out = append(out, slo.Objective{Name: ObjLatency, Kind: slo.Latency, Target: t, Window: window, LatencyThreshold: d, Windows: windows, MinSamples: s.MinSamples})
	}
	// A config that passed validation always gives valid objectives; drop
	// any that does not rather than fail the whole evaluation.
	return slices.DeleteFunc(out, func(o slo.Objective) bool { return o.Validate() != nil })
}

// probeSpec is what the evaluator needs of one configured probe.
type probeSpec struct {
	Service, Probe string
	Interval       time.Duration
	Timeout        time.Duration
	Offset         time.Duration
	Locations      []string
	Quorum         int
	Objectives     []slo.Objective
	Confirmations  int
	DependsOn      []string // service/probe
	Alert          bool
	// Threshold is the latency objective's threshold (0: none); a slower
	// check is a degraded one.
	Threshold time.Duration
}

func (p *probeSpec) key() string { return p.Service + "/" + p.Probe }

// serviceSpec is a service's own objectives and maintenance.
type serviceSpec struct {
	Name        string
	Objectives  []slo.Objective
	Maintenance []config.Maintenance
}

// model is the part of the config the evaluator works from.
type model struct {
	probes   []*probeSpec // in config order
	byKey    map[string]*probeSpec
	services map[string]*serviceSpec
	order    []string // service names in config order
	// hash identifies everything the in-memory series depend on; a change
	// rebuilds them from the store.
	hash string
}

func buildModel(cfg *config.Config) *model {
	m := &model{byKey: map[string]*probeSpec{}, services: map[string]*serviceSpec{}}
	type seriesDef struct {
		Key        string
		Interval   time.Duration
		Locations  []string
		Quorum     int
		Objectives []slo.Objective
	}
	var defs []seriesDef
	for si := range cfg.Services {
		svc := &cfg.Services[si]
		ss := &serviceSpec{Name: svc.Name, Objectives: objectives(svc.SLO), Maintenance: svc.Maintenance}
		m.services[svc.Name] = ss
		m.order = append(m.order, svc.Name)
		defs = append(defs, seriesDef{Key: svc.Name, Objectives: ss.Objectives})
		for pi := range svc.Probes {
			p := &svc.Probes[pi]
			ps := &probeSpec{
				Service: svc.Name, Probe: p.Name,
				Interval: p.IntervalDuration(), Timeout: p.TimeoutDuration(),
				Locations: p.LocationNames(), Quorum: p.QuorumSize(),
				Objectives: objectives(p.SLO), Confirmations: max(p.Confirmations, 1), Alert: p.Alert,
			}
			ps.Offset = sched.Offset(probe.Key(svc.Name, p.Name), ps.Interval)
			if d, _, ok := p.SLO.LatencyTarget(); ok {
				ps.Threshold = d
			}
			for _, d := range p.DependsOn {
				ps.DependsOn = append(ps.DependsOn, config.DependencyKey(svc.Name, d))
			}
			m.probes = append(m.probes, ps)
			m.byKey[ps.key()] = ps
			defs = append(defs, seriesDef{Key: ps.key(), Interval: ps.Interval, Locations: ps.Locations, Quorum: ps.Quorum, Objectives: ps.Objectives})
		}
	}
	b, _ := json.Marshal(defs)
	sum := sha256.Sum256(b)
	m.hash = hex.EncodeToString(sum[:])
	return m
}

// maintenance returns the service's maintenance intervals overlapping
// [from, to).
func (s *serviceSpec) maintenance(from, to time.Time) []slo.Interval {
	var out []slo.Interval
	for _, mw := range s.Maintenance {
		for _, iv := range mw.Intervals(from, to) {
			out = append(out, slo.Interval{From: iv[0], To: iv[1]})
		}
	}
	return out
}

// maintenanceReason is the reason of a maintenance window containing t,
// and whether there is one.
func (s *serviceSpec) maintenanceReason(t time.Time) (string, bool) {
	for _, mw := range s.Maintenance {
		for _, iv := range mw.Intervals(t, t.Add(time.Nanosecond)) {
			if !t.Before(iv[0]) && t.Before(iv[1]) {
				return mw.Reason, true
			}
		}
	}
	return "", false
}

// longest is the longest span any objective looks back over.
func (m *model) longest() time.Duration {
	d := time.Hour
	all := func(objs []slo.Objective) {
		for _, o := range objs {
			d = max(d, o.Window)
			ws := o.Windows
			if ws == nil {
				ws = slo.DefaultWindows()
			}
			for _, w := range ws {
				d = max(d, w.Long)
			}
		}
	}
	for _, s := range m.services {
		all(s.Objectives)
	}
	for _, p := range m.probes {
		all(p.Objectives)
	}
	return d
}
