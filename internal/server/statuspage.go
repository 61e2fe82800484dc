package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe"
)

const (
	// statusTTL is how long a rendering of the public status page is
	// served before the store is asked again, however many people ask.
	statusTTL = 10 * time.Second
	// statusDays is how many days the availability bar covers, today
	// included.
	statusDays = 90
	// statusBuildTimeout bounds one rendering's store queries.
	statusBuildTimeout = 10 * time.Second
)

// Public states of a probe and a service.
const (
	stateUp       = "up"
	stateDown     = "down"
	stateDegraded = "degraded"
	stateUnknown  = "unknown"
)

// statusConf is what the status page needs of the configuration: the
// chosen services and their probes' names, intervals and quorums. It holds
// nothing else, so nothing else can leak.
type statusConf struct {
	enabled  bool
	title    string
	services []statusServiceConf
}

type statusServiceConf struct {
	name   string
	probes []statusProbeConf
}

type statusProbeConf struct {
	name      string
	interval  time.Duration
	locations []string
	quorum    int
}

func newStatusConf(c *config.Config) *statusConf {
	sc := &statusConf{}
	if c == nil {
		return sc
	}
	sp := c.Steward.StatusPage
	sc.enabled, sc.title = sp.Enabled, sp.Title
	if sc.title == "" {
		sc.title = "Service status"
	}
	for _, name := range sp.Services {
		svc := c.Service(name)
		if svc == nil {
			continue // refused when the config is loaded
		}
		ss := statusServiceConf{name: name}
		for i := range svc.Probes {
			p := &svc.Probes[i]
			ss.probes = append(ss.probes, statusProbeConf{name: p.Name, interval: p.IntervalDuration(), locations: p.LocationNames(), quorum: p.QuorumSize()})
		}
		sc.services = append(sc.services, ss)
	}
	return sc
}

// statusPage is the public status page's state: the configuration it
// shows and its last rendering.
type statusPage struct {
	conf atomic.Pointer[statusConf]

	tmplOnce sync.Once
	tmpl     *template.Template
	tmplErr  error

	mu     sync.Mutex // held while rendering, so concurrent requests share one
	cached *statusRendering
}

// statusRendering is one rendering of the page, in both forms.
type statusRendering struct {
	conf  *statusConf
	at    time.Time
	html  []byte
	json  []byte
	etag  string
	jetag string
}

func (s *Server) statusPageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { s.servePublicStatus(w, r, false) })
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) { s.servePublicStatus(w, r, true) })
}

// statusJSON is the public status: services, their probes' current state
// and their daily availability. No URL, error, location or user appears.
type statusJSON struct {
	Title     string              `json:"title"`
	Status    string              `json:"status"` // up, degraded, down, unknown
	UpdatedAt time.Time           `json:"updated_at"`
	Services  []statusServiceJSON `json:"services"`
}

type statusServiceJSON struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Availability is the share of up runs over the 90 days, in percent;
	// null without runs.
	Availability *float64          `json:"availability"`
	Probes       []statusProbeJSON `json:"probes"`
	Days         []statusDayJSON   `json:"days"` // oldest first, today last
}

type statusProbeJSON struct {
	Name   string `json:"name"`
	Status string `json:"status"` // up, down, unknown
}

type statusDayJSON struct {
	Date         string   `json:"date"`         // YYYY-MM-DD, UTC
	Availability *float64 `json:"availability"` // percent; null without runs
}

func (s *Server) servePublicStatus(w http.ResponseWriter, r *http.Request, asJSON bool) {
	conf := s.status.conf.Load()
	if conf == nil || !conf.enabled {
		http.NotFound(w, r)
		return
	}
	rd, err := s.statusRendering(r.Context(), conf)
	if err != nil {
		// The public never sees why: the log does.
		s.log.Warn("status page not rendered", "request_id", infoFrom(r.Context()).id, "err", err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "The status page is temporarily unavailable; try again in a few seconds.", http.StatusServiceUnavailable)
		return
	}
	body, etag, ctype := rd.html, rd.etag, "text/html; charset=utf-8"
	if asJSON {
		body, etag, ctype = rd.json, rd.jetag, "application/json"
	}
	h := w.Header()
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(statusTTL/time.Second)))
	h.Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", ctype)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// statusRendering returns the page as rendered within the last statusTTL
// for conf, or renders it. One request renders while the others wait for
// its result, so the store sees at most one rendering per statusTTL.
func (s *Server) statusRendering(ctx context.Context, conf *statusConf) (*statusRendering, error) {
	sp := &s.status
	sp.mu.Lock()
	defer sp.mu.Unlock()
	now := s.now()
	if c := sp.cached; c != nil && c.conf == conf && now.Sub(c.at) < statusTTL && !now.Before(c.at) {
		return c, nil
	}
	sp.tmplOnce.Do(func() {
		sp.tmpl, sp.tmplErr = template.New("status").Funcs(template.FuncMap{"asset": s.assets.url}).ParseFS(templateFS, "web/templates/status.html")
	})
	if sp.tmplErr != nil {
		return nil, fmt.Errorf("parse the status page: %w", sp.tmplErr)
	}
	// The rendering serves every waiting request: one leaving does not
	// cancel it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusBuildTimeout)
	defer cancel()
	st, err := s.buildStatus(ctx, conf, now)
	if err != nil {
		return nil, err
	}
	rd := &statusRendering{conf: conf, at: now}
	if rd.json, err = json.Marshal(st); err != nil {
		return nil, fmt.Errorf("encode the status: %w", err)
	}
	rd.json = append(rd.json, '\n')
	var buf bytes.Buffer
	if err := sp.tmpl.ExecuteTemplate(&buf, "status", statusView(st)); err != nil {
		return nil, fmt.Errorf("render the status page: %w", err)
	}
	rd.html = buf.Bytes()
	rd.etag, rd.jetag = strongETag(rd.html), strongETag(rd.json)
	sp.cached = rd
	return rd, nil
}

func strongETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// buildStatus reads the chosen services' latest results and daily history.
func (s *Server) buildStatus(ctx context.Context, conf *statusConf, now time.Time) (statusJSON, error) {
	out := statusJSON{Title: conf.title, UpdatedAt: now.UTC().Truncate(time.Second), Services: []statusServiceJSON{}}
	names := make([]string, 0, len(conf.services))
	for _, svc := range conf.services {
		names = append(names, svc.name)
	}
	today := now.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(statusDays - 1))
	days, err := s.store.ProbeDailyAvailability(ctx, names, first)
	if err != nil {
		return out, err
	}
	type dayKey struct {
		service string
		day     time.Time
	}
	type counts struct{ runs, up int64 }
	perDay := map[dayKey]counts{}
	for _, d := range days {
		k := dayKey{d.Service, d.Day}
		c := perDay[k]
		c.runs, c.up = c.runs+d.Runs, c.up+d.Up
		perDay[k] = c
	}
	var states []string
	for _, svc := range conf.services {
		latest, err := s.store.LatestProbeResults(ctx, svc.name)
		if err != nil {
			return out, err
		}
		byProbe := map[string]map[string]probe.Status{} // probe -> location -> status of its latest result
		for _, row := range latest {
			if byProbe[row.Probe] == nil {
				byProbe[row.Probe] = map[string]probe.Status{}
			}
			// A result older than a few intervals is not the current state.
			var interval time.Duration
			for _, p := range svc.probes {
				if p.name == row.Probe {
					interval = p.interval
				}
			}
			if interval > 0 && now.Sub(row.StartedAt) > max(3*interval, 5*time.Minute) {
				continue
			}
			byProbe[row.Probe][row.Location] = probe.Status(row.Status)
		}
		ss := statusServiceJSON{Name: svc.name, Probes: []statusProbeJSON{}, Days: make([]statusDayJSON, 0, statusDays)}
		var probeStates []string
		for _, p := range svc.probes {
			var statuses []probe.Status
			for _, loc := range p.locations {
				if st, ok := byProbe[p.name][loc]; ok {
					statuses = append(statuses, st)
				}
			}
			state := stateUnknown
			if len(statuses) > 0 {
				switch probe.Quorum(statuses, p.quorum).Status {
				case probe.Up:
					state = stateUp
				case probe.Down:
					state = stateDown
				}
			}
			ss.Probes = append(ss.Probes, statusProbeJSON{Name: p.name, Status: state})
			probeStates = append(probeStates, state)
		}
		ss.Status = combineStates(probeStates)
		states = append(states, ss.Status)
		var runs, up int64
		for i := range statusDays {
			day := first.AddDate(0, 0, i)
			d := statusDayJSON{Date: day.Format(time.DateOnly)}
			if c := perDay[dayKey{svc.name, day}]; c.runs > 0 {
				d.Availability = percent(c.up, c.runs)
				runs, up = runs+c.runs, up+c.up
			}
			ss.Days = append(ss.Days, d)
		}
		if runs > 0 {
			ss.Availability = percent(up, runs)
		}
		out.Services = append(out.Services, ss)
	}
	out.Status = combineStates(states)
	return out, nil
}

func percent(up, runs int64) *float64 {
	v := float64(int64(float64(up)*10000/float64(runs))) / 100 // two decimals, rounded down: 99.999% is not 100%
	return &v
}

// combineStates is the state of a whole made of parts: up when every known
// part is up, down when every known part is down, degraded in between,
// unknown when no part is known.
func combineStates(parts []string) string {
	var up, down, degraded int
	for _, p := range parts {
		switch p {
		case stateUp:
			up++
		case stateDown:
			down++
		case stateDegraded:
			degraded++
		}
	}
	switch {
	case up+down+degraded == 0:
		return stateUnknown
	case down == 0 && degraded == 0:
		return stateUp
	case up == 0 && degraded == 0:
		return stateDown
	default:
		return stateDegraded
	}
}

// Views for the HTML page.
type statusPageView struct {
	Title     string
	Status    string
	Headline  string
	UpdatedAt string
	Services  []statusServiceView
}

type statusServiceView struct {
	Name         string
	Status       string
	Availability string
	Probes       []statusProbeJSON
	Days         []hourBox
}

var statusHeadlines = map[string]string{
	stateUp:       "All systems operational",
	stateDegraded: "Some systems are not working as they should",
	stateDown:     "Major outage",
	stateUnknown:  "Status not known yet",
}

func statusView(st statusJSON) statusPageView {
	v := statusPageView{Title: st.Title, Status: st.Status, Headline: statusHeadlines[st.Status], UpdatedAt: st.UpdatedAt.Format("2006-01-02 15:04:05Z")}
	for _, svc := range st.Services {
		sv := statusServiceView{Name: svc.Name, Status: svc.Status, Probes: svc.Probes, Availability: "no data"}
		if svc.Availability != nil {
			sv.Availability = fmt.Sprintf("%.2f%% up in the last %d days", *svc.Availability, statusDays)
		}
		for _, d := range svc.Days {
			box := hourBox{Class: "avail-none", Title: d.Date + ": no data"}
			if a := d.Availability; a != nil {
				box.Title = fmt.Sprintf("%s: %.2f%% up", d.Date, *a)
				switch {
				case *a >= 100:
					box.Class = "avail-up"
				case *a <= 0:
					box.Class = "avail-down"
				default:
					box.Class = "avail-partial"
				}
			}
			sv.Days = append(sv.Days, box)
		}
		v.Services = append(v.Services, sv)
	}
	return v
}
