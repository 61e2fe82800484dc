package probe

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/stewardhq/steward/internal/config"
)

// Status is the outcome of a probe run.
type Status string

const (
	// Up: the target answered and every assertion held.
	Up Status = "up"
	// Down: the target failed (unreachable, TLS error, timeout, wrong
	// answer, failed assertion).
	Down Status = "down"
	// Error: the probe itself could not run (an unresolvable secret, an
	// unreadable CA file, a forbidden ratelimit target).
	Error Status = "error"
	// Broken: the location could not probe (its agent's self-check
	// failed: no network, no resolver), so the result says nothing about
	// the target. It does not count as down, nor against an error budget.
	Broken Status = "broken"
)

// Phases are the timings of one request. Zero means the phase did not
// happen (no DNS lookup for an IP address, no TLS for http://).
type Phases struct {
	DNS       time.Duration `json:"dns"`
	Connect   time.Duration `json:"connect"`
	TLS       time.Duration `json:"tls"`
	FirstByte time.Duration `json:"first_byte"`
	Total     time.Duration `json:"total"`
}

// StepResult is the outcome of one journey step, or of one cleanup step.
type StepResult struct {
	Name      string        `json:"name"`
	Cleanup   bool          `json:"cleanup,omitempty"`
	Status    Status        `json:"status"`
	URL       string        `json:"url"` // redacted
	Code      int           `json:"code,omitempty"`
	Duration  time.Duration `json:"duration"`
	Phases    Phases        `json:"phases"`
	Error     string        `json:"error,omitempty"`
	Assertion string        `json:"assertion,omitempty"`
}

// Result is the outcome of one probe run. Error and every URL in it are
// free of secrets.
type Result struct {
	Probe    string        `json:"probe"`
	Type     string        `json:"type"`
	Status   Status        `json:"status"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	Phases   Phases        `json:"phases"`
	// Code is the HTTP status of an http probe.
	Code int `json:"code,omitempty"`
	// DaysLeft is the certificate's remaining validity of a tls probe.
	DaysLeft int `json:"days_left,omitempty"`
	// Answers are the answers of a dns probe.
	Answers []string `json:"answers,omitempty"`
	// ThrottledAt is the request a ratelimit probe was first throttled at.
	ThrottledAt int          `json:"throttled_at,omitempty"`
	Steps       []StepResult `json:"steps,omitempty"`
	// Error is why the run is down or error, for people.
	Error string `json:"error,omitempty"`
	// Assertion is the assert expression that was evaluated.
	Assertion string `json:"assertion,omitempty"`
	// Artifacts are kept when a browser probe fails: a screenshot and the
	// console log. Data is base64 in JSON.
	Artifacts []Artifact `json:"artifacts,omitempty"`
}

// Artifact is a file kept with a failed run. A run returns it with its
// Data (base64 in JSON); once the Recorder has stored it in the store's
// probe_artifacts table, the result keeps only the reference: ID, Size,
// Truncated and SHA256 (see StoreArtifacts).
type Artifact struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Data        []byte `json:"data,omitempty"`
	ID          int64  `json:"id,omitempty"`
	Size        int64  `json:"size,omitempty"`
	Truncated   bool   `json:"truncated,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	// Error says why the artifact was not stored; its data is dropped.
	Error string `json:"error,omitempty"`
}

// Options tune a run.
type Options struct {
	// Logger receives a debug line per run; nil discards.
	Logger *slog.Logger
	// Resolver looks up host names; nil is the system resolver. A dns
	// probe with its own resolver ignores it.
	Resolver *net.Resolver
	// BrowserPool bounds the Chromium instances of browser probes; share
	// one among all runs. Browser probes fail without one.
	BrowserPool *BrowserPool
	// Programs caches compiled assert expressions; share one among all
	// runs. Nil compiles each run's expressions afresh.
	Programs *ProgramCache
}

// Run runs probe p once, within its timeout, and returns the result. It
// never panics on a failing target and returns when ctx is done or the
// timeout expires.
func Run(ctx context.Context, p *config.Probe, opts Options) (res Result) {
	start := time.Now()
	res = Result{Probe: p.Name, Type: p.Type, Started: start, Assertion: p.Assert}
	red := newRedactor()
	defer func() {
		if r := recover(); r != nil {
			res.Status, res.Error = Error, fmt.Sprintf("internal error in %s probe: %v", p.Type, r)
		}
		res.Duration = time.Since(start)
		res.Error = red.redact(res.Error)
		for i := range res.Steps {
			res.Steps[i].Error = red.redact(res.Steps[i].Error)
			res.Steps[i].URL = red.redact(res.Steps[i].URL)
		}
		if opts.Logger != nil {
			opts.Logger.Debug("probe run", "probe", p.Name, "type", p.Type, "status", res.Status, "duration", res.Duration, "error", res.Error)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, p.TimeoutDuration())
	defer cancel()
	r := &runner{p: p, opts: opts, red: red, timeout: p.TimeoutDuration()}
	switch p.Type {
	case config.ProbeHTTP:
		r.http(ctx, &res)
	case config.ProbeTCP:
		r.tcp(ctx, &res)
	case config.ProbeDNS:
		r.dns(ctx, &res)
	case config.ProbeTLS:
		r.tls(ctx, &res)
	case config.ProbeJourney:
		r.journey(ctx, &res)
	case config.ProbeRateLimit:
		r.ratelimit(ctx, &res)
	case config.ProbeBrowser:
		r.browser(ctx, &res)
	default:
		res.Status, res.Error = Error, fmt.Sprintf("unknown probe type %q", p.Type)
	}
	return res
}

// runner holds what one run needs.
type runner struct {
	p       *config.Probe
	opts    Options
	red     *redactor
	timeout time.Duration
}

// evaluate runs a compiled assertion, reporting a failure reason or "".
func evaluate(prog *vm.Program, env any, src string) string {
	out, err := vm.Run(prog, env)
	if err != nil {
		return fmt.Sprintf("assertion %q could not be evaluated: %s", src, firstLine(err.Error()))
	}
	if ok, _ := out.(bool); !ok {
		return fmt.Sprintf("assertion failed: %s", src)
	}
	return ""
}

// compile compiles an assertion of scope, or returns nil for none.
func compile(scope config.AssertScope, src string) (*vm.Program, error) {
	if src == "" {
		return nil, nil
	}
	prog, err := config.CompileAssert(scope, src)
	if err != nil {
		return nil, fmt.Errorf("invalid assert expression: %w", err)
	}
	return prog, nil
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
