package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/store"
)

// Limits of the agent API.
const (
	// MaxAgentBatch is the most results one POST /api/v1/agent/results
	// may carry.
	MaxAgentBatch = 5000
	// MaxAgentBody bounds the body of an agent's upload, in bytes.
	MaxAgentBody = 32 << 20
	// maxAgentDetails bounds the details of one uploaded result.
	maxAgentDetails = 4 << 20
)

// locationRE is what a location name may be: a config name.
var locationRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-_]{0,62}$`)

// uidRE is what a result's uid may be.
var uidRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func (s *Server) agentRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/agent/assignments", s.api(auth.PermProbeAgent, s.apiAgentAssignments))
	mux.Handle("POST /api/v1/agent/results", s.api(auth.PermProbeAgent, s.apiAgentResults))
	mux.Handle("POST /api/v1/agent/heartbeat", s.api(auth.PermProbeAgent, s.apiAgentHeartbeat))
	mux.Handle("GET /api/v1/probes/locations", s.api(auth.PermRead, s.apiProbeLocations))
}

// AgentAssignment is one probe an agent runs: its definition as the server
// loaded it (defaults filled, file paths absolute), with secrets as
// references (env:NAME, file:PATH) that the agent resolves on its own
// machine.
type AgentAssignment struct {
	Service    string       `json:"service"`
	Probe      string       `json:"probe"`
	Definition config.Probe `json:"definition"`
}

// AgentRefusal is a probe assigned to a location but not sent to it.
type AgentRefusal struct {
	Service string `json:"service"`
	Probe   string `json:"probe"`
	Reason  string `json:"reason"`
}

// AgentAssignments is the answer to GET /api/v1/agent/assignments.
type AgentAssignments struct {
	Location string `json:"location"`
	// Version changes whenever the assignments do; it is the ETag.
	Version string            `json:"version"`
	Probes  []AgentAssignment `json:"probes"`
	Refused []AgentRefusal    `json:"refused,omitempty"`
	// Message explains an empty assignment.
	Message string `json:"message,omitempty"`
}

// agentSnapshot is what each location runs, computed once per config.
type agentSnapshot struct {
	byLocation map[string]*encodedAssignments
	assigned   map[string]map[string]bool // location -> "service/probe" -> true
	locations  []string                   // configured locations other than local, sorted
	cfg        *config.Config
}

type encodedAssignments struct {
	body []byte
	etag string
	n    int
}

func newAgentSnapshot(c *config.Config) *agentSnapshot {
	a := &agentSnapshot{byLocation: map[string]*encodedAssignments{}, assigned: map[string]map[string]bool{}, cfg: c}
	if c == nil {
		return a
	}
	lists := map[string]*AgentAssignments{}
	for _, svc := range c.Services {
		for _, p := range svc.Probes {
			for _, loc := range p.LocationNames() {
				if loc == config.LocalLocation {
					continue
				}
				l, ok := lists[loc]
				if !ok {
					l = &AgentAssignments{Location: loc, Probes: []AgentAssignment{}}
					lists[loc] = l
					a.assigned[loc] = map[string]bool{}
					a.locations = append(a.locations, loc)
				}
				a.assigned[loc][probeKey(svc.Name, p.Name)] = true
				if keys := p.InlineSecrets(); len(keys) > 0 {
					l.Refused = append(l.Refused, AgentRefusal{Service: svc.Name, Probe: p.Name,
						Reason: fmt.Sprintf("secrets written inline (%s) are never sent to agents; use env: or file: references, set on the agent's machine", strings.Join(keys, ", "))})
					continue
				}
				l.Probes = append(l.Probes, AgentAssignment{Service: svc.Name, Probe: p.Name, Definition: p})
			}
		}
	}
	slices.Sort(a.locations)
	for loc, l := range lists {
		a.byLocation[loc] = encodeAssignments(l)
	}
	return a
}

// encodeAssignments sets the version from the content and encodes l.
func encodeAssignments(l *AgentAssignments) *encodedAssignments {
	l.Version = ""
	b, err := json.Marshal(l)
	if err != nil {
		// Plain strings and numbers cannot fail to encode; say so rather
		// than serve an empty body.
		b = fmt.Appendf(nil, `{"location":%q,"probes":[],"message":"assignments could not be encoded: %s"}`, l.Location, err)
	}
	sum := sha256.Sum256(b)
	l.Version = hex.EncodeToString(sum[:8])
	if b2, err := json.Marshal(l); err == nil {
		b = b2
	}
	return &encodedAssignments{body: append(b, '\n'), etag: `"` + l.Version + `"`, n: len(l.Probes)}
}

// forLocation returns the assignments of loc; a location no probe names
// gets an empty list saying so.
func (a *agentSnapshot) forLocation(loc string) *encodedAssignments {
	if e, ok := a.byLocation[loc]; ok {
		return e
	}
	msg := fmt.Sprintf("no probe is assigned to location %q", loc)
	if len(a.locations) > 0 {
		msg += fmt.Sprintf(" (locations in the config: %s)", strings.Join(a.locations, ", "))
	}
	msg += fmt.Sprintf("; add %s to the locations of a probe in steward.yaml and reload the server, or start the agent with a configured --location", loc)
	return encodeAssignments(&AgentAssignments{Location: loc, Probes: []AgentAssignment{}, Message: msg})
}

// checkLocation validates a location name an agent sent.
func checkLocation(loc string) error {
	switch {
	case loc == "":
		return fmt.Errorf("%w: no location given; agents name theirs with --location NAME", errBadRequest)
	case loc == config.LocalLocation:
		return fmt.Errorf("%w: location %q is the server itself; give the agent another name", errBadRequest, loc)
	case !locationRE.MatchString(loc):
		return fmt.Errorf("%w: invalid location %q: use lowercase letters, digits, '-' and '_', starting with a letter or digit", errBadRequest, loc)
	}
	return nil
}

func (s *Server) apiAgentAssignments(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	loc := r.URL.Query().Get("location")
	if err := checkLocation(loc); err != nil {
		return err
	}
	e := s.agents.Load().forLocation(loc)
	h := w.Header()
	h.Set("ETag", e.etag)
	h.Set("Cache-Control", "private, no-cache")
	if r.Header.Get("If-None-Match") == e.etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(e.body)
	return nil
}

// AgentResult is one result in an agent's upload.
type AgentResult struct {
	// UID names the result; uploading it again stores nothing.
	UID        string          `json:"uid"`
	Service    string          `json:"service"`
	Probe      string          `json:"probe"`
	Status     string          `json:"status"`
	StartedAt  time.Time       `json:"started_at"`
	DurationMS int64           `json:"duration_ms"`
	Code       int             `json:"code,omitempty"`
	Error      string          `json:"error,omitempty"`
	Details    json.RawMessage `json:"details,omitempty"`
}

// AgentResults is the body of POST /api/v1/agent/results.
type AgentResults struct {
	Location string        `json:"location"`
	Results  []AgentResult `json:"results"`
}

// AgentRejection names a result of an upload that was refused.
type AgentRejection struct {
	Index int    `json:"index"`
	UID   string `json:"uid"`
	Error string `json:"error"`
}

// AgentResultsAnswer is the answer to an upload: how many results were
// new, how many were already stored; or, with a 400, which were refused.
type AgentResultsAnswer struct {
	Received   int              `json:"received"`
	Stored     int              `json:"stored"`
	Duplicates int              `json:"duplicates"`
	Error      string           `json:"error,omitempty"`
	Hint       string           `json:"hint,omitempty"`
	Rejected   []AgentRejection `json:"rejected,omitempty"`
}

var agentStatuses = []string{string(probe.Up), string(probe.Down), string(probe.Error), string(probe.Broken), "missed"}

func (s *Server) apiAgentResults(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	if r.ContentLength > MaxAgentBody {
		return fmt.Errorf("%w: %d bytes is more than %d; upload at most %d results and %d bytes per request", errTooLarge, r.ContentLength, MaxAgentBody, MaxAgentBatch, MaxAgentBody)
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxAgentBody)
	var req AgentResults
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return fmt.Errorf("%w: more than %d bytes; upload at most %d results and %d bytes per request", errTooLarge, tooBig.Limit, MaxAgentBatch, MaxAgentBody)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: the request body is empty; send {\"location\": ..., \"results\": [...]}", errBadRequest)
		default:
			return fmt.Errorf("%w: the request body is not a valid upload: %v", errBadRequest, err)
		}
	}
	if err := checkLocation(req.Location); err != nil {
		return err
	}
	if len(req.Results) > MaxAgentBatch {
		return fmt.Errorf("%w: %d results in one upload, more than %d; split the batch", errTooLarge, len(req.Results), MaxAgentBatch)
	}
	assigned := s.agents.Load().assigned[req.Location]
	snap := s.snap.Load()
	rows := make([]store.AgentResultRow, 0, len(req.Results))
	var rejected []AgentRejection
	for i, res := range req.Results {
		if err := checkAgentResult(&res, req.Location, snap, assigned); err != nil {
			rejected = append(rejected, AgentRejection{Index: i, UID: res.UID, Error: err.Error()})
			continue
		}
		details := string(res.Details)
		if details == "" || details == "null" {
			details = "{}"
		}
		// A failed browser run's screenshot and console log go to the
		// artifacts table; the stored details keep only references.
		if d, err := probe.StoreDetailArtifacts(r.Context(), s.store, res.Service, req.Location, details, s.log); err != nil {
			s.log.Warn("agent result artifacts not stored; the details keep them", "location", req.Location, "err", err)
		} else {
			details = d
		}
		rows = append(rows, store.AgentResultRow{UID: res.UID, ProbeResultRow: store.ProbeResultRow{Service: res.Service, Probe: res.Probe,
			Location: req.Location, Status: res.Status, StartedAt: res.StartedAt, DurationMS: res.DurationMS, Code: res.Code, Error: res.Error, Details: details}})
	}
	ans := AgentResultsAnswer{Received: len(req.Results)}
	if len(rejected) > 0 {
		first := rejected[0]
		ans.Error = fmt.Sprintf("%d of %d results refused, none stored; result %d (uid %q): %s", len(rejected), len(req.Results), first.Index, first.UID, first.Error)
		ans.Hint = "send the batch again without the refused results (listed in rejected)"
		ans.Rejected = rejected
		s.log.Debug("agent upload refused", "location", req.Location, "results", len(req.Results), "rejected", len(rejected), "first", first.Error)
		s.writeJSON(w, r, http.StatusBadRequest, ans)
		return nil
	}
	n, err := s.store.InsertProbeResultsOnce(r.Context(), rows)
	if err != nil {
		return err
	}
	ans.Stored, ans.Duplicates = n, len(rows)-n
	s.writeJSON(w, r, http.StatusOK, ans)
	return nil
}

func checkAgentResult(res *AgentResult, loc string, snap *snapshot, assigned map[string]bool) error {
	key := probeKey(res.Service, res.Probe)
	switch {
	case !uidRE.MatchString(res.UID):
		return fmt.Errorf("uid %q: want 1 to 128 letters, digits, '.', '_', ':' or '-'", res.UID)
	case !hasService(snap, res.Service):
		return fmt.Errorf("unknown service %q", res.Service)
	}
	if _, ok := snap.probeIdx[key]; !ok {
		return fmt.Errorf("unknown probe %s: service %s has no such probe", key, res.Service)
	}
	switch {
	case !assigned[key]:
		return fmt.Errorf("probe %s is not assigned to location %s (its locations in steward.yaml do not list it)", key, loc)
	case !slices.Contains(agentStatuses, res.Status):
		return fmt.Errorf("status %q of %s: want one of %s", res.Status, key, strings.Join(agentStatuses, ", "))
	case res.StartedAt.IsZero():
		return fmt.Errorf("result of %s has no started_at", key)
	case res.DurationMS < 0:
		return fmt.Errorf("result of %s has a negative duration_ms %d", key, res.DurationMS)
	case len(res.Details) > maxAgentDetails:
		return fmt.Errorf("details of %s are %d bytes, more than %d", key, len(res.Details), maxAgentDetails)
	}
	if d := strings.TrimSpace(string(res.Details)); d != "" && d != "null" && !strings.HasPrefix(d, "{") {
		return fmt.Errorf("details of %s must be a JSON object", key)
	}
	return nil
}

func hasService(snap *snapshot, name string) bool {
	_, ok := snap.byName[name]
	return ok
}

// AgentHeartbeat is the body of POST /api/v1/agent/heartbeat: the agent's
// own view of its location.
type AgentHeartbeat struct {
	Location string `json:"location"`
	Version  string `json:"version"`
	// Healthy is the agent's self-check; Reason says why it fails.
	Healthy        bool   `json:"healthy"`
	Reason         string `json:"reason,omitempty"`
	Buffered       int64  `json:"buffered"`
	Dropped        int64  `json:"dropped"`
	PollIntervalMS int64  `json:"poll_interval_ms"`
}

// AgentHeartbeatAnswer acknowledges a heartbeat.
type AgentHeartbeatAnswer struct {
	Location   string `json:"location"`
	Registered bool   `json:"registered"` // first heartbeat of this location
	Assigned   int    `json:"assigned"`
	Version    string `json:"version"` // of the assignments
	Message    string `json:"message,omitempty"`
}

func (s *Server) apiAgentHeartbeat(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var hb AgentHeartbeat
	if err := decodeBody(w, r, &hb, true); err != nil {
		return err
	}
	if err := checkLocation(hb.Location); err != nil {
		return err
	}
	if hb.PollIntervalMS <= 0 {
		hb.PollIntervalMS = probe.DefaultPollInterval.Milliseconds()
	}
	if hb.Buffered < 0 || hb.Dropped < 0 {
		return fmt.Errorf("%w: buffered and dropped cannot be negative", errBadRequest)
	}
	const maxReason, maxVersion = 1024, 100
	if len(hb.Reason) > maxReason {
		hb.Reason = hb.Reason[:maxReason]
	}
	if len(hb.Version) > maxVersion {
		hb.Version = hb.Version[:maxVersion]
	}
	loc := store.ProbeLocation{Name: hb.Location, AgentUser: p.User.Name, Version: hb.Version, LastSeen: s.now(), Healthy: hb.Healthy,
		Reason: hb.Reason, Buffered: hb.Buffered, Dropped: hb.Dropped, PollInterval: time.Duration(hb.PollIntervalMS) * time.Millisecond}
	created, err := s.store.UpsertProbeLocation(r.Context(), loc)
	if err != nil {
		return err
	}
	e := s.agents.Load().forLocation(hb.Location)
	if created {
		if err := s.audit(r.Context(), p.Actor(), "probe.location.register", "location:"+hb.Location, "ok",
			map[string]any{"version": hb.Version, "assigned": e.n, "healthy": hb.Healthy}); err != nil {
			return fmt.Errorf("record the registration of location %s: %w", hb.Location, err)
		}
		s.log.Info("probe location registered", "location", hb.Location, "agent", p.Actor(), "version", hb.Version, "assigned", e.n)
	}
	ans := AgentHeartbeatAnswer{Location: hb.Location, Registered: created, Assigned: e.n, Version: strings.Trim(e.etag, `"`)}
	if e.n == 0 {
		var l AgentAssignments
		if json.Unmarshal(e.body, &l) == nil {
			ans.Message = l.Message
		}
	}
	s.writeJSON(w, r, http.StatusOK, ans)
	return nil
}

func (s *Server) apiProbeLocations(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	locs, err := s.locations(r)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"locations": locs})
	return nil
}

func (s *Server) locations(r *http.Request) ([]probe.LocationStatus, error) {
	stored, err := s.store.ListProbeLocations(r.Context())
	if err != nil {
		return nil, err
	}
	return probe.Locations(stored, s.agents.Load().cfg, s.now()), nil
}

// locationResultJSON is the latest result of a probe from one location.
type locationResultJSON struct {
	Location string `json:"location"`
	// Health is the location's: healthy, unhealthy, stale, never seen.
	Health     string     `json:"health"`
	Status     string     `json:"status"` // the result's, or "never run"
	LastRun    *time.Time `json:"last_run"`
	DurationMS int64      `json:"duration_ms"`
	Code       int        `json:"code"`
	Error      string     `json:"error"`
}

// locationHealth maps each location to its status (probe.LocationHealthy…).
func (s *Server) locationHealth(r *http.Request) (map[string]string, error) {
	locs, err := s.locations(r)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(locs))
	for _, l := range locs {
		out[l.Name] = l.Status
	}
	return out, nil
}

// withLocationResults fills v's latest result per location of p and, for
// a probe with several locations, the quorum verdict over them: a location
// that is not healthy, or has no result yet, counts as broken.
func withLocationResults(v *probeStatusJSON, p probeConf, rows []store.ProbeResultRow, health map[string]string) {
	v.Quorum = p.Quorum
	v.Locations = []locationResultJSON{}
	byLoc := map[string]store.ProbeResultRow{}
	for _, row := range rows {
		byLoc[row.Location] = row
	}
	statuses := make([]probe.Status, 0, len(p.Locations))
	for _, loc := range p.Locations {
		lr := locationResultJSON{Location: loc, Health: health[loc], Status: statusNeverRun}
		if lr.Health == "" {
			lr.Health = probe.LocationNeverSeen
		}
		st := probe.Broken
		if row, ok := byLoc[loc]; ok {
			last := row.StartedAt
			lr.Status, lr.LastRun, lr.DurationMS, lr.Code, lr.Error = row.Status, &last, row.DurationMS, row.Code, row.Error
			if lr.Health == probe.LocationHealthy {
				st = probe.Status(row.Status)
			}
		}
		statuses = append(statuses, st)
		v.Locations = append(v.Locations, lr)
	}
	if len(p.Locations) > 1 {
		verdict := probe.Quorum(statuses, p.Quorum)
		v.Verdict = &verdict
	}
}
