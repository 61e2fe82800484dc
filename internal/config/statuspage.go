package config

import "fmt"

// StatusPage is the optional public status page: read-only, without
// authentication, showing only the chosen services' probes as up, down or
// degraded and their daily availability, never a URL, an error text or a
// location.
type StatusPage struct {
	Enabled  bool     `yaml:"enabled" default:"false" doc:"Serve the public status page at /status (HTML) and /status.json without authentication. Disabled: both answer 404."`
	Title    string   `yaml:"title" default:"Service status" doc:"Title of the public status page."`
	Services []string `yaml:"services" doc:"Services shown on the public status page, in this order; each must be defined under services. Only their probes' current state and daily availability over 90 days are shown."`
}

func (l *loader) validateStatusPage(sp StatusPage, services []string) {
	seen := map[string]bool{}
	for i, name := range sp.Services {
		p := l.at(fmt.Sprintf("steward.status_page.services[%d]", i))
		switch {
		case name == "":
			l.errorf(p, "empty service name in steward.status_page.services; name a service defined under services")
		case seen[name]:
			l.errorf(p, "service %s is listed twice in steward.status_page.services", quoteShort(name))
		default:
			found := false
			for _, s := range services {
				found = found || s == name
			}
			if !found {
				l.errorf(p, "unknown service %s in steward.status_page.services%s", quoteShort(name), knownHint(name, services, "services"))
			}
		}
		seen[name] = true
	}
	if sp.Enabled && len(sp.Services) == 0 {
		l.errorf(l.at("steward.status_page"), "the status page is enabled but shows no service; list the services to show under steward.status_page.services")
	}
	if len(sp.Title) > 200 {
		l.errorf(l.at("steward.status_page.title"), "status page title is %d characters long; keep it to at most 200", len(sp.Title))
	}
}
