package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Notify configures alert channels and which events go where.
type Notify struct {
	Channels []Channel `yaml:"channels" doc:"Alert channels."`
	Routes   []Route   `yaml:"routes" doc:"Routing rules; an event goes to the channels of every route it matches. With no routes, every event goes to every channel."`
}

// Channel is one alert destination.
type Channel struct {
	Name string `yaml:"name" required:"true" pattern:"name" doc:"Unique channel name."`
	Type string `yaml:"type" required:"true" enum:"webhook,slack,email,pagerduty" doc:"Channel type."`
	// URL is the webhook target, the Slack incoming-webhook URL, or the
	// PagerDuty Events API v2 endpoint.
	URL Secret `yaml:"url" doc:"webhook: target URL; slack: incoming webhook URL; pagerduty: Events API v2 URL (default https://events.pagerduty.com/v2/enqueue). Usually a secret reference."`
	// Secret signs webhook bodies (HMAC-SHA256) or verifies Slack requests.
	Secret     Secret   `yaml:"secret" doc:"webhook: HMAC-SHA256 key for the X-Steward-Signature header; slack: the app's signing secret, to verify button clicks."`
	RoutingKey Secret   `yaml:"routing_key" doc:"pagerduty: the integration's routing key."`
	SMTP       SMTP     `yaml:"smtp" doc:"email: the SMTP server."`
	From       string   `yaml:"from" doc:"email: sender address."`
	To         []string `yaml:"to" doc:"email: recipient addresses."`
}

// SMTP is an SMTP submission server.
type SMTP struct {
	Host     string `yaml:"host" doc:"Server host name."`
	Port     int    `yaml:"port" default:"587" minimum:"1" maximum:"65535" doc:"Server port."`
	Username string `yaml:"username" doc:"User for SMTP AUTH; empty for none."`
	Password Secret `yaml:"password" doc:"Password for SMTP AUTH, as a secret reference."`
	TLS      string `yaml:"tls" default:"starttls" enum:"starttls,tls,none" doc:"starttls (upgrade, required), tls (implicit TLS, e.g. port 465) or none (loopback testing only)."`
}

// Route sends matching events to channels.
type Route struct {
	Match    RouteMatch `yaml:"match" doc:"Events the route applies to; every listed criterion must match."`
	Channels []string   `yaml:"channels" doc:"Channel names."`
}

// RouteMatch selects events.
type RouteMatch struct {
	Event    []string `yaml:"event" pattern:"permission" doc:"Event names such as action.pending or break_glass.*; a trailing * matches a prefix."`
	Severity []string `yaml:"severity" enum:"info,warning,critical" doc:"Severities."`
	Service  []string `yaml:"service" doc:"Service names."`
}

func (l *loader) validateNotify(cfg *Config, services []string) {
	allow := cfg.Steward.AllowInlineSecrets
	var names []string
	first := map[string]int{}
	for i, c := range cfg.Notify.Channels {
		path := fmt.Sprintf("notify.channels[%d]", i)
		if j, dup := first[c.Name]; dup && c.Name != "" {
			l.errorf(l.at(path+".name"), "duplicate channel %q (first defined at %s)", c.Name, l.at(fmt.Sprintf("notify.channels[%d].name", j)))
		} else {
			first[c.Name] = i
			names = append(names, c.Name)
		}
		need := func(ok bool, key, what string) {
			if !ok {
				l.errorf(l.at(path+".name"), "%s channel %q needs %s: %s", c.Type, c.Name, key, what)
			}
		}
		secret := func(s Secret, key string) {
			if s == "" {
				return
			}
			p := l.at(path + "." + key)
			if s.IsRef() {
				v, ok := l.checkRef(s, key, p)
				if ok && v != "" && (key == "url") {
					l.checkChannelURL(v, p, true)
				}
				return
			}
			if key == "url" {
				l.checkChannelURL(string(s), p, allow)
				return
			}
			if !allow {
				l.errorf(p, "inline secret in %s; %s", key, inlineHint)
			}
		}
		switch c.Type {
		case "webhook":
			need(c.URL != "", "url", "the URL to POST events to")
		case "slack":
			need(c.URL != "", "url", "the incoming webhook URL (env:SLACK_WEBHOOK)")
		case "pagerduty":
			need(c.RoutingKey != "", "routing_key", "the integration's routing key (env:PD_ROUTING_KEY)")
		case "email":
			need(c.SMTP.Host != "", "smtp.host", "the SMTP server")
			need(c.From != "", "from", "the sender address")
			need(len(c.To) > 0, "to", "at least one recipient")
			l.checkEmail(c.From, path+".from")
			for k, to := range c.To {
				l.checkEmail(to, fmt.Sprintf("%s.to[%d]", path, k))
			}
		}
		secret(c.URL, "url")
		secret(c.Secret, "secret")
		secret(c.RoutingKey, "routing_key")
		if c.SMTP.Password != "" {
			p := l.at(path + ".smtp.password")
			if c.SMTP.Password.IsRef() {
				l.checkRef(c.SMTP.Password, "smtp.password", p)
			} else if !allow {
				l.errorf(p, "inline secret in smtp.password; %s", inlineHint)
			}
		}
	}
	for i, r := range cfg.Notify.Routes {
		path := fmt.Sprintf("notify.routes[%d]", i)
		if len(r.Channels) == 0 {
			l.errorf(l.at(path+".channels"), "route must list at least one channel")
		}
		for k, c := range r.Channels {
			if !slices.Contains(names, c) {
				l.errorf(l.at(fmt.Sprintf("%s.channels[%d]", path, k)), "unknown channel %s%s", quoteShort(c), knownHint(c, names, "channels"))
			}
		}
		for k, s := range r.Match.Service {
			if !slices.Contains(services, s) {
				l.errorf(l.at(fmt.Sprintf("%s.match.service[%d]", path, k)), "unknown service %s%s", quoteShort(s), knownHint(s, services, "services"))
			}
		}
	}
}

// checkChannelURL checks an http(s) URL of a channel; a password inline in
// it is an error unless allowed (webhook URLs with tokens in the path are
// still secrets: keep them in env: references).
func (l *loader) checkChannelURL(v string, p pos, allowInline bool) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.errorf(p, "invalid URL %s: want an http:// or https:// URL", quoteShort(redactURL(v)))
		return
	}
	if _, has := u.User.Password(); has && !allowInline {
		l.errorf(p, "inline password in channel URL; %s", inlineHint)
	}
}

func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil {
		if i := strings.IndexByte(v, '@'); i >= 0 {
			return "…" + v[i:]
		}
		return v
	}
	return u.Redacted()
}
