package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/stewardhq/steward/internal/config"
)

var errTooManyRedirects = errors.New("too many redirects")

// request is one HTTP request to make.
type request struct {
	method, url, body string
	headers           map[string]string
	basic             config.BasicAuth
	bearer            config.Secret
	maxBody           int
}

// exchange is a response read in full.
type exchange struct {
	status   int
	headers  http.Header
	body     []byte
	phases   Phases
	duration time.Duration
}

// client builds the HTTP client of the probe: its TLS settings, redirect
// limit, cookie jar, and for ratelimit probes a dial guard.
func (r *runner) client(jar http.CookieJar, redirects int, guard bool) (*http.Client, error) {
	tc := &tls.Config{InsecureSkipVerify: r.p.TLSSkipVerify} //nolint:gosec // the user's explicit choice
	if r.p.CAFile != "" {
		pool, err := loadCAs(r.p.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if r.p.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(r.p.CertFile, r.p.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s: %w", r.p.CertFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	d := &net.Dialer{Resolver: r.opts.Resolver}
	if guard {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if !config.IsLoopbackHost(host) {
				return &forbiddenError{host: host}
			}
			return nil
		}
	}
	tr := &http.Transport{
		DialContext:       d.DialContext,
		TLSClientConfig:   tc,
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}
	c := &http.Client{
		Transport: tr,
		Jar:       jar,
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if redirects == 0 {
				return http.ErrUseLastResponse
			}
			if len(via) > redirects {
				return fmt.Errorf("%w (more than %d)", errTooManyRedirects, redirects)
			}
			return nil
		},
	}
	return c, nil
}

// forbiddenError is a ratelimit probe dialing an address it may not flood.
type forbiddenError struct{ host string }

func (e *forbiddenError) Error() string {
	return fmt.Sprintf("refusing to flood %s: the name resolved to an address that is not loopback; list the name under allowed_hosts", e.host)
}

func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// resolveHeaders resolves secret references among header values and
// registers every secret with the redactor.
func (r *runner) resolveHeaders(req request) (http.Header, error) {
	h := http.Header{}
	for k, v := range req.headers {
		s := config.Secret(v)
		if s.IsRef() {
			val, err := s.Resolve()
			if err != nil {
				return nil, fmt.Errorf("resolve header %s: %w", k, err)
			}
			r.red.add(val)
			v = val
		} else if isSensitiveHeader(k) {
			r.red.add(v)
		}
		h.Set(k, v)
	}
	if req.basic.Username != "" || req.basic.Password != "" {
		pw, err := resolveSecret(req.basic.Password, "basic_auth.password")
		if err != nil {
			return nil, err
		}
		r.red.add(pw)
		hr := &http.Request{Header: http.Header{}}
		hr.SetBasicAuth(req.basic.Username, pw)
		a := hr.Header.Get("Authorization")
		r.red.add(strings.TrimPrefix(a, "Basic "))
		h.Set("Authorization", a)
	}
	if req.bearer != "" {
		tok, err := resolveSecret(req.bearer, "bearer_token")
		if err != nil {
			return nil, err
		}
		r.red.add(tok)
		h.Set("Authorization", "Bearer "+tok)
	}
	return h, nil
}

func resolveSecret(s config.Secret, label string) (string, error) {
	if s == "" {
		return "", nil
	}
	v, err := s.Resolve()
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", label, err)
	}
	return v, nil
}

func isSensitiveHeader(k string) bool {
	k = strings.ToLower(k)
	return k == "authorization" || k == "proxy-authorization" || k == "cookie" || isSecretKey(k)
}

// roundTrip makes req with c and reads the body up to its limit. It
// returns the exchange, and on failure the status and reason.
func (r *runner) roundTrip(ctx context.Context, c *http.Client, req request) (exchange, Status, string) {
	var ex exchange
	u, err := url.Parse(req.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ex, Error, fmt.Sprintf("invalid url %q: want an http:// or https:// URL", req.url)
	}
	r.red.addURL(u)
	shown := r.red.redact(u.Redacted())
	h, err := r.resolveHeaders(req)
	if err != nil {
		return ex, Error, err.Error()
	}
	method := req.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	tr := newTracer()
	hreq, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, tr.trace()), method, req.url, body)
	if err != nil {
		return ex, Error, fmt.Sprintf("build request: %v", err)
	}
	for k, vs := range h {
		hreq.Header[k] = vs
	}
	if hreq.Header.Get("User-Agent") == "" {
		hreq.Header.Set("User-Agent", "steward-probe")
	}
	start := tr.begin()
	resp, err := c.Do(hreq)
	if err != nil {
		ex.phases = tr.phases(time.Since(start))
		ex.duration = time.Since(start)
		var ue *url.Error
		if errors.Is(err, errTooManyRedirects) && errors.As(err, &ue) {
			return ex, Down, fmt.Sprintf("%s: %v", shown, ue.Err)
		}
		var fe *forbiddenError
		if errors.As(err, &fe) {
			return ex, Error, fe.Error()
		}
		return ex, Down, reason(ctx, err, shown, r.timeout)
	}
	defer resp.Body.Close()
	limit := req.maxBody
	if limit <= 0 {
		limit = 1 << 20
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	ex.duration = time.Since(start)
	ex.phases = tr.phases(ex.duration)
	ex.status, ex.headers = resp.StatusCode, resp.Header
	if err != nil {
		return ex, Down, "read response body: " + reason(ctx, err, "the body of "+shown, r.timeout)
	}
	if len(b) > limit {
		return ex, Down, fmt.Sprintf("response body of %s is too large: more than max_body (%d bytes)", shown, limit)
	}
	ex.body = b
	return ex, Up, ""
}

// check applies an assertion (or the default 200–399 rule) to ex; pc (nil
// for none) answers whether the assertion uses json.
func check(ex exchange, prog *vm.Program, src string, vars map[string]string, pc *ProgramCache) (Status, string) {
	if prog == nil {
		if ex.status < 200 || ex.status > 399 {
			return Down, fmt.Sprintf("unexpected HTTP status %d (want 200-399, or set assert)", ex.status)
		}
		return Up, ""
	}
	var js any
	if len(bytes.TrimSpace(ex.body)) > 0 {
		if err := json.Unmarshal(ex.body, &js); err != nil {
			js = nil
			if pc.assertUses(src, "json") {
				return Down, fmt.Sprintf("response body is not valid JSON, which the assertion needs: %v", err)
			}
		}
	} else if pc.assertUses(src, "json") {
		return Down, "response body is empty, and the assertion needs JSON"
	}
	hm := headerMap(ex.headers)
	var env any = config.HTTPEnv{Status: ex.status, Duration: ex.duration, Headers: hm, Body: string(ex.body), JSON: js}
	if vars != nil {
		env = config.StepEnv{Status: ex.status, Duration: ex.duration, Headers: hm, Body: string(ex.body), JSON: js, Vars: vars}
	}
	if msg := evaluate(prog, env, src); msg != "" {
		return Down, msg
	}
	return Up, ""
}

// headerMap has each header's first value under its canonical name and
// under its lowercase name.
func headerMap(h http.Header) map[string]string {
	m := make(map[string]string, 2*len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			m[k] = vs[0]
			m[strings.ToLower(k)] = vs[0]
		}
	}
	return m
}

func (r *runner) http(ctx context.Context, res *Result) {
	prog, err := r.opts.Programs.compile(config.ScopeHTTP, r.p.Assert)
	if err != nil {
		res.Status, res.Error = Error, err.Error()
		return
	}
	c, err := r.client(nil, r.p.FollowRedirects, false)
	if err != nil {
		res.Status, res.Error = Error, err.Error()
		return
	}
	ex, st, msg := r.roundTrip(ctx, c, request{
		method: r.p.Method, url: r.p.URL, body: r.p.Body, headers: r.p.Headers,
		basic: r.p.BasicAuth, bearer: r.p.BearerToken, maxBody: r.p.MaxBody,
	})
	res.Phases, res.Code = ex.phases, ex.status
	if st != Up {
		res.Status, res.Error = st, msg
		return
	}
	res.Status, res.Error = check(ex, prog, r.p.Assert, nil, r.opts.Programs)
}

// tracer records the phases of a request; redirects add up.
type tracer struct {
	mu                            sync.Mutex
	start                         time.Time
	dnsStart, connStart, tlsStart time.Time
	dns, connect, tls             time.Duration
	firstByte                     time.Duration
}

func newTracer() *tracer { return &tracer{} }

// begin marks the request's start, from which the first byte and the
// total are measured, and returns it.
func (t *tracer) begin() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.start = time.Now()
	return t.start
}

func (t *tracer) trace() *httptrace.ClientTrace {
	lock := func(f func()) { t.mu.Lock(); f(); t.mu.Unlock() }
	return &httptrace.ClientTrace{
		DNSStart:          func(httptrace.DNSStartInfo) { lock(func() { t.dnsStart = time.Now() }) },
		DNSDone:           func(httptrace.DNSDoneInfo) { lock(func() { t.dns += time.Since(t.dnsStart) }) },
		ConnectStart:      func(string, string) { lock(func() { t.connStart = time.Now() }) },
		ConnectDone:       func(string, string, error) { lock(func() { t.connect += time.Since(t.connStart) }) },
		TLSHandshakeStart: func() { lock(func() { t.tlsStart = time.Now() }) },
		TLSHandshakeDone:  func(tls.ConnectionState, error) { lock(func() { t.tls += time.Since(t.tlsStart) }) },
		GotFirstResponseByte: func() {
			lock(func() { t.firstByte = time.Since(t.start) })
		},
	}
}

func (t *tracer) phases(total time.Duration) Phases {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Phases{DNS: t.dns, Connect: t.connect, TLS: t.tls, FirstByte: t.firstByte, Total: total}
}
