package probe

import (
	"fmt"
	"slices"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

// ForLocation returns a copy of cfg whose services keep only the probes
// that run from location (see config.Probe.RunsAt); the rest of cfg is
// shared. The server schedules ForLocation(cfg, Location).
func ForLocation(cfg *config.Config, location string) *config.Config {
	out := *cfg
	out.Services = make([]config.Service, len(cfg.Services))
	for i, svc := range cfg.Services {
		svc.Probes = nil
		for _, p := range cfg.Services[i].Probes {
			if p.RunsAt(location) {
				svc.Probes = append(svc.Probes, p)
			}
		}
		out.Services[i] = svc
	}
	return &out
}

// StaleAfter is how many poll intervals may pass without a heartbeat before
// a location is unhealthy ("stale").
const StaleAfter = 3

// DefaultPollInterval is how often an agent polls the server.
const DefaultPollInterval = 30 * time.Second

// LocationHealth says whether a location can be trusted to probe as of now:
// its agent's last heartbeat is recent (within StaleAfter poll intervals)
// and reported a passing self-check. reason says why not.
func LocationHealth(loc store.ProbeLocation, now time.Time) (healthy bool, reason string) {
	poll := pollOf(loc)
	if age := now.Sub(loc.LastSeen); age > StaleAfter*poll {
		return false, fmt.Sprintf("stale: last heartbeat %s ago, more than %d × the agent's %s poll interval; is `steward agent --location %s` running and able to reach the server?",
			age.Round(time.Second), StaleAfter, poll, loc.Name)
	}
	if !loc.Healthy {
		if loc.Reason == "" {
			return false, "the agent reported its self-check failing"
		}
		return false, "self-check failing: " + loc.Reason
	}
	return true, ""
}

// LocationStatus is one probe location and its health.
type LocationStatus struct {
	Name string `json:"name"`
	// Status is healthy, unhealthy (its self-check fails), stale (no
	// recent heartbeat) or "never seen" (configured, no agent reported).
	Status    string     `json:"status"`
	Healthy   bool       `json:"healthy"`
	Reason    string     `json:"reason,omitempty"`
	Assigned  int        `json:"assigned"` // probes configured to run there
	AgentUser string     `json:"agent_user,omitempty"`
	Version   string     `json:"version,omitempty"`
	FirstSeen *time.Time `json:"first_seen,omitempty"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	Buffered  int64      `json:"buffered"`
	Dropped   int64      `json:"dropped"`
}

// Location statuses.
const (
	LocationHealthy   = "healthy"
	LocationUnhealthy = "unhealthy"
	LocationStale     = "stale"
	LocationNeverSeen = "never seen"
)

// Locations describes every probe location as of now: local (the server
// itself), those whose agents reported (stored), and those named in cfg
// that no agent has reported for yet.
func Locations(stored []store.ProbeLocation, cfg *config.Config, now time.Time) []LocationStatus {
	assigned := map[string]int{}
	if cfg != nil {
		for _, svc := range cfg.Services {
			for _, p := range svc.Probes {
				for _, loc := range p.LocationNames() {
					assigned[loc]++
				}
			}
		}
	}
	out := []LocationStatus{{Name: Location, Status: LocationHealthy, Healthy: true, Assigned: assigned[Location], Reason: "the server itself"}}
	seen := map[string]bool{Location: true}
	for _, loc := range stored {
		if seen[loc.Name] {
			continue
		}
		seen[loc.Name] = true
		first, last := loc.FirstSeen, loc.LastSeen
		v := LocationStatus{Name: loc.Name, Assigned: assigned[loc.Name], AgentUser: loc.AgentUser, Version: loc.Version,
			FirstSeen: &first, LastSeen: &last, Buffered: loc.Buffered, Dropped: loc.Dropped}
		v.Healthy, v.Reason = LocationHealth(loc, now)
		switch {
		case v.Healthy:
			v.Status = LocationHealthy
		case now.Sub(loc.LastSeen) > StaleAfter*pollOf(loc):
			v.Status = LocationStale
		default:
			v.Status = LocationUnhealthy
		}
		out = append(out, v)
	}
	var never []string
	for loc := range assigned {
		if !seen[loc] {
			never = append(never, loc)
		}
	}
	slices.Sort(never)
	for _, loc := range never {
		out = append(out, LocationStatus{Name: loc, Status: LocationNeverSeen, Assigned: assigned[loc],
			Reason: fmt.Sprintf("no agent has reported; run `steward agent --location %s` with a token holding the probe.agent permission", loc)})
	}
	return out
}

// Healthy returns the names of the healthy locations among locs.
func Healthy(locs []LocationStatus) map[string]bool {
	out := map[string]bool{}
	for _, l := range locs {
		if l.Healthy {
			out[l.Name] = true
		}
	}
	return out
}

func pollOf(loc store.ProbeLocation) time.Duration {
	if loc.PollInterval <= 0 {
		return DefaultPollInterval
	}
	return loc.PollInterval
}
