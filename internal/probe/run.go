package probe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe/sched"
	"github.com/stewardhq/steward/internal/store"
)

// Location is where the server's own probes run from.
const Location = "local"

// ResultStore is where a Recorder writes results.
type ResultStore interface {
	InsertProbeResults(ctx context.Context, rows []store.ProbeResultRow) error
}

// Recorder turns configured probes into scheduler jobs, exports the
// per-probe metrics of their runs, and is the scheduler's Sink: it writes
// each record with the details of its run (phases, code, steps) to the
// store. The scheduler's records carry no details, so a job's Run keeps its
// Result here until the record of that run is written.
type Recorder struct {
	store    ResultStore
	m        *probeMetrics
	programs *ProgramCache // for the jobs whose Options bring none

	mu      sync.Mutex
	results map[string][]Result // by job key, in run order
	keys    map[string][2]string
}

var _ sched.Sink = (*Recorder)(nil)

// NewRecorder registers the per-probe metrics on reg (nil: not exported).
func NewRecorder(st ResultStore, reg prometheus.Registerer) (*Recorder, error) {
	m, err := newProbeMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Recorder{store: st, m: m, programs: NewProgramCache(), results: map[string][]Result{}, keys: map[string][2]string{}}, nil
}

// Key is a probe's job key, "service/probe".
func Key(service, probe string) string { return service + "/" + probe }

// Hash identifies a probe's definition: the SHA-256 of its JSON form.
func Hash(p *config.Probe) string {
	b, err := json.Marshal(p)
	if err != nil {
		// A Probe is plain data; make sure a change is still detected.
		b = fmt.Appendf(nil, "%#v", *p)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Jobs returns one job per probe configured in cfg, for sched.Update. The
// metric series of probes no longer configured are removed. Without
// opts.Programs the jobs share the Recorder's cache of compiled assertions.
func (r *Recorder) Jobs(cfg *config.Config, opts Options) []sched.Job {
	if opts.Programs == nil {
		opts.Programs = r.programs
	}
	var jobs []sched.Job
	keys := map[string][2]string{}
	for si := range cfg.Services {
		svc := &cfg.Services[si]
		for pi := range svc.Probes {
			p := &svc.Probes[pi]
			key := Key(svc.Name, p.Name)
			keys[key] = [2]string{svc.Name, p.Name}
			popts := opts
			if opts.Logger != nil {
				popts.Logger = opts.Logger.With("service", svc.Name, "probe", p.Name)
			}
			service := svc.Name
			class := sched.ClassCheap
			if p.Type == "browser" {
				class = sched.ClassBrowser // its own small pool: browsers are heavy
			}
			ser := r.m.series(service, p.Name)
			jobs = append(jobs, sched.Job{
				Key:      key,
				Interval: p.IntervalDuration(),
				Timeout:  p.TimeoutDuration(),
				Class:    class,
				Hash:     Hash(p),
				Run: func(ctx context.Context) sched.Outcome {
					res := Run(ctx, p, popts)
					ser.observe(&res)
					r.storeArtifacts(ctx, service, &res, popts.Logger)
					r.keep(key, res)
					return sched.Outcome{Status: string(res.Status), Duration: res.Duration, Error: res.Error}
				},
			})
		}
	}
	r.mu.Lock()
	for key, sp := range r.keys {
		if _, ok := keys[key]; !ok {
			r.m.forget(sp[0], sp[1])
		}
	}
	r.keys = keys
	r.mu.Unlock()
	return jobs
}

func (r *Recorder) keep(key string, res Result) {
	r.mu.Lock()
	r.results[key] = append(r.results[key], res)
	r.mu.Unlock()
}

// details is what a stored result holds beyond its columns.
type details struct {
	Scheduled time.Time `json:"scheduled"`
	LagMS     int64     `json:"lag_ms"`
	Class     string    `json:"class"`
	Result    *Result   `json:"result,omitempty"`
}

// WriteBatch writes the records, with their runs' details, in one
// transaction. A failed batch leaves the kept results in place, so the
// retry writes the same rows.
func (r *Recorder) WriteBatch(ctx context.Context, recs []sched.Record) error {
	rows := make([]store.ProbeResultRow, 0, len(recs))
	ds := make([]details, 0, len(recs))
	used := map[string]int{} // per key, how many kept results this batch consumes
	// Only the matching is done under the lock: the jobs' runs wait on it
	// to keep their results, so encoding a batch there would stall them.
	r.mu.Lock()
	for _, rec := range recs {
		service, name, _ := strings.Cut(rec.Key, "/")
		row := store.ProbeResultRow{Service: service, Probe: name, Location: Location, Status: rec.Status,
			StartedAt: rec.Started, DurationMS: rec.Duration.Milliseconds(), Error: rec.Error}
		d := details{Scheduled: rec.Scheduled, LagMS: rec.Lag.Milliseconds(), Class: rec.Class}
		if rec.Status == sched.StatusMissed {
			row.StartedAt = rec.Scheduled
		} else if res, n := match(r.results[rec.Key][used[rec.Key]:], rec.Started); n > 0 {
			// Runs of one job never overlap, so its kept results are in
			// record order; one started before this run is an orphan (its
			// Run panicked after keeping it) and is skipped.
			used[rec.Key] += n
			row.Code = res.Code
			d.Result = &res
		}
		rows = append(rows, row)
		ds = append(ds, d)
	}
	r.mu.Unlock()
	for i := range rows {
		b, err := json.Marshal(ds[i])
		if err != nil {
			return fmt.Errorf("probe results: encode details of %s: %w", recs[i].Key, err)
		}
		rows[i].Details = string(b)
	}
	if err := r.store.InsertProbeResults(ctx, rows); err != nil {
		return err
	}
	r.mu.Lock()
	for key, n := range used {
		rest := r.results[key][n:]
		if len(rest) == 0 {
			delete(r.results, key)
		} else {
			r.results[key] = rest
		}
	}
	r.mu.Unlock()
	return nil
}

// match finds the first kept result started at or after started; n is how
// many results it consumes (0: none found).
func match(kept []Result, started time.Time) (Result, int) {
	for i, res := range kept {
		if !res.Started.Before(started) {
			return res, i + 1
		}
	}
	return Result{}, 0
}

// Phases exported as steward_probe_phase_seconds.
var exportedPhases = []string{"dns", "connect", "tls", "first_byte"}

type probeMetrics struct {
	success  *prometheus.GaugeVec
	duration *prometheus.HistogramVec
	phase    *prometheus.GaugeVec
	certDays *prometheus.GaugeVec
}

func newProbeMetrics(reg prometheus.Registerer) (*probeMetrics, error) {
	m := &probeMetrics{
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "steward_probe_success",
			Help: "1 when the probe's last run was up, 0 when it was down or could not run.",
		}, []string{"service", "probe"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "steward_probe_duration_seconds",
			Help:    "Duration of probe runs.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"service", "probe"}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "steward_probe_phase_seconds",
			Help: "Phase timings (dns, connect, tls, first_byte) of the probe's last HTTP run; 0 when the phase did not happen.",
		}, []string{"service", "probe", "phase"}),
		certDays: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "steward_probe_cert_days_left",
			Help: "Days until the certificate checked by a tls probe expires (negative once expired), as of its last run that reached it.",
		}, []string{"service", "probe"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.success, m.duration, m.phase, m.certDays} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("probe: register metrics: another recorder already exports them: %w", err)
			}
			return nil, fmt.Errorf("probe: register metrics: %w", err)
		}
	}
	return m, nil
}

// series are the metric children of one probe. They are looked up on the
// first run that sets them and kept: hashing the label values on every run
// was 6 % of the CPU of 1,000 checks/s (bench/probebench).
type series struct {
	m              *probeMetrics
	service, probe string

	mu       sync.Mutex
	success  prometheus.Gauge
	duration prometheus.Observer
	phases   []prometheus.Gauge // as exportedPhases
	certDays prometheus.Gauge
}

func (m *probeMetrics) series(service, probe string) *series {
	return &series{m: m, service: service, probe: probe}
}

func (s *series) observe(res *Result) {
	up := 0.0
	if res.Status == Up {
		up = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.success == nil {
		s.success = s.m.success.WithLabelValues(s.service, s.probe)
		s.duration = s.m.duration.WithLabelValues(s.service, s.probe)
	}
	s.success.Set(up)
	s.duration.Observe(res.Duration.Seconds())
	if res.Phases.Total > 0 {
		if s.phases == nil {
			for _, name := range exportedPhases {
				s.phases = append(s.phases, s.m.phase.WithLabelValues(s.service, s.probe, name))
			}
		}
		ph := []time.Duration{res.Phases.DNS, res.Phases.Connect, res.Phases.TLS, res.Phases.FirstByte}
		for i, g := range s.phases {
			g.Set(ph[i].Seconds())
		}
	}
	// Zero days left on a failed run means the handshake never got a
	// certificate: keep the last known value.
	if res.Type == config.ProbeTLS && (res.DaysLeft != 0 || res.Status == Up) {
		if s.certDays == nil {
			s.certDays = s.m.certDays.WithLabelValues(s.service, s.probe)
		}
		s.certDays.Set(float64(res.DaysLeft))
	}
}

func (m *probeMetrics) forget(service, probe string) {
	l := prometheus.Labels{"service": service, "probe": probe}
	m.success.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.phase.DeletePartialMatch(l)
	m.certDays.DeletePartialMatch(l)
}
