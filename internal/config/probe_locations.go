package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// LocalLocation is the location of the probes the server runs itself.
const LocalLocation = "local"

// RunsAt reports whether the probe runs from location.
func (p *Probe) RunsAt(location string) bool {
	if len(p.Locations) == 0 {
		return location == LocalLocation
	}
	return slices.Contains(p.Locations, location)
}

// LocationNames are the probe's locations, [local] when none is set.
func (p *Probe) LocationNames() []string {
	if len(p.Locations) == 0 {
		return []string{LocalLocation}
	}
	return p.Locations
}

// QuorumSize is how many healthy locations must agree before the target is
// down: the configured quorum, or 1 with one location and a majority
// (floor(n/2)+1) with more.
func (p *Probe) QuorumSize() int {
	if p.Quorum > 0 {
		return p.Quorum
	}
	n := len(p.LocationNames())
	if n <= 1 {
		return 1
	}
	return n/2 + 1
}

// checkLocations fills the defaults of locations and quorum and checks
// them: no duplicate location, and a quorum from 1 to the number of
// locations. The names are checked by their pattern when decoding.
func (l *loader) checkLocations(p *Probe, path string) {
	seen := map[string]int{}
	for k, loc := range p.Locations {
		if first, dup := seen[loc]; dup {
			l.errorf(l.at(fmt.Sprintf("%s.locations[%d]", path, k)), "location %q is listed twice (first at %s); list each location once",
				loc, l.at(fmt.Sprintf("%s.locations[%d]", path, first)))
			continue
		}
		seen[loc] = k
	}
	if len(p.Locations) == 0 {
		p.Locations = []string{LocalLocation}
	}
	n := len(p.Locations)
	switch {
	case p.Quorum == 0:
		p.Quorum = p.QuorumSize()
	case p.Quorum > n:
		l.errorf(l.at(path+".quorum"), "quorum %d is more than the %d location(s) of probe %q; use a quorum from 1 to %d, or add locations", p.Quorum, n, p.Name, n)
	}
}

// InlineSecrets lists the keys of the probe that hold a secret written
// inline rather than as a reference (possible with allow_inline_secrets):
// credential headers, basic_auth passwords, bearer tokens and passwords in
// URLs, of the probe and of its steps. The server does not send such a
// probe to an agent.
func (p *Probe) InlineSecrets() []string {
	var out []string
	check := func(prefix, rawURL string, headers map[string]string, ba BasicAuth, bt Secret) {
		for k, v := range headers {
			if isCredentialHeader(k) && v != "" && !Secret(v).IsRef() && !strings.Contains(v, "${") {
				out = append(out, fmt.Sprintf("%sheaders[%q]", prefix, k))
			}
		}
		if ba.Password != "" && !ba.Password.IsRef() {
			out = append(out, prefix+"basic_auth.password")
		}
		if bt != "" && !bt.IsRef() {
			out = append(out, prefix+"bearer_token")
		}
		if u, err := url.Parse(rawURL); err == nil {
			if _, has := u.User.Password(); has {
				out = append(out, prefix+"url")
			}
		}
	}
	check("", p.URL, p.Headers, p.BasicAuth, p.BearerToken)
	for _, list := range []struct {
		key   string
		steps []Step
	}{{"steps", p.Steps}, {"cleanup", p.Cleanup}} {
		for i, s := range list.steps {
			check(fmt.Sprintf("%s[%d].", list.key, i), s.URL, s.Headers, s.BasicAuth, s.BearerToken)
		}
	}
	slices.Sort(out)
	return out
}
