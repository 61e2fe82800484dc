package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/store"
)

func (b *bundle) postJSON(t *testing.T, path, token string, body any) response {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", b.ts.URL+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	return b.send(t, req)
}

// Three locations with a quorum of 2: the target is down when two healthy
// locations say so, whatever an unhealthy one reports; assignments never
// carry an inline secret; the API and the Probes page show each location's
// latest result and health.
func TestAgentAPIAndLocationHealth(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Services[0].Probes = []config.Probe{
		{Name: "home", Type: config.ProbeHTTP, Interval: "30s", Timeout: "10s", URL: "https://shop.example.com/", Locations: []string{"local", "eu-west", "us-east"}, Quorum: 2,
			Headers: map[string]string{"X-Api-Key": "env:SHOP_KEY"}},
		{Name: "admin", Type: config.ProbeHTTP, Interval: "30s", Timeout: "10s", URL: "https://shop.example.com/admin", Locations: []string{"eu-west"}, BearerToken: "hunter2-inline"},
	}
	b := setup(t, setupOpts{config: cfg})
	ctx := t.Context()

	var as AgentAssignments
	b.getJSON(t, "/api/v1/agent/assignments?location=eu-west", b.admin, http.StatusOK, &as)
	if len(as.Probes) != 1 || as.Probes[0].Probe != "home" || as.Probes[0].Definition.Headers["X-Api-Key"] != "env:SHOP_KEY" ||
		len(as.Refused) != 1 || as.Refused[0].Probe != "admin" || !strings.Contains(as.Refused[0].Reason, "bearer_token") {
		t.Fatalf("assignments = %+v", as)
	}
	if r := b.do(t, "GET", "/api/v1/agent/assignments?location=eu-west", b.admin); strings.Contains(r.body, "hunter2") {
		t.Fatalf("an inline secret was sent to an agent: %s", r.body)
	}
	for _, c := range []struct {
		hb   AgentHeartbeat
		tok  string
		code int
		want string
	}{
		{AgentHeartbeat{Location: "local"}, b.admin, 400, "server itself"},
		{AgentHeartbeat{Location: "EU"}, b.admin, 400, "invalid location"},
		{AgentHeartbeat{Location: "eu-west"}, b.viewer, 403, "probe.agent"},
	} {
		if r := b.postJSON(t, "/api/v1/agent/heartbeat", c.tok, c.hb); r.StatusCode != c.code || !strings.Contains(r.body, c.want) {
			t.Errorf("heartbeat %+v: %d %s; want %d %q", c.hb, r.StatusCode, r.body, c.code, c.want)
		}
	}
	var ans AgentHeartbeatAnswer
	r := b.postJSON(t, "/api/v1/agent/heartbeat", b.admin, AgentHeartbeat{Location: "eu-west", Version: "v9", Healthy: true, Buffered: 3, PollIntervalMS: 30000})
	if r.StatusCode != 200 || json.Unmarshal([]byte(r.body), &ans) != nil || !ans.Registered || ans.Assigned != 1 || ans.Version != as.Version {
		t.Fatalf("first heartbeat: %d %s", r.StatusCode, r.body)
	}
	r = b.postJSON(t, "/api/v1/agent/heartbeat", b.admin, AgentHeartbeat{Location: "eu-west", Version: "v9", Healthy: true, PollIntervalMS: 30000})
	if json.Unmarshal([]byte(r.body), &ans) != nil || ans.Registered {
		t.Fatalf("second heartbeat registered again: %s", r.body)
	}
	b.postJSON(t, "/api/v1/agent/heartbeat", b.admin, AgentHeartbeat{Location: "us-east", Healthy: false, Reason: "self-check: cannot reach 10.0.0.1:53: i/o timeout"})
	// ap-south reported long ago: stale.
	if _, err := b.store.UpsertProbeLocation(ctx, store.ProbeLocation{Name: "ap-south", LastSeen: time.Now().Add(-5 * time.Minute), Healthy: true, PollInterval: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	events, err := b.store.ListAudit(ctx, store.AuditFilter{Action: "probe.location.register"})
	if err != nil || len(events) != 2 {
		t.Fatalf("registration events = %+v, %v; want eu-west and us-east", events, err)
	}

	now := time.Now().UTC()
	if err := b.store.InsertProbeResults(ctx, []store.ProbeResultRow{{Service: "shop", Probe: "home", Status: "down", StartedAt: now.Add(-2 * time.Second), Error: "status 503"}}); err != nil {
		t.Fatal(err)
	}
	up := AgentResults{Location: "eu-west", Results: []AgentResult{{UID: "eu-1", Service: "shop", Probe: "home", Status: "down", StartedAt: now.Add(-time.Second), DurationMS: 9, Code: 503, Error: "status 503"}}}
	if r := b.postJSON(t, "/api/v1/agent/results", b.admin, up); r.StatusCode != 200 || !strings.Contains(r.body, `"stored":1`) {
		t.Fatalf("upload: %d %s", r.StatusCode, r.body)
	}
	up = AgentResults{Location: "us-east", Results: []AgentResult{{UID: "us-1", Service: "shop", Probe: "home", Status: "up", StartedAt: now, DurationMS: 9, Code: 200}}}
	if r := b.postJSON(t, "/api/v1/agent/results", b.admin, up); r.StatusCode != 200 {
		t.Fatalf("upload: %d %s", r.StatusCode, r.body)
	}

	var list struct {
		Probes []probeStatusJSON `json:"probes"`
	}
	b.getJSON(t, "/api/v1/probes?service=shop", b.viewer, http.StatusOK, &list)
	home := list.Probes[0]
	if home.Probe != "home" || len(home.Locations) != 3 || home.Quorum != 2 || home.Verdict == nil {
		t.Fatalf("home = %+v", home)
	}
	if v := home.Verdict; v.Status != probe.Down || v.Down != 2 || v.Excluded != 1 {
		t.Errorf("verdict = %+v; want down by local and eu-west, us-east (unhealthy) excluded", v)
	}
	want := map[string][2]string{"local": {"healthy", "down"}, "eu-west": {"healthy", "down"}, "us-east": {"unhealthy", "up"}}
	for _, l := range home.Locations {
		if w := want[l.Location]; l.Health != w[0] || l.Status != w[1] {
			t.Errorf("location %s: health %s, status %s; want %v", l.Location, l.Health, l.Status, w)
		}
	}

	var locs struct {
		Locations []probe.LocationStatus `json:"locations"`
	}
	b.getJSON(t, "/api/v1/probes/locations", b.viewer, http.StatusOK, &locs)
	got := map[string]probe.LocationStatus{}
	for _, l := range locs.Locations {
		got[l.Name] = l
	}
	if len(got) != 4 || got["local"].Status != "healthy" || got["eu-west"].Status != "healthy" || got["eu-west"].Version != "v9" || got["eu-west"].AgentUser != "ada" ||
		got["us-east"].Status != "unhealthy" || !strings.Contains(got["us-east"].Reason, "10.0.0.1:53") ||
		got["ap-south"].Status != "stale" || !strings.Contains(got["ap-south"].Reason, "steward agent --location ap-south") {
		t.Errorf("locations = %+v", locs.Locations)
	}

	page := b.do(t, "GET", "/probes", b.viewer)
	for _, s := range []string{"eu-west: down", "us-east: up (unhealthy)", "quorum: down", "stale"} {
		if !strings.Contains(page.body, s) {
			t.Errorf("probes page lacks %q", s)
		}
	}
}
