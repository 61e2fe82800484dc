package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strconv"
	"strings"

	"github.com/stewardhq/steward/internal/config"
)

var templateVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func (r *runner) journey(ctx context.Context, res *Result) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		res.Status, res.Error = Error, err.Error()
		return
	}
	c, err := r.client(jar, r.p.FollowRedirects, false)
	if err != nil {
		res.Status, res.Error = Error, err.Error()
		return
	}
	vars := map[string]string{}
	res.Status = Up
	failed := false
	for _, s := range r.p.Steps {
		if failed {
			break
		}
		sr := r.step(ctx, c, s, vars, false)
		res.Steps = append(res.Steps, sr)
		if sr.Status != Up {
			failed = true
			res.Status, res.Error = sr.Status, fmt.Sprintf("step %s: %s", s.Name, sr.Error)
		}
	}
	// Cleanup runs even when the journey failed or timed out, with a
	// context of its own bounded by the probe's timeout.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	for _, s := range r.p.Cleanup {
		sr := r.step(cctx, c, s, vars, true)
		res.Steps = append(res.Steps, sr)
		if sr.Status != Up && res.Status == Up {
			res.Status, res.Error = sr.Status, fmt.Sprintf("cleanup step %s: %s", s.Name, sr.Error)
		}
	}
	for _, s := range res.Steps {
		res.Phases.DNS += s.Phases.DNS
		res.Phases.Connect += s.Phases.Connect
		res.Phases.TLS += s.Phases.TLS
		res.Phases.Total += s.Phases.Total
	}
	if len(res.Steps) > 0 {
		res.Phases.FirstByte = res.Steps[0].Phases.FirstByte
	}
}

// step runs one journey step, extracting variables into vars.
func (r *runner) step(ctx context.Context, c *http.Client, s config.Step, vars map[string]string, cleanup bool) StepResult {
	sr := StepResult{Name: s.Name, Cleanup: cleanup, Assertion: s.Assert}
	prog, err := r.opts.Programs.compile(config.ScopeStep, s.Assert)
	if err != nil {
		sr.Status, sr.Error = Error, err.Error()
		return sr
	}
	expand := func(t string) (string, error) {
		var missing string
		out := templateVar.ReplaceAllStringFunc(t, func(m string) string {
			name := m[2 : len(m)-1]
			v, ok := vars[name]
			if !ok && missing == "" {
				missing = name
			}
			return v
		})
		if missing != "" {
			return "", fmt.Errorf("variable ${%s} was not extracted by an earlier step", missing)
		}
		return out, nil
	}
	u, err := expand(s.URL)
	sr.URL = u
	if err != nil {
		sr.Status, sr.Error = Down, err.Error()
		return sr
	}
	body, err := expand(s.Body)
	if err != nil {
		sr.Status, sr.Error = Down, err.Error()
		return sr
	}
	headers := map[string]string{}
	for k, v := range r.p.Headers {
		headers[k] = v
	}
	for k, v := range s.Headers {
		ev, err := expand(v)
		if err != nil {
			sr.Status, sr.Error = Down, err.Error()
			return sr
		}
		headers[k] = ev
	}
	basic, bearer := r.p.BasicAuth, r.p.BearerToken
	if s.BasicAuth.Username != "" || s.BearerToken != "" {
		basic, bearer = s.BasicAuth, s.BearerToken
	}
	if ctx.Err() != nil {
		sr.Status, sr.Error = Down, fmt.Sprintf("not run: timed out after %s", r.timeout)
		return sr
	}
	ex, st, msg := r.roundTrip(ctx, c, request{
		method: s.Method, url: u, body: body, headers: headers,
		basic: basic, bearer: bearer, maxBody: r.p.MaxBody,
	})
	sr.Code, sr.Duration, sr.Phases = ex.status, ex.duration, ex.phases
	if st != Up {
		sr.Status, sr.Error = st, msg
		return sr
	}
	// Extract first so the assertion can use this step's variables, but
	// report a failed assertion (or status) before a failed extraction.
	var extractErr error
	for name, spec := range s.Extract {
		v, err := extract(ex, spec)
		if err != nil {
			if extractErr == nil {
				extractErr = fmt.Errorf("extract %s: %w", name, err)
			}
			continue
		}
		if isSecretKey(name) {
			r.red.add(v)
		}
		vars[name] = v
	}
	sr.Status, sr.Error = check(ex, prog, s.Assert, vars, r.opts.Programs)
	if sr.Status == Up && extractErr != nil {
		sr.Status, sr.Error = Down, extractErr.Error()
	}
	return sr
}

// extract takes a value from a response: json:PATH, header:NAME, regex:RE.
func extract(ex exchange, spec string) (string, error) {
	es, err := config.ParseExtract(spec)
	if err != nil {
		return "", err
	}
	switch es.Kind {
	case "header":
		v := ex.headers.Get(es.Arg)
		if v == "" {
			return "", fmt.Errorf("response has no header %s", es.Arg)
		}
		return v, nil
	case "regex":
		m := es.Re.FindSubmatch(ex.body)
		if m == nil {
			return "", fmt.Errorf("regex %s does not match the response body", es.Arg)
		}
		if len(m) > 1 {
			return string(m[1]), nil
		}
		return string(m[0]), nil
	}
	var doc any
	if err := json.Unmarshal(ex.body, &doc); err != nil {
		return "", fmt.Errorf("response body is not valid JSON: %v", err)
	}
	cur := doc
	for _, key := range strings.Split(es.Arg, ".") {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[key]
			if !ok {
				return "", fmt.Errorf("JSON path %s: no key %q", es.Arg, key)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				return "", fmt.Errorf("JSON path %s: %q is not an index of a list of %d", es.Arg, key, len(x))
			}
			cur = x[i]
		default:
			return "", fmt.Errorf("JSON path %s: cannot look up %q in a %T", es.Arg, key, cur)
		}
	}
	switch x := cur.(type) {
	case string:
		return x, nil
	case nil:
		return "", fmt.Errorf("JSON path %s is null", es.Arg)
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b), nil
	default:
		return fmt.Sprint(x), nil
	}
}
