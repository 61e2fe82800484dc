package notify

import (
	"slices"
	"strings"

	"github.com/stewardhq/steward/internal/config"
)

// Route returns the names of the channels m goes to, in config order: every
// channel when m.All is set or no routes are configured, otherwise the
// channels of every route m matches. A route matches when each of its
// non-empty criteria does: the event by name or by a prefix ending in *, the
// severity and the service by name.
func Route(cfg config.Notify, m Message) []string {
	all := make([]string, 0, len(cfg.Channels))
	for _, c := range cfg.Channels {
		all = append(all, c.Name)
	}
	if m.All || len(cfg.Routes) == 0 {
		return all
	}
	want := map[string]bool{}
	for _, r := range cfg.Routes {
		if matches(r.Match, m) {
			for _, c := range r.Channels {
				want[c] = true
			}
		}
	}
	out := all[:0:0]
	for _, c := range all {
		if want[c] {
			out = append(out, c)
		}
	}
	return out
}

func matches(rm config.RouteMatch, m Message) bool {
	if len(rm.Event) > 0 && !slices.ContainsFunc(rm.Event, func(p string) bool { return eventMatches(p, m.Event) }) {
		return false
	}
	if len(rm.Severity) > 0 && !slices.Contains(rm.Severity, m.Severity) {
		return false
	}
	if len(rm.Service) > 0 && !slices.Contains(rm.Service, m.Service) {
		return false
	}
	return true
}

func eventMatches(pattern, event string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(event, prefix)
	}
	return pattern == event
}
