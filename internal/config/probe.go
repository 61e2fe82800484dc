package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Probe types.
const (
	ProbeHTTP      = "http"
	ProbeTCP       = "tcp"
	ProbeDNS       = "dns"
	ProbeTLS       = "tls"
	ProbeJourney   = "journey"
	ProbeRateLimit = "ratelimit"
	ProbeBrowser   = "browser"
)

// Limits of probes.
const (
	// MaxRedirects is the most redirects an http probe or journey step follows.
	MaxRedirects = 10
	// MaxBurst is the largest burst of a ratelimit probe.
	MaxBurst = 500
)

// Probe is a synthetic check of a service from the outside.
type Probe struct {
	Name     string `yaml:"name" required:"true" pattern:"name" doc:"Probe name, unique within the service."`
	Type     string `yaml:"type" required:"true" enum:"http,tcp,dns,tls,journey,ratelimit,browser" doc:"What the probe does: http (one request), tcp (connect, optionally send and expect), dns (query a record), tls (certificate expiry, chain, host name and protocol version), journey (ordered HTTP steps sharing cookies and variables), ratelimit (a bounded burst that must be throttled at a threshold), browser (a headless Chromium journey: navigate, click, fill, wait, assert)."`
	Interval string `yaml:"interval" default:"30s" doc:"How often the probe runs."`
	Timeout  string `yaml:"timeout" default:"10s" doc:"Longest a run may take; must not exceed interval. A journey's cleanup steps get a budget of their own, so that they run even after a timeout."`
	Assert   string `yaml:"assert" doc:"Condition the result must meet, an expr-lang expression such as status == 200 && duration < 800ms && json.items.size() > 0. Duration literals (800ms, 2s, 1m30s) are allowed and x.size() is len(x). Not for journeys and browser probes (assert per step) and ratelimit probes. Variables: http and journey steps: status, duration, headers, body, json (the body decoded, nil when it is not JSON), plus vars in journey steps; tcp: duration, body (what was read); dns: duration, answers; tls: duration, days_left, version. Without assert an HTTP status from 200 to 399 is success."`
	// Locations and Quorum: where the probe runs from, and how many healthy
	// locations must agree that the target is down.
	Locations []string `yaml:"locations" pattern:"name" doc:"Locations the probe runs from (default [local]): local is the server itself; any other name is a location served by a steward agent started with --location NAME. Each location keeps its own results and health."`
	Quorum    int      `yaml:"quorum" minimum:"1" doc:"How many healthy locations must agree before the target is down, from 1 to the number of locations (default: 1 with one location, otherwise a majority, floor(n/2)+1). A location that cannot probe (broken) does not count."`
	// SLO and alerting (see probe_slo.go).
	SLO           SLO      `yaml:"slo" doc:"Service level objectives of this probe, measured over its checks (after location quorum), with burn-rate alerts."`
	Confirmations int      `yaml:"confirmations" default:"2" minimum:"1" maximum:"100" doc:"How many consecutive checks (and SLO evaluations) must agree before the probe's alert state changes (down, degraded, recovered), so that one flap does not page."`
	DependsOn     []string `yaml:"depends_on" doc:"Probes this one depends on: probe (same service) or service/probe. While one of them is down, this probe opens no new alerts (it still resolves its open ones)."`
	Alert         bool     `yaml:"alert" default:"true" doc:"Whether the probe sends alerts (down, degraded, recovered and burn-rate). false keeps measuring it and its SLO without notifying."`

	// http, journey, ratelimit
	URL             string            `yaml:"url" doc:"http, ratelimit: the URL requested (http or https). Credentials inline in the URL are errors unless allow_inline_secrets; query values are redacted from results when they look like tokens."`
	Method          string            `yaml:"method" doc:"http, ratelimit: request method (default GET)."`
	Headers         map[string]string `yaml:"headers" doc:"http, journey (sent with every step), ratelimit: request headers. A value may be a secret reference (env:NAME, file:PATH); it is redacted from results."`
	Body            string            `yaml:"body" doc:"http, ratelimit: request body."`
	BasicAuth       BasicAuth         `yaml:"basic_auth" doc:"http, journey, ratelimit: HTTP basic authentication."`
	BearerToken     Secret            `yaml:"bearer_token" doc:"http, journey, ratelimit: sent as Authorization: Bearer."`
	FollowRedirects int               `yaml:"follow_redirects" default:"10" minimum:"0" maximum:"10" doc:"http, journey: how many redirects to follow; more is a failure (too many redirects). 0 returns the redirect response itself."`
	TLSSkipVerify   bool              `yaml:"tls_skip_verify" default:"false" doc:"http, journey, ratelimit: do not verify the server certificate (not recommended)."`
	CAFile          string            `yaml:"ca_file" doc:"http, journey, ratelimit, tls: PEM file of the CA certificates to trust instead of the system's. Relative to the file it is in."`
	CertFile        string            `yaml:"cert_file" doc:"http, journey, ratelimit: PEM client certificate, with key_file. Relative to the file it is in."`
	KeyFile         string            `yaml:"key_file" doc:"http, journey, ratelimit: PEM private key of cert_file. Relative to the file it is in."`
	MaxBody         int               `yaml:"max_body" default:"1048576" minimum:"1" doc:"http, journey: largest response body read, in bytes; a larger body is a failure (body too large)."`

	// tcp, tls
	Address string   `yaml:"address" doc:"tcp, tls: host:port to connect to."`
	Send    string   `yaml:"send" doc:"tcp: data written after connecting."`
	Expect  []string `yaml:"expect" doc:"tcp: strings the response must contain (read until all are seen, the connection closes or 64 KiB). dns: answers that must all be present (case-insensitive, without the trailing dot)."`

	// dns
	Query      string `yaml:"query" doc:"dns: the name queried, as an absolute name (a trailing dot is implied)."`
	RecordType string `yaml:"record_type" enum:"A,AAAA,CNAME,MX,TXT,NS" doc:"dns: record type (default A). MX and NS answers are the host names."`
	Resolver   string `yaml:"resolver" doc:"dns: resolver host:port to ask (default: the system's)."`

	// tls
	ServerName string `yaml:"server_name" doc:"tls: name the certificate must be valid for (default: the host of address)."`
	MinDays    int    `yaml:"min_days" default:"14" minimum:"0" doc:"tls: fewest days the certificate may have left before the probe fails."`
	MinVersion string `yaml:"min_version" enum:"1.0,1.1,1.2,1.3" doc:"tls: lowest acceptable negotiated TLS version."`

	// journey, browser
	Steps   []Step `yaml:"steps" doc:"journey: the HTTP steps, in order; cookies are shared and extracted variables can be used as ${name} in later steps' url, headers and body. The journey stops at the first failed step. browser: the browser actions, in order, one per step (navigate, click, fill, wait_for, wait_text or assert); the run stops at the first failed step."`
	Cleanup []Step `yaml:"cleanup" doc:"journey: steps that always run after the steps, even when one failed (for example deleting what the journey created)."`

	// ratelimit
	Burst                int      `yaml:"burst" minimum:"0" maximum:"500" doc:"ratelimit: most requests sent, one after another (at most 500); the burst stops at the first throttled response, and fails if none is throttled."`
	Window               string   `yaml:"window" doc:"ratelimit: time within which the burst must be sent (default: timeout)."`
	ExpectThrottledAfter int      `yaml:"expect_throttled_after" minimum:"0" doc:"ratelimit: how many requests must pass before throttling may start; a throttled response among them is a failure, and so is none within the burst. Must be less than burst."`
	ThrottleStatus       int      `yaml:"throttle_status" default:"429" minimum:"100" maximum:"599" doc:"ratelimit: the HTTP status of a throttled response."`
	AllowedHosts         []string `yaml:"allowed_hosts" doc:"ratelimit: hosts other than loopback that this probe may target. Without it, only localhost and loopback addresses may be flooded."`
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	Username string `yaml:"username" doc:"User name."`
	Password Secret `yaml:"password" doc:"Password, as a secret reference."`
}

// Step is one HTTP request of a journey, or one action of a browser probe.
type Step struct {
	Name        string            `yaml:"name" pattern:"name" doc:"Step name, unique within the probe. Required in journeys; a browser step without one is named after its position and action (2-click)."`
	URL         string            `yaml:"url" doc:"journey: the URL requested (required); may use ${var}."`
	Method      string            `yaml:"method" doc:"Request method (default GET)."`
	Headers     map[string]string `yaml:"headers" doc:"Request headers, added to the journey's; values may use ${var} or be secret references."`
	Body        string            `yaml:"body" doc:"Request body; may use ${var}."`
	BasicAuth   BasicAuth         `yaml:"basic_auth" doc:"HTTP basic authentication, instead of the journey's."`
	BearerToken Secret            `yaml:"bearer_token" doc:"Sent as Authorization: Bearer, instead of the journey's."`
	Extract     map[string]string `yaml:"extract" doc:"Variables taken from the response: json:PATH (dot-separated keys and list indexes, like items.0.id), header:NAME, or regex:RE (the first group, or the whole match)."`
	Assert      string            `yaml:"assert" doc:"journey: condition the response must meet (same variables as an http probe, plus vars); without it a status from 200 to 399 is success. browser: an action of its own, a condition on the page: title, url, text (the body's visible text, at most 64 KiB) and duration (since the run started)."`

	// browser
	Navigate string   `yaml:"navigate" doc:"browser: load this http:// or https:// URL and wait for its load event."`
	Click    string   `yaml:"click" doc:"browser: click the first element matching this CSS selector, once it is visible."`
	Fill     Fill     `yaml:"fill" doc:"browser: type a value into the first element matching a CSS selector, once it is visible."`
	WaitFor  string   `yaml:"wait_for" doc:"browser: wait until an element matching this CSS selector is visible."`
	WaitText WaitText `yaml:"wait_text" doc:"browser: wait until the first element matching a CSS selector contains a text."`
}

// Fill is a browser step that types a value into a form field.
type Fill struct {
	Selector string `yaml:"selector" doc:"CSS selector of the field."`
	Value    Secret `yaml:"value" doc:"What is typed: a literal, or a secret reference (env:NAME, file:PATH) that is resolved at run time and redacted from results and artifacts."`
}

// WaitText is a browser step that waits for a text to appear.
type WaitText struct {
	Selector string `yaml:"selector" doc:"CSS selector of the element (body for the whole page)."`
	Text     string `yaml:"text" doc:"Text the element's visible text must contain."`
}

// BrowserActions are the actions of a browser step, in the order of Action.
var BrowserActions = []string{"navigate", "click", "fill", "wait_for", "wait_text", "assert"}

// Action returns the browser action a step sets: one of BrowserActions, or
// "" when it sets none. A step setting several returns the first.
func (s *Step) Action() string {
	for _, a := range s.actions() {
		return a
	}
	return ""
}

// actions lists the browser actions a step sets.
func (s *Step) actions() []string {
	var out []string
	set := []bool{s.Navigate != "", s.Click != "", s.Fill != (Fill{}), s.WaitFor != "", s.WaitText != (WaitText{}), s.Assert != ""}
	for i, ok := range set {
		if ok {
			out = append(out, BrowserActions[i])
		}
	}
	return out
}

// probeKeys lists, per type, the probe keys beyond the common ones that
// apply to it.
var probeKeys = map[string][]string{
	ProbeHTTP:      {"url", "method", "headers", "body", "basic_auth", "bearer_token", "follow_redirects", "tls_skip_verify", "ca_file", "cert_file", "key_file", "max_body"},
	ProbeTCP:       {"address", "send", "expect"},
	ProbeDNS:       {"query", "record_type", "resolver", "expect"},
	ProbeTLS:       {"address", "server_name", "min_days", "min_version", "ca_file"},
	ProbeJourney:   {"headers", "basic_auth", "bearer_token", "follow_redirects", "tls_skip_verify", "ca_file", "cert_file", "key_file", "max_body", "steps", "cleanup"},
	ProbeRateLimit: {"url", "method", "headers", "body", "basic_auth", "bearer_token", "tls_skip_verify", "ca_file", "cert_file", "key_file", "burst", "window", "expect_throttled_after", "throttle_status", "allowed_hosts"},
	ProbeBrowser:   {"steps"},
}

var commonProbeKeys = []string{"name", "type", "interval", "timeout", "assert", "locations", "quorum", "slo", "confirmations", "depends_on", "alert"}

// IntervalDuration is the probe's interval.
func (p *Probe) IntervalDuration() time.Duration {
	d, err := ParseDuration(p.Interval)
	if err != nil {
		return 30 * time.Second
	}
	return d
}

// TimeoutDuration is the probe's timeout.
func (p *Probe) TimeoutDuration() time.Duration {
	d, err := ParseDuration(p.Timeout)
	if err != nil {
		return 10 * time.Second
	}
	return d
}

// WindowDuration is a ratelimit probe's window (its timeout when unset).
func (p *Probe) WindowDuration() time.Duration {
	if d, err := ParseDuration(p.Window); err == nil {
		return d
	}
	return p.TimeoutDuration()
}

// Probe returns the service's probe with the given name, or nil.
func (s *Service) Probe(name string) *Probe {
	for i := range s.Probes {
		if s.Probes[i].Name == name {
			return &s.Probes[i]
		}
	}
	return nil
}

// IsLoopbackHost reports whether host (a name or an IP address, without a
// port) is localhost or a loopback address.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// HostAllowed reports whether a ratelimit probe may target host: it is
// loopback or listed in allowed_hosts (case-insensitive).
func (p *Probe) HostAllowed(host string) bool {
	if IsLoopbackHost(host) {
		return true
	}
	return slices.ContainsFunc(p.AllowedHosts, func(a string) bool {
		return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(host, "."))
	})
}

// AssertScope names the variables an assert expression may use.
type AssertScope string

// Assert scopes: the probe types, and journey steps.
const (
	ScopeHTTP AssertScope = "http"
	ScopeStep AssertScope = "step"
	ScopeTCP  AssertScope = "tcp"
	ScopeDNS  AssertScope = "dns"
	ScopeTLS  AssertScope = "tls"
	// ScopeBrowser is a browser step's assert action.
	ScopeBrowser AssertScope = "browser"
)

// AssertScopeOf returns the scope of a probe's assert expression.
func AssertScopeOf(probeType string) AssertScope {
	switch probeType {
	case ProbeTCP:
		return ScopeTCP
	case ProbeDNS:
		return ScopeDNS
	case ProbeTLS:
		return ScopeTLS
	}
	return ScopeHTTP
}

// HTTPEnv holds the variables of an http probe's assertion.
type HTTPEnv struct {
	Status   int               `expr:"status"`
	Duration time.Duration     `expr:"duration"`
	Headers  map[string]string `expr:"headers"`
	Body     string            `expr:"body"`
	JSON     any               `expr:"json"`
}

// StepEnv holds the variables of a journey step's assertion.
type StepEnv struct {
	Status   int               `expr:"status"`
	Duration time.Duration     `expr:"duration"`
	Headers  map[string]string `expr:"headers"`
	Body     string            `expr:"body"`
	JSON     any               `expr:"json"`
	Vars     map[string]string `expr:"vars"`
}

// TCPEnv holds the variables of a tcp probe's assertion.
type TCPEnv struct {
	Duration time.Duration `expr:"duration"`
	Body     string        `expr:"body"`
}

// DNSEnv holds the variables of a dns probe's assertion.
type DNSEnv struct {
	Duration time.Duration `expr:"duration"`
	Answers  []string      `expr:"answers"`
}

// TLSEnv holds the variables of a tls probe's assertion.
type TLSEnv struct {
	Duration time.Duration `expr:"duration"`
	DaysLeft int           `expr:"days_left"`
	Version  string        `expr:"version"`
}

// BrowserEnv holds the variables of a browser step's assertion.
type BrowserEnv struct {
	Title    string        `expr:"title"`
	URL      string        `expr:"url"`
	Text     string        `expr:"text"`
	Duration time.Duration `expr:"duration"`
}

// assertEnv returns the environment type of scope, for compiling.
func assertEnv(scope AssertScope) any {
	switch scope {
	case ScopeTCP:
		return TCPEnv{}
	case ScopeDNS:
		return DNSEnv{}
	case ScopeTLS:
		return TLSEnv{}
	case ScopeStep:
		return StepEnv{}
	case ScopeBrowser:
		return BrowserEnv{}
	}
	return HTTPEnv{}
}

// durationFunc is what duration literals are rewritten to call; the name
// keeps clear of the duration variable.
const durationFunc = "__duration"

var durationOption = expr.Function(durationFunc, func(params ...any) (any, error) {
	return time.ParseDuration(params[0].(string))
}, new(func(string) time.Duration))

// AssertError is an invalid assert expression, at a position within it.
type AssertError struct {
	Line, Col int // 1-based, within the expression as written
	Msg       string
}

func (e *AssertError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

// CompileAssert compiles an assert expression for scope. Duration
// literals like 800ms are rewritten to function calls and x.size() to
// len(x). Run the program with the scope's env struct (HTTPEnv, StepEnv,
// TCPEnv, DNSEnv, TLSEnv, BrowserEnv). An error is an *AssertError positioned in src.
func CompileAssert(scope AssertScope, src string) (*vm.Program, error) {
	rewritten, offsets := rewriteDurations(src)
	prog, err := expr.Compile(rewritten, expr.Env(assertEnv(scope)), durationOption, expr.AsBool(), expr.Patch(sizePatcher{}))
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			line, col := lineCol(src, originalOffset(offsets, fe.From))
			return nil, &AssertError{Line: line, Col: col, Msg: fe.Message}
		}
		return nil, &AssertError{Line: 1, Col: 1, Msg: err.Error()}
	}
	return prog, nil
}

// AssertUses reports whether an assert expression names variable v.
func AssertUses(src, v string) bool {
	rewritten, _ := rewriteDurations(src)
	found := false
	_, err := expr.Compile(rewritten, expr.AllowUndefinedVariables(), durationOption, expr.Patch(identFinder{name: v, found: &found}))
	return err == nil && found
}

// identFinder records whether an identifier is used.
type identFinder struct {
	name  string
	found *bool
}

func (f identFinder) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && id.Value == f.name {
		*f.found = true
	}
}

// sizePatcher rewrites x.size() to len(x).
type sizePatcher struct{}

func (sizePatcher) Visit(n *ast.Node) {
	call, ok := (*n).(*ast.CallNode)
	if !ok || len(call.Arguments) != 0 {
		return
	}
	m, ok := call.Callee.(*ast.MemberNode)
	if !ok {
		return
	}
	if prop, ok := m.Property.(*ast.StringNode); ok && prop.Value == "size" {
		ast.Patch(n, &ast.BuiltinNode{Name: "len", Arguments: []ast.Node{m.Node}})
	}
}

// durationLiteral matches a Go duration like 800ms or 1m30s.
var durationLiteral = regexp.MustCompile(`^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+`)

// offsetShift records that from rune offset at in the rewritten text on,
// offsets are shifted by delta relative to the original.
type offsetShift struct{ at, delta int }

// rewriteDurations replaces duration literals outside string literals
// with calls of durationFunc, returning the shifts to map positions back.
func rewriteDurations(src string) (string, []offsetShift) {
	var b strings.Builder
	var shifts []offsetShift
	runesOut, delta := 0, 0
	var quote rune
	prev := rune(0)
	for i := 0; i < len(src); {
		r, size := utf8.DecodeRuneInString(src[i:])
		if quote != 0 {
			b.WriteString(src[i : i+size])
			runesOut++
			if r == '\\' && quote != '`' && i+size < len(src) {
				r2, s2 := utf8.DecodeRuneInString(src[i+size:])
				b.WriteString(src[i+size : i+size+s2])
				runesOut++
				i += size + s2
				prev = r2
				continue
			} else if r == quote {
				quote = 0
			}
			i += size
			prev = r
			continue
		}
		if r == '"' || r == '\'' || r == '`' {
			quote = r
		} else if unicode.IsDigit(r) && !isIdentRune(prev) && prev != '.' {
			if m := durationLiteral.FindString(src[i:]); m != "" && !strings.ContainsAny(m[len(m)-1:], "0123456789") {
				rest := src[i+len(m):]
				next, _ := utf8.DecodeRuneInString(rest)
				if rest == "" || !isIdentRune(next) {
					lit := durationFunc + `("` + m + `")`
					n := utf8.RuneCountInString(m)
					b.WriteString(lit)
					runesOut += len(lit)
					delta += len(lit) - n
					shifts = append(shifts, offsetShift{at: runesOut, delta: delta})
					i += len(m)
					prev = 'x'
					continue
				}
			}
		}
		b.WriteString(src[i : i+size])
		runesOut++
		i += size
		prev = r
	}
	return b.String(), shifts
}

func isIdentRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// originalOffset maps a rune offset in the rewritten text back to src.
func originalOffset(shifts []offsetShift, off int) int {
	delta := 0
	for _, s := range shifts {
		if off >= s.at {
			delta = s.delta
		}
	}
	return max(0, off-delta)
}

// lineCol converts a rune offset in s to a 1-based line and column.
func lineCol(s string, off int) (int, int) {
	line, col, n := 1, 1, 0
	for _, r := range s {
		if n == off {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		n++
	}
	return line, col
}

// ExtractSpec is a parsed journey extraction: Kind json, header or regex.
type ExtractSpec struct {
	Kind string
	Arg  string
	Re   *regexp.Regexp
}

// ParseExtract parses an extract value: json:PATH, header:NAME or regex:RE.
func ParseExtract(s string) (ExtractSpec, error) {
	kind, arg, ok := strings.Cut(s, ":")
	if !ok || arg == "" {
		return ExtractSpec{}, fmt.Errorf("invalid extract %s: want json:PATH, header:NAME or regex:RE", quoteShort(s))
	}
	switch kind {
	case "json", "header":
		return ExtractSpec{Kind: kind, Arg: arg}, nil
	case "regex":
		re, err := regexp.Compile(arg)
		if err != nil {
			return ExtractSpec{}, fmt.Errorf("invalid extract regex %s: %v", quoteShort(arg), err)
		}
		return ExtractSpec{Kind: kind, Arg: arg, Re: re}, nil
	}
	return ExtractSpec{}, fmt.Errorf("invalid extract %s: unknown kind %q, want json, header or regex", quoteShort(s), kind)
}

// varNameRE is what ${name} may use.
var varNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (l *loader) validateProbes(cfg *Config, i int) {
	svc := &cfg.Services[i]
	allowInline := cfg.Steward.AllowInlineSecrets
	seen := map[string]int{}
	for j := range svc.Probes {
		p := &svc.Probes[j]
		path := fmt.Sprintf("services[%d].probes[%d]", i, j)
		if p.Name != "" {
			if k, dup := seen[p.Name]; dup {
				l.errorf(l.at(path+".name"), "duplicate probe %q in service %q (first defined at %s)", p.Name, svc.Name, l.at(fmt.Sprintf("services[%d].probes[%d].name", i, k)))
			} else {
				seen[p.Name] = j
			}
		}
		l.absProbeFiles(p, path)
		l.checkProbeKeys(p, path)
		l.checkLocations(p, path)
		l.checkSLO(p.SLO, path+".slo")
		iv, err1 := ParseDuration(p.Interval)
		if err1 != nil {
			l.errorf(l.at(path+".interval"), "%v", err1)
		} else if iv < time.Second {
			l.errorf(l.at(path+".interval"), "interval %s is shorter than 1s", p.Interval)
		}
		to, err2 := ParseDuration(p.Timeout)
		if err2 != nil {
			l.errorf(l.at(path+".timeout"), "%v", err2)
		}
		if err1 == nil && err2 == nil && to > iv {
			l.errorf(l.at(path+".timeout"), "timeout %s is longer than interval %s", p.Timeout, p.Interval)
		}
		if p.Assert != "" {
			l.checkAssert(AssertScopeOf(p.Type), p.Assert, path+".assert")
		}
		l.checkProbeSecrets(p.Headers, p.BasicAuth, p.BearerToken, path, allowInline)
		if (p.CertFile == "") != (p.KeyFile == "") {
			l.errorf(l.at(path+".cert_file"), "cert_file and key_file must be set together")
		}
		switch p.Type {
		case ProbeHTTP:
			l.checkProbeURL(p.URL, path+".url", allowInline, true)
		case ProbeTCP:
			l.checkHostPort(p.Address, "address", path+".address", true)
		case ProbeTLS:
			l.checkHostPort(p.Address, "address", path+".address", true)
		case ProbeDNS:
			if p.Query == "" {
				l.errorf(l.at(path), "dns probe %q needs query: the name to look up", p.Name)
			} else if !hostnameRE.MatchString(strings.TrimSuffix(p.Query, ".")) {
				l.errorf(l.at(path+".query"), "invalid query %s: not a DNS name", quoteShort(p.Query))
			}
			l.checkHostPort(p.Resolver, "resolver", path+".resolver", false)
		case ProbeJourney:
			l.checkJourney(p, path, allowInline)
		case ProbeRateLimit:
			l.checkRateLimit(p, path, allowInline)
		case ProbeBrowser:
			l.checkBrowser(p, path, allowInline)
		}
	}
}

// absProbeFiles makes the probe's relative file paths and file: secret
// references absolute against the directory of the file they are in.
func (l *loader) absProbeFiles(p *Probe, path string) {
	for key, f := range map[string]*string{"ca_file": &p.CAFile, "cert_file": &p.CertFile, "key_file": &p.KeyFile} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(l.dirOf(path+"."+key), *f)
		}
	}
	abs := func(h map[string]string, ba *BasicAuth, bt *Secret, path string) {
		for k, v := range h {
			h[k] = string(l.absSecret(Secret(v), fmt.Sprintf("%s.headers[%q]", path, k)))
		}
		ba.Password = l.absSecret(ba.Password, path+".basic_auth.password")
		*bt = l.absSecret(*bt, path+".bearer_token")
	}
	abs(p.Headers, &p.BasicAuth, &p.BearerToken, path)
	for _, list := range []struct {
		key   string
		steps []Step
	}{{"steps", p.Steps}, {"cleanup", p.Cleanup}} {
		for k := range list.steps {
			s := &list.steps[k]
			sp := fmt.Sprintf("%s.%s[%d]", path, list.key, k)
			abs(s.Headers, &s.BasicAuth, &s.BearerToken, sp)
			s.Fill.Value = l.absSecret(s.Fill.Value, sp+".fill.value")
		}
	}
}

// checkProbeKeys reports keys set to a non-default value that do not apply
// to the probe's type.
func (l *loader) checkProbeKeys(p *Probe, path string) {
	allowed, ok := probeKeys[p.Type]
	if !ok {
		return // the type is reported by the decoder
	}
	v := reflect.ValueOf(p).Elem()
	for _, f := range fieldsOf(v.Type()) {
		if slices.Contains(commonProbeKeys, f.key) || slices.Contains(allowed, f.key) {
			continue
		}
		fv := v.Field(f.index)
		if fv.IsZero() {
			continue
		}
		if f.def != "" && fmt.Sprint(fv.Interface()) == f.def {
			continue
		}
		var users []string
		for _, t := range []string{ProbeHTTP, ProbeTCP, ProbeDNS, ProbeTLS, ProbeJourney, ProbeRateLimit, ProbeBrowser} {
			if slices.Contains(probeKeys[t], f.key) {
				users = append(users, t)
			}
		}
		l.errorf(l.at(path+"."+f.key), "%s does not apply to %s probes (only to %s)", f.key, p.Type, strings.Join(users, ", "))
	}
}

func (l *loader) checkAssert(scope AssertScope, src, path string) {
	if _, err := CompileAssert(scope, src); err != nil {
		var ae *AssertError
		if errors.As(err, &ae) {
			l.errorf(l.at(path), "invalid assert expression at line %d, column %d of the expression: %s", ae.Line, ae.Col, firstLine(ae.Msg))
			return
		}
		l.errorf(l.at(path), "invalid assert expression: %s", firstLine(err.Error()))
	}
}

func (l *loader) checkProbeSecrets(headers map[string]string, ba BasicAuth, bt Secret, path string, allowInline bool) {
	for k, v := range headers {
		hp := fmt.Sprintf("%s.headers[%q]", path, k)
		if Secret(v).IsRef() {
			l.checkRef(Secret(v), "header "+k, l.at(hp))
		} else if isCredentialHeader(k) && v != "" && !strings.Contains(v, "${") && !allowInline {
			l.errorf(l.at(hp), "inline secret in header %s; %s", k, inlineHint)
		}
	}
	for _, s := range []struct {
		key string
		v   Secret
	}{{"basic_auth.password", ba.Password}, {"bearer_token", bt}} {
		switch {
		case s.v == "":
		case s.v.IsRef():
			l.checkRef(s.v, s.key, l.at(path+"."+s.key))
		case !allowInline:
			l.errorf(l.at(path+"."+s.key), "inline secret in %s; %s", s.key, inlineHint)
		}
	}
	if ba.Password != "" && ba.Username == "" {
		l.errorf(l.at(path+".basic_auth"), "basic_auth needs a username")
	}
}

// isCredentialHeader reports whether header k usually carries a secret.
func isCredentialHeader(k string) bool {
	k = strings.ToLower(k)
	return k == "authorization" || k == "proxy-authorization" || k == "cookie" || strings.Contains(k, "token") || strings.Contains(k, "api-key") || strings.Contains(k, "apikey") || strings.Contains(k, "secret")
}

// checkProbeURL validates an http(s) URL; required reports a missing one.
// Journey steps may use ${var}, so templated URLs are only checked for a
// scheme.
func (l *loader) checkProbeURL(s, path string, allowInline, required bool) *url.URL {
	if s == "" {
		if required {
			l.errorf(l.at(path[:strings.LastIndex(path, ".")]), "missing url: the http:// or https:// URL to request")
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if strings.Contains(s, "${") && (strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "${")) {
			return nil
		}
		l.errorf(l.at(path), "invalid url %s: want an http:// or https:// URL", quoteShort(s))
		return nil
	}
	if _, has := u.User.Password(); has && !allowInline {
		l.errorf(l.at(path), "inline password in url; use basic_auth with a secret reference, or %s", inlineHint)
	}
	return u
}

func (l *loader) checkHostPort(s, label, path string, required bool) {
	if s == "" {
		if required {
			l.errorf(l.at(path[:strings.LastIndex(path, ".")]), "missing %s: host:port to connect to", label)
		}
		return
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		l.errorf(l.at(path), "invalid %s %s: want host:port", label, quoteShort(s))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		l.errorf(l.at(path), "invalid %s %s: port must be a number from 1 to 65535", label, quoteShort(s))
	}
}

func (l *loader) checkJourney(p *Probe, path string, allowInline bool) {
	if len(p.Steps) == 0 {
		l.errorf(l.at(path), "journey %q has no steps", p.Name)
	}
	names := map[string]string{}
	defined := map[string]bool{}
	for _, list := range []struct {
		key   string
		steps []Step
	}{{"steps", p.Steps}, {"cleanup", p.Cleanup}} {
		for k, s := range list.steps {
			sp := fmt.Sprintf("%s.%s[%d]", path, list.key, k)
			if s.Name == "" {
				l.errorf(l.at(sp), "step is missing required key \"name\"")
			}
			if s.URL == "" {
				l.errorf(l.at(sp), "step is missing required key \"url\"")
			}
			for _, a := range s.actions() {
				if a != "assert" {
					l.errorf(l.at(sp+"."+a), "%s is a browser action; journey steps make HTTP requests (url, method, headers, body)", a)
				}
			}
			if s.Name != "" {
				if first, dup := names[s.Name]; dup {
					l.errorf(l.at(sp+".name"), "duplicate step %q in journey %q (first defined at %s)", s.Name, p.Name, l.at(first))
				} else {
					names[s.Name] = sp + ".name"
				}
			}
			l.checkProbeURL(s.URL, sp+".url", allowInline, false)
			l.checkProbeSecrets(s.Headers, s.BasicAuth, s.BearerToken, sp, allowInline)
			for _, text := range append([]string{s.URL, s.Body}, mapValues(s.Headers)...) {
				for _, m := range templateVarRE.FindAllStringSubmatch(text, -1) {
					if !defined[m[1]] {
						l.errorf(l.at(sp), "step %q uses ${%s}, which no earlier step extracts", s.Name, m[1])
					}
				}
			}
			for name, spec := range s.Extract {
				ep := fmt.Sprintf("%s.extract[%q]", sp, name)
				if !varNameRE.MatchString(name) {
					l.errorf(l.at(ep), "invalid variable name %s: use letters, digits and _", quoteShort(name))
				}
				if _, err := ParseExtract(spec); err != nil {
					l.errorf(l.at(ep), "%v", err)
				}
				defined[name] = true
			}
			if s.Assert != "" {
				l.checkAssert(ScopeStep, s.Assert, sp+".assert")
			}
		}
	}
	if p.Assert != "" {
		l.errorf(l.at(path+".assert"), "a journey asserts per step: move assert into its steps")
	}
}

// templateVarRE matches ${name} in journey steps.
var templateVarRE = regexp.MustCompile(`\$\{([^}]*)\}`)

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func (l *loader) checkRateLimit(p *Probe, path string, allowInline bool) {
	u := l.checkProbeURL(p.URL, path+".url", allowInline, true)
	if u != nil && !p.HostAllowed(u.Hostname()) {
		l.errorf(l.at(path+".url"), "ratelimit probe %q targets %s, which is not loopback; list it under allowed_hosts to flood it deliberately", p.Name, u.Hostname())
	}
	if p.Burst == 0 {
		l.errorf(l.at(path), "ratelimit probe %q needs burst: the most requests to send (at most %d)", p.Name, MaxBurst)
	}
	if p.ExpectThrottledAfter < 1 {
		l.errorf(l.at(path), "ratelimit probe %q needs expect_throttled_after: how many requests pass before throttling starts", p.Name)
	} else if p.Burst > 0 && p.ExpectThrottledAfter >= p.Burst {
		l.errorf(l.at(path+".expect_throttled_after"), "expect_throttled_after %d must be less than burst %d, or throttling is never reached", p.ExpectThrottledAfter, p.Burst)
	}
	if p.Window != "" {
		w, err := ParseDuration(p.Window)
		if err != nil {
			l.errorf(l.at(path+".window"), "%v", err)
		} else if to, err := ParseDuration(p.Timeout); err == nil && w > to {
			l.errorf(l.at(path+".window"), "window %s is longer than timeout %s", p.Window, p.Timeout)
		}
	}
	if p.Assert != "" {
		l.errorf(l.at(path+".assert"), "a ratelimit probe checks when throttling starts and takes no assert")
	}
	for k, h := range p.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			l.errorf(l.at(fmt.Sprintf("%s.allowed_hosts[%d]", path, k)), "invalid allowed host %s: want a host name or IP address without port", quoteShort(h))
		}
	}
}

// checkBrowser validates a browser probe: one action per step, each
// complete, and no journey keys. Unnamed steps are named after their
// position and action.
func (l *loader) checkBrowser(p *Probe, path string, allowInline bool) {
	if len(p.Steps) == 0 {
		l.errorf(l.at(path), "browser probe %q has no steps", p.Name)
	}
	if p.Assert != "" {
		l.errorf(l.at(path+".assert"), "a browser probe asserts in its steps: add a step {assert: ...}")
	}
	names := map[string]string{}
	for k := range p.Steps {
		s := &p.Steps[k]
		sp := fmt.Sprintf("%s.steps[%d]", path, k)
		acts := s.actions()
		switch {
		case len(acts) == 0:
			l.errorf(l.at(sp), "browser step %d has no action: set one of %s", k+1, strings.Join(BrowserActions, ", "))
		case len(acts) > 1:
			l.errorf(l.at(sp), "browser step %d has several actions (%s): use one step per action", k+1, strings.Join(acts, ", "))
		}
		for _, f := range []struct {
			key string
			set bool
		}{{"url", s.URL != ""}, {"method", s.Method != ""}, {"headers", len(s.Headers) > 0}, {"body", s.Body != ""}, {"basic_auth", s.BasicAuth != (BasicAuth{})}, {"bearer_token", s.BearerToken != ""}, {"extract", len(s.Extract) > 0}} {
			if f.set {
				l.errorf(l.at(sp+"."+f.key), "%s does not apply to browser steps (only to journey steps)", f.key)
			}
		}
		if s.Name == "" && len(acts) > 0 {
			s.Name = fmt.Sprintf("%d-%s", k+1, strings.ReplaceAll(acts[0], "_", "-"))
		}
		if s.Name != "" {
			if first, dup := names[s.Name]; dup {
				l.errorf(l.at(sp+".name"), "duplicate step %q in browser probe %q (first defined at %s)", s.Name, p.Name, l.at(first))
			} else {
				names[s.Name] = sp + ".name"
			}
		}
		if s.Navigate != "" {
			l.checkProbeURL(s.Navigate, sp+".navigate", allowInline, false)
			if strings.Contains(s.Navigate, "${") {
				l.errorf(l.at(sp+".navigate"), "browser steps have no variables: ${...} is not expanded")
			}
		}
		if s.Fill != (Fill{}) {
			if s.Fill.Selector == "" {
				l.errorf(l.at(sp+".fill"), "fill needs a selector: the CSS selector of the field")
			}
			if s.Fill.Value.IsRef() {
				l.checkRef(s.Fill.Value, "fill value", l.at(sp+".fill.value"))
			}
		}
		if s.WaitText != (WaitText{}) && (s.WaitText.Selector == "" || s.WaitText.Text == "") {
			l.errorf(l.at(sp+".wait_text"), "wait_text needs a selector and a text")
		}
		if s.Assert != "" {
			l.checkAssert(ScopeBrowser, s.Assert, sp+".assert")
		}
	}
}
