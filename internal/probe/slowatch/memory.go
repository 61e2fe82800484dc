package slowatch

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/probe/slo"
	"github.com/stewardhq/steward/internal/store"
)

// checkBatch is how many new results one read takes.
const checkBatch = 10000

// verdict is one scheduled slot of a probe after quorum.
type verdict struct {
	At       time.Time
	V        probe.Verdict
	Duration time.Duration // median of the up locations
	Error    string        // of a down location, for people
}

type check struct {
	status   probe.Status
	duration time.Duration
	err      string
}

// probeData is the in-memory history of one probe.
type probeData struct {
	spec    *probeSpec
	series  map[string]*slo.Series
	pending map[int64]map[string]check // slot -> location -> check
	done    map[int64]bool             // finalized slots of multi-location probes
	fresh   []verdict                  // finalized since the last state step
	svc     *serviceData               // nil when the service is not loaded
	lastErr string
	late    int
}

// serviceData is the in-memory history of a service's own objectives.
type serviceData struct {
	spec   *serviceSpec
	series map[string]*slo.Series
}

// memory is everything the evaluator keeps between evaluations.
type memory struct {
	hash     string
	cursor   int64 // largest probe_results id read
	probes   map[string]*probeData
	services map[string]*serviceData
}

func newSeries(objs []slo.Objective) map[string]*slo.Series {
	out := map[string]*slo.Series{}
	for _, o := range objs {
		if s, err := slo.NewSeries(o); err == nil {
			out[o.Name] = s
		}
	}
	return out
}

// load builds the memory of m from the store: rollups and raw results
// since the longest span any objective looks at, of every service, of one
// service, or of one probe (then without the service's own objectives).
func load(ctx context.Context, st *store.Store, m *model, service, probe string, now time.Time) (*memory, error) {
	mem := &memory{hash: m.hash, probes: map[string]*probeData{}, services: map[string]*serviceData{}}
	for _, ss := range m.services {
		if probe == "" && (service == "" || ss.Name == service) {
			mem.services[ss.Name] = &serviceData{spec: ss, series: newSeries(ss.Objectives)}
		}
	}
	for _, ps := range m.probes {
		if (service == "" || ps.Service == service) && (probe == "" || ps.Probe == probe) {
			mem.probes[ps.key()] = &probeData{spec: ps, series: newSeries(ps.Objectives), pending: map[int64]map[string]check{}, done: map[int64]bool{},
				svc: mem.services[ps.Service]}
		}
	}
	h, err := st.LoadSLOHistory(ctx, service, probe, now.Add(-m.longest()-2*time.Hour))
	if err != nil {
		return nil, err
	}
	mem.addRollups(h.Rollups)
	mem.addChecks(h.Checks)
	mem.cursor = h.MaxID
	return mem, nil
}

// catchUp reads the results written since the last read.
func (mem *memory) catchUp(ctx context.Context, st *store.Store) error {
	for {
		cs, err := st.SLOChecksAfter(ctx, mem.cursor, checkBatch)
		if err != nil {
			return err
		}
		mem.addChecks(cs)
		if len(cs) > 0 {
			mem.cursor = cs[len(cs)-1].ID
		}
		if len(cs) < checkBatch {
			return nil
		}
	}
}

// addRollups adds aggregated history. The buckets of a probe's locations
// are combined per bucket the way Quorum combines one slot, on counts:
// usable checks are the quorum-th largest count of up+down checks among
// the locations, bad ones the quorum-th largest count of down checks. This
// is exact for one location, and for several when their failures overlap
// in time. A latency objective counts a bucket's successes as fast when
// the slowest was fast, all as slow when even the mean was slow, and one
// as slow otherwise (the rollup keeps only the sum and the maximum).
func (mem *memory) addRollups(rows []store.ProbeRollupRow) {
	type bkey struct {
		key string
		at  time.Time
		res string
	}
	groups := map[bkey][]store.ProbeRollupRow{}
	var order []bkey
	for _, r := range rows {
		k := bkey{r.Service + "/" + r.Probe, r.BucketStart, r.Resolution}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].at.Before(order[j].at) })
	for _, k := range order {
		pd := mem.probes[k.key]
		if pd == nil {
			continue
		}
		rs := groups[k]
		q := pd.spec.Quorum
		var usable, down []int64
		var total, maxDur, sumDur int64
		for _, r := range rs {
			usable = append(usable, r.Up+r.Down)
			down = append(down, r.Down)
			total = max(total, r.Runs+r.Missed)
			maxDur = max(maxDur, r.DurationMaxMS)
			sumDur += r.DurationSumMS
		}
		u, b := nth(usable, q), nth(down, q)
		b = min(b, u)
		good := u - b
		broken := max(total-u, 0)
		var runs int64
		for _, r := range rs {
			runs += r.Runs
		}
		slowFor := func(o slo.Objective) int64 {
			thr := o.LatencyThreshold
			if o.Kind != slo.Latency || good == 0 || time.Duration(maxDur)*time.Millisecond <= thr {
				return 0
			}
			if runs > 0 && time.Duration(sumDur/runs)*time.Millisecond > thr {
				return good
			}
			return 1
		}
		add := func(series map[string]*slo.Series) {
			for _, s := range series {
				slow := slowFor(s.Objective())
				s.AddCounts(k.at, int(good-slow), int(b+slow), int(broken))
			}
		}
		add(pd.series)
		if pd.svc != nil {
			add(pd.svc.series)
		}
	}
}

// nth is the n-th largest value of vs (1-based), 0 when there are fewer.
func nth(vs []int64, n int) int64 {
	if n < 1 {
		n = 1
	}
	if len(vs) < n {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[len(s)-n]
}

// addChecks puts raw results into their probes' pending slots; a probe
// that runs from one location decides each check at once.
func (mem *memory) addChecks(cs []store.SLOCheck) {
	for _, c := range cs {
		pd := mem.probes[c.Service+"/"+c.Probe]
		if pd == nil {
			continue
		}
		ck := check{status: probe.Status(c.Status), duration: time.Duration(c.DurationMS) * time.Millisecond, err: c.Error}
		if ck.status == probe.Down && c.Error != "" {
			pd.lastErr = c.Error
		}
		slot := pd.spec.slotOf(c.StartedAt)
		if len(pd.spec.Locations) <= 1 {
			pd.decide(pd.spec.slotTime(slot), map[string]check{c.Location: ck})
			continue
		}
		if pd.done[slot] {
			pd.late++
			continue
		}
		if pd.pending[slot] == nil {
			pd.pending[slot] = map[string]check{}
		}
		pd.pending[slot][c.Location] = ck
	}
}

// slotOf is the scheduled slot a check started at t belongs to: the
// nearest instant of the probe's grid (offset + k × interval).
func (p *probeSpec) slotOf(t time.Time) int64 {
	iv := int64(p.Interval)
	x := t.UnixNano() - int64(p.Offset) + iv/2
	k := x / iv
	if x%iv != 0 && x < 0 {
		k--
	}
	return k
}

func (p *probeSpec) slotTime(k int64) time.Time {
	return time.Unix(0, int64(p.Offset)+k*int64(p.Interval)).UTC()
}

// finalize decides the pending slots that every location reported, or
// that waited long enough for the missing ones (two intervals and the
// timeout), oldest first.
func (mem *memory) finalize(now time.Time) {
	for _, pd := range mem.probes {
		var ready []int64
		for slot, locs := range pd.pending {
			at := pd.spec.slotTime(slot)
			if len(locs) >= len(pd.spec.Locations) || !now.Before(at.Add(2*pd.spec.Interval+pd.spec.Timeout)) {
				ready = append(ready, slot)
			}
		}
		slices.Sort(ready)
		for _, slot := range ready {
			pd.decide(pd.spec.slotTime(slot), pd.pending[slot])
			delete(pd.pending, slot)
			pd.done[slot] = true
		}
		// Forget finalized slots long past: no result arrives that late.
		if len(pd.done) > 4096 {
			cut := pd.spec.slotOf(now.Add(-24 * time.Hour))
			for s := range pd.done {
				if s < cut {
					delete(pd.done, s)
				}
			}
		}
	}
}

// decide combines the checks of one slot and adds the verdict to the
// probe's and its service's series.
func (pd *probeData) decide(at time.Time, locs map[string]check) {
	statuses := make([]probe.Status, 0, len(locs))
	var ups []time.Duration
	errText := ""
	for _, c := range locs {
		statuses = append(statuses, c.status)
		if c.status == probe.Up {
			ups = append(ups, c.duration)
		}
		if c.status == probe.Down && c.err != "" {
			errText = c.err
		}
	}
	v := probe.Quorum(statuses, pd.spec.Quorum)
	var dur time.Duration
	if len(ups) > 0 {
		slices.Sort(ups)
		dur = ups[len(ups)/2]
	}
	sample := slo.Sample{At: at, Good: v.Status == probe.Up, Broken: v.Status != probe.Up && v.Status != probe.Down, Duration: dur}
	for _, s := range pd.series {
		s.Add(sample)
	}
	pd.fresh = append(pd.fresh, verdict{At: at, V: v, Duration: dur, Error: errText})
	if pd.svc != nil {
		for _, s := range pd.svc.series {
			s.Add(sample)
		}
	}
}
