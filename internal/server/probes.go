package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/store"
)

// statusNeverRun is the status of a configured probe with no stored result.
const statusNeverRun = "never run"

const (
	// availabilityWindow is how far back the availability bar and the
	// rollups of a probe's page reach, in whole hours.
	availabilityWindow = 30 * 24 * time.Hour
	// historyLimit bounds each read behind the hour buckets (the store's
	// maximum).
	historyLimit = 10000
	// probePageResults is how many recent results a probe's page lists.
	probePageResults  = 50
	defaultProbeLimit = 100
)

// probeConf is a configured probe as the API and UI show it: no URLs,
// headers or secrets, only what identifies it.
type probeConf struct {
	Service   string
	Name      string
	Type      string
	Interval  string
	Locations []string // where it runs from
	Quorum    int      // healthy locations that must agree it is down
}

func probeKey(service, probe string) string { return service + "/" + probe }

func probeConfs(c *config.Config) ([]probeConf, map[string]int) {
	var out []probeConf
	idx := map[string]int{}
	if c == nil {
		return out, idx
	}
	for _, svc := range c.Services {
		for _, p := range svc.Probes {
			idx[probeKey(svc.Name, p.Name)] = len(out)
			out = append(out, probeConf{Service: svc.Name, Name: p.Name, Type: p.Type, Interval: p.Interval, Locations: p.LocationNames(), Quorum: p.QuorumSize()})
		}
	}
	return out, idx
}

// probeStatusJSON is the latest result of one configured probe.
type probeStatusJSON struct {
	Service    string     `json:"service"`
	Probe      string     `json:"probe"`
	Type       string     `json:"type"`
	Location   string     `json:"location,omitempty"`
	Status     string     `json:"status"` // up, down, error, missed, or "never run"
	LastRun    *time.Time `json:"last_run"`
	DurationMS int64      `json:"duration_ms"`
	Code       int        `json:"code"`
	Error      string     `json:"error"`
	// Locations is the latest result from each location the probe runs
	// from, with the location's health; Verdict combines them by the
	// probe's quorum (probes with several locations only).
	Locations []locationResultJSON `json:"locations"`
	Quorum    int                  `json:"quorum"`
	Verdict   *probe.Verdict       `json:"verdict,omitempty"`
}

// probeResultJSON is one stored run or miss. Results are redacted before
// they are stored, so they are shown as they are.
type probeResultJSON struct {
	ID         int64           `json:"id"`
	Location   string          `json:"location"`
	Status     string          `json:"status"`
	StartedAt  time.Time       `json:"started_at"`
	DurationMS int64           `json:"duration_ms"`
	Code       int             `json:"code"`
	Error      string          `json:"error"`
	Details    json.RawMessage `json:"details"`
}

// rollupJSON is one hour of a probe's history, every location together.
type rollupJSON struct {
	Start         time.Time `json:"start"`
	Runs          int64     `json:"runs"`
	Up            int64     `json:"up"`
	Down          int64     `json:"down"`
	Errors        int64     `json:"errors"`
	Missed        int64     `json:"missed"`
	DurationSumMS int64     `json:"duration_sum_ms"`
	DurationMaxMS int64     `json:"duration_max_ms"`
}

type probeDetailJSON struct {
	Service string            `json:"service"`
	Probe   string            `json:"probe"`
	Type    string            `json:"type"`
	Results []probeResultJSON `json:"results"`
	Rollups []rollupJSON      `json:"rollups"`
}

// probeStatuses returns the latest result of each configured probe (of
// service, or of all when ""), in configuration order. With several
// locations, the newest result wins.
func (s *Server) probeStatuses(r *http.Request, service string) ([]probeStatusJSON, error) {
	snap := s.snap.Load()
	if service != "" {
		if _, ok := snap.byName[service]; !ok {
			return nil, fmt.Errorf("service %q: %w", service, store.ErrNotFound)
		}
	}
	latest, err := s.store.LatestProbeResults(r.Context(), service)
	if err != nil {
		return nil, err
	}
	newest := map[string]store.ProbeResultRow{}
	byLocation := map[string][]store.ProbeResultRow{}
	for _, row := range latest {
		byLocation[probeKey(row.Service, row.Probe)] = append(byLocation[probeKey(row.Service, row.Probe)], row)
		k := probeKey(row.Service, row.Probe)
		if cur, ok := newest[k]; !ok || row.StartedAt.After(cur.StartedAt) {
			newest[k] = row
		}
	}
	health, err := s.locationHealth(r)
	if err != nil {
		return nil, err
	}
	out := []probeStatusJSON{}
	for _, p := range snap.probes {
		if service != "" && p.Service != service {
			continue
		}
		v := probeStatusJSON{Service: p.Service, Probe: p.Name, Type: p.Type, Status: statusNeverRun}
		if row, ok := newest[probeKey(p.Service, p.Name)]; ok {
			last := row.StartedAt
			v.Location, v.Status, v.LastRun, v.DurationMS, v.Code, v.Error = row.Location, row.Status, &last, row.DurationMS, row.Code, row.Error
		}
		withLocationResults(&v, p, byLocation[probeKey(p.Service, p.Name)], health)
		out = append(out, v)
	}
	return out, nil
}

func (s *Server) apiProbes(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	probes, err := s.probeStatuses(r, r.URL.Query().Get("service"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"probes": probes})
	return nil
}

// configuredProbe returns the probe named by the request's path.
func (s *Server) configuredProbe(r *http.Request) (probeConf, error) {
	service, name := r.PathValue("service"), r.PathValue("probe")
	snap := s.snap.Load()
	i, ok := snap.probeIdx[probeKey(service, name)]
	if !ok {
		return probeConf{}, fmt.Errorf("probe %s/%s: %w", service, name, store.ErrNotFound)
	}
	return snap.probes[i], nil
}

// probeQuery reads since (an RFC 3339 time, or a duration back from now
// such as 24h) and limit (1 to 10000).
func probeQuery(r *http.Request, now time.Time, defaultLimit int) (since time.Time, limit int, err error) {
	q := r.URL.Query()
	limit = defaultLimit
	if v := q.Get("since"); v != "" {
		if d, derr := time.ParseDuration(v); derr == nil && d >= 0 {
			since = now.Add(-d)
		} else if since, err = time.Parse(time.RFC3339, v); err != nil {
			return since, limit, fmt.Errorf("%w: since must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (24h), not %q", errBadRequest, v)
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > historyLimit {
			return since, limit, fmt.Errorf("%w: limit must be an integer from 1 to %d, not %q", errBadRequest, historyLimit, v)
		}
		limit = n
	}
	return since, limit, nil
}

func resultView(row store.ProbeResultRow) probeResultJSON {
	details := json.RawMessage(row.Details)
	if !json.Valid(details) {
		details, _ = json.Marshal(row.Details)
	}
	return probeResultJSON{ID: row.ID, Location: row.Location, Status: row.Status, StartedAt: row.StartedAt,
		DurationMS: row.DurationMS, Code: row.Code, Error: row.Error, Details: details}
}

// hourRollups returns the probe's history over the availability window in
// hour buckets, newest first. The store keeps raw results for days, then
// minute buckets, then hour buckets, so all three are folded into hours.
// Each source is read up to historyLimit rows, newest first.
func (s *Server) hourRollups(r *http.Request, p probeConf, now time.Time) ([]rollupJSON, error) {
	ctx := r.Context()
	since := now.Add(-availabilityWindow).UTC().Truncate(time.Hour)
	buckets := map[time.Time]*rollupJSON{}
	bucket := func(t time.Time) *rollupJSON {
		h := t.UTC().Truncate(time.Hour)
		b, ok := buckets[h]
		if !ok {
			b = &rollupJSON{Start: h}
			buckets[h] = b
		}
		return b
	}
	for _, res := range []string{store.RollupHour, store.RollupMinute} {
		rows, err := s.store.ListProbeRollups(ctx, p.Service, p.Name, res, since, historyLimit)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			b := bucket(row.BucketStart)
			b.Runs += row.Runs
			b.Up += row.Up
			b.Down += row.Down
			b.Errors += row.Errors
			b.Missed += row.Missed
			b.DurationSumMS += row.DurationSumMS
			b.DurationMaxMS = max(b.DurationMaxMS, row.DurationMaxMS)
		}
	}
	raw, err := s.store.ListProbeResults(ctx, p.Service, p.Name, since, historyLimit)
	if err != nil {
		return nil, err
	}
	for _, row := range raw {
		b := bucket(row.StartedAt)
		if row.Status == "missed" {
			b.Missed++
			continue
		}
		b.Runs++
		switch row.Status {
		case "up":
			b.Up++
		case "down":
			b.Down++
		default:
			b.Errors++
		}
		b.DurationSumMS += row.DurationMS
		b.DurationMaxMS = max(b.DurationMaxMS, row.DurationMS)
	}
	out := make([]rollupJSON, 0, len(buckets))
	for _, b := range buckets {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b rollupJSON) int { return b.Start.Compare(a.Start) })
	return out, nil
}

func (s *Server) apiProbe(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	p, err := s.configuredProbe(r)
	if err != nil {
		return err
	}
	now := s.now()
	since, limit, err := probeQuery(r, now, defaultProbeLimit)
	if err != nil {
		return err
	}
	rows, err := s.store.ListProbeResults(r.Context(), p.Service, p.Name, since, limit)
	if err != nil {
		return err
	}
	rollups, err := s.hourRollups(r, p, now)
	if err != nil {
		return err
	}
	resp := probeDetailJSON{Service: p.Service, Probe: p.Name, Type: p.Type, Results: make([]probeResultJSON, 0, len(rows)), Rollups: rollups}
	for _, row := range rows {
		resp.Results = append(resp.Results, resultView(row))
	}
	s.writeJSON(w, r, http.StatusOK, resp)
	return nil
}

// statusClass is the CSS class of a probe status badge, from a fixed set.
func statusClass(status string) string {
	switch status {
	case "up", "down", "error", "missed":
		return "status-" + status
	case statusNeverRun:
		return "status-never"
	default:
		return "status-other"
	}
}

// hourBox is one hour of the availability bar.
type hourBox struct {
	Class string // avail-up, avail-partial, avail-down, avail-none
	Title string
}

// availabilityBar lays the hour buckets out oldest first, one box per hour
// of the window ending with the current hour; hours without data are
// avail-none.
func availabilityBar(rollups []rollupJSON, now time.Time) []hourBox {
	byHour := map[time.Time]rollupJSON{}
	for _, b := range rollups {
		byHour[b.Start] = b
	}
	hours := int(availabilityWindow / time.Hour)
	end := now.UTC().Truncate(time.Hour)
	out := make([]hourBox, 0, hours)
	for i := hours - 1; i >= 0; i-- {
		h := end.Add(-time.Duration(i) * time.Hour)
		label := h.Format("2006-01-02 15:04Z")
		b, ok := byHour[h]
		switch {
		case !ok || b.Runs == 0:
			out = append(out, hourBox{"avail-none", label + ": no runs"})
		default:
			pct := float64(b.Up) * 100 / float64(b.Runs)
			class := "avail-partial"
			if b.Up == b.Runs {
				class = "avail-up"
			} else if b.Up == 0 {
				class = "avail-down"
			}
			out = append(out, hourBox{class, fmt.Sprintf("%s: %.1f%% up (%d of %d runs)", label, pct, b.Up, b.Runs)})
		}
	}
	return out
}

type probesData struct {
	Probes    []probeStatusJSON
	Locations []probe.LocationStatus
}

func (s *Server) probesPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	probes, err := s.probeStatuses(r, "")
	if err != nil {
		return err
	}
	locs, err := s.locations(r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "probes", page{Title: "Probes", Nav: "probes", User: p.User.Name, Data: probesData{Probes: probes, Locations: locs}})
	return nil
}

type probeData struct {
	Probe        probeConf
	Results      []store.ProbeResultRow
	Bar          []hourBox
	Availability string // over the window, "" without runs
	SLO          *probeSLO
}

func (s *Server) probePage(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	p, err := s.configuredProbe(r)
	if err != nil {
		return err
	}
	now := s.now()
	rows, err := s.store.ListProbeResults(r.Context(), p.Service, p.Name, time.Time{}, probePageResults)
	if err != nil {
		return err
	}
	rollups, err := s.hourRollups(r, p, now)
	if err != nil {
		return err
	}
	d := probeData{Probe: p, Results: rows, Bar: availabilityBar(rollups, now), SLO: s.probeSLOData(r, p.Service, p.Name, now)}
	var up, runs int64
	for _, b := range rollups {
		up, runs = up+b.Up, runs+b.Runs
	}
	if runs > 0 {
		d.Availability = fmt.Sprintf("%.2f%% up over %d runs", float64(up)*100/float64(runs), runs)
	}
	s.render(w, r, http.StatusOK, "probe", page{Title: p.Service + "/" + p.Name, Nav: "probes", User: pr.User.Name, Data: d})
	return nil
}
