package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stewardhq/steward/internal/config"
)

const (
	// DefaultBrowserPoolSize is how many browsers a pool runs at once
	// unless told otherwise.
	DefaultBrowserPoolSize = 2
	// DefaultChromium is where Debian's chromium package installs Chromium.
	DefaultChromium = "/usr/bin/chromium"

	// maxPageText bounds the body text an assert step sees.
	maxPageText = 64 << 10
	// maxConsoleLog bounds the console log kept as an artifact.
	maxConsoleLog = 64 << 10
)

// BrowserPool bounds how many Chromium instances browser probes run at
// once, so that browser probes cannot exhaust memory. Share one pool
// among all runs; a run holds a slot for its whole duration.
type BrowserPool struct {
	sem  chan struct{}
	path string
	// started, when set, is called with the browser process once it
	// runs; tests use it to kill the browser mid-run.
	started func(*os.Process)
}

// NewBrowserPool returns a pool of size browsers (DefaultBrowserPoolSize
// when size < 1) that runs the Chromium binary at path (DefaultChromium
// when empty).
func NewBrowserPool(size int, path string) *BrowserPool {
	if size < 1 {
		size = DefaultBrowserPoolSize
	}
	if path == "" {
		path = DefaultChromium
	}
	return &BrowserPool{sem: make(chan struct{}, size), path: path}
}

// Size is how many browsers the pool runs at once.
func (bp *BrowserPool) Size() int { return cap(bp.sem) }

// Path is the Chromium binary the pool runs.
func (bp *BrowserPool) Path() string { return bp.path }

func (bp *BrowserPool) acquire(ctx context.Context) error {
	select {
	case bp.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (bp *BrowserPool) release() { <-bp.sem }

// checkChromium reports why the binary at path cannot be run, or nil.
func checkChromium(path string) error {
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("chromium not found at %s; install the chromium package", path)
	}
	return nil
}

// consoleLog collects the page's console messages, bounded.
type consoleLog struct {
	mu        sync.Mutex
	b         strings.Builder
	truncated bool
}

func (c *consoleLog) add(m chromedp.ConsoleMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := fmt.Sprintf("%s [%s] %s", m.Time.UTC().Format(time.RFC3339Nano), m.Type, m.Text)
	if m.URL != "" {
		line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
	}
	if c.b.Len()+len(line)+1 > maxConsoleLog {
		c.truncated = true
		return
	}
	c.b.WriteString(line + "\n")
}

func (c *consoleLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.truncated {
		return c.b.String() + "[console log truncated]\n"
	}
	return c.b.String()
}

// browser runs a browser probe: its steps in one fresh headless Chromium,
// within the probe's timeout, keeping a screenshot and the console log
// when a step fails.
func (r *runner) browser(ctx context.Context, res *Result) {
	pool := r.opts.BrowserPool
	if pool == nil {
		res.Status, res.Error = Error, "browser probes need a browser pool (probe.Options.BrowserPool is nil)"
		return
	}
	if err := checkChromium(pool.path); err != nil {
		res.Status, res.Error = Error, err.Error()
		return
	}
	// Resolve secrets before taking a browser, and register them for
	// redaction.
	fills := make([]string, len(r.p.Steps))
	for i, s := range r.p.Steps {
		if s.Navigate != "" {
			if u, err := url.Parse(s.Navigate); err == nil {
				r.red.addURL(u)
			}
		}
		if s.Fill == (config.Fill{}) {
			continue
		}
		v, err := s.Fill.Value.Resolve()
		if err != nil {
			res.Status, res.Error = Error, fmt.Sprintf("step %s: fill value: %v", s.Name, err)
			return
		}
		if s.Fill.Value.IsRef() {
			r.red.add(v)
		}
		fills[i] = v
	}
	if err := pool.acquire(ctx); err != nil {
		res.Status, res.Error = Error, fmt.Sprintf("no browser free within the timeout %s: all %d browsers of the pool are busy", r.timeout, pool.Size())
		return
	}
	defer pool.release()

	dir, err := os.MkdirTemp("", "steward-chromium-")
	if err != nil {
		res.Status, res.Error = Error, fmt.Sprintf("create chromium profile directory: %v", err)
		return
	}
	// Deferred first, so it runs after the browser has exited.
	defer os.RemoveAll(dir)

	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(pool.path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
	)
	defer cancelAlloc() // kills the browser and waits for it
	logf := func(string, ...any) {}
	if lg := r.opts.Logger; lg != nil {
		logf = func(format string, args ...any) {
			lg.Debug("chromium", "probe", r.p.Name, "msg", r.red.redact(fmt.Sprintf(format, args...)))
		}
	}
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil {
		res.Status, res.Error = Error, r.browserFault(ctx, err, "start chromium")
		return
	}
	if pool.started != nil {
		pool.started(chromedp.FromContext(bctx).Browser.Process())
	}

	// The console is read until the steps end; the reader exits when
	// cctx is canceled.
	var console consoleLog
	cctx, stopConsole := context.WithCancel(bctx)
	msgs := chromedp.Console(cctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			console.add(m)
		}
	})
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopConsole()
			wg.Wait()
		}
	}
	defer stop()

	// Steps stop short of the run's deadline, keeping time for the
	// artifacts of a failure.
	reserve := min(3*time.Second, r.timeout/4)
	sctx := bctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		sctx, cancel = context.WithDeadline(bctx, dl.Add(-reserve))
		defer cancel()
	}
	start := time.Now()
	res.Status = Up
	var secretSelectors []string
	for i, s := range r.p.Steps {
		sr := r.browserStep(ctx, sctx, s, fills[i], start)
		res.Steps = append(res.Steps, sr)
		if s.Fill.Value.IsRef() {
			secretSelectors = append(secretSelectors, s.Fill.Selector)
		}
		if sr.Status != Up {
			res.Status, res.Error = sr.Status, fmt.Sprintf("step %s: %s", s.Name, sr.Error)
			break
		}
	}
	res.Phases.Total = time.Since(start)
	if res.Status == Up {
		return
	}

	// Failure: keep a screenshot (with secret fields blanked) and the
	// console log, when the browser still runs.
	if bctx.Err() == nil {
		shotCtx, cancel := context.WithTimeout(bctx, reserve)
		for _, sel := range secretSelectors {
			js := fmt.Sprintf(`document.querySelectorAll(%s).forEach(e => { if ("value" in e) e.value = ""; })`, jsString(sel))
			_, _ = chromedp.Run(shotCtx, chromedp.Evaluate[*struct{}](js))
		}
		png, err := chromedp.Run(shotCtx, chromedp.CaptureScreenshot())
		cancel()
		if err == nil && len(png) > 0 {
			res.Artifacts = append(res.Artifacts, Artifact{Name: "screenshot.png", ContentType: "image/png", Data: png})
		} else if err != nil && r.opts.Logger != nil {
			r.opts.Logger.Debug("browser probe screenshot", "probe", r.p.Name, "error", r.red.redact(err.Error()))
		}
	}
	stop()
	if text := console.String(); text != "" {
		res.Artifacts = append(res.Artifacts, Artifact{Name: "console.log", ContentType: "text/plain; charset=utf-8", Data: []byte(r.red.redact(text))})
	}
}

// browserStep runs one browser step; runStart is when the first step
// started, for the duration an assert step sees.
func (r *runner) browserStep(runCtx, ctx context.Context, s config.Step, fill string, runStart time.Time) (sr StepResult) {
	sr = StepResult{Name: s.Name, URL: s.Navigate, Assertion: s.Assert}
	if ctx.Err() != nil {
		sr.Status, sr.Error = Down, fmt.Sprintf("not run: timed out after %s", r.timeout)
		return sr
	}
	t0 := time.Now()
	defer func() { sr.Duration = time.Since(t0) }()
	var err error
	switch s.Action() {
	case "navigate":
		var resp *networkResponse
		resp, err = navigate(ctx, s.Navigate)
		if err == nil && resp != nil {
			sr.Code = resp.status
			if resp.status >= 400 {
				sr.Status, sr.Error = Down, fmt.Sprintf("navigate to %s: HTTP status %d", s.Navigate, resp.status)
				return sr
			}
		}
	case "click":
		err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(s.Click)))
	case "fill":
		err = chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(s.Fill.Selector), fill))
	case "wait_for":
		err = chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(s.WaitFor)))
	case "wait_text":
		js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e !== null && e.innerText.includes(%s); })()`, jsString(s.WaitText.Selector), jsString(s.WaitText.Text))
		err = pollPage(ctx, func() (bool, error) {
			return chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		})
	case "assert":
		prog, cerr := r.opts.Programs.compile(config.ScopeBrowser, s.Assert)
		if cerr != nil {
			sr.Status, sr.Error = Error, cerr.Error()
			return sr
		}
		var page pageState
		js := fmt.Sprintf(`({title: document.title, url: location.href, text: document.body ? document.body.innerText.slice(0, %d) : ""})`, maxPageText)
		err = pollPage(ctx, func() (bool, error) {
			var err error
			page, err = chromedp.Run(ctx, chromedp.Evaluate[pageState](js))
			return err == nil, err
		})
		if err == nil {
			env := config.BrowserEnv{Title: page.Title, URL: page.URL, Text: page.Text, Duration: time.Since(runStart)}
			if msg := evaluate(prog, env, s.Assert); msg != "" {
				sr.Status, sr.Error = Down, msg
				return sr
			}
		}
	default:
		sr.Status, sr.Error = Error, "step has no action"
		return sr
	}
	if err != nil {
		sr.Status, sr.Error = r.browserStepError(runCtx, ctx, err, s)
		return sr
	}
	sr.Status = Up
	return sr
}

// pollPage calls check every 100ms until it reports true or ctx ends. An
// error is taken for "not yet", since evaluations fail while a page is
// being replaced (after a click that navigates); the last one is returned
// with the context's error.
func pollPage(ctx context.Context, check func() (bool, error)) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		ok, err := check()
		if ok {
			return nil
		}
		if err != nil {
			if _, crashed := crashReason(err); crashed {
				return err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// pageState is what an assert step reads from the page.
type pageState struct {
	Title string `json:"title"`
	URL   string `json:"url"`
	Text  string `json:"text"`
}

// networkResponse is what a navigation returned.
type networkResponse struct{ status int }

func navigate(ctx context.Context, u string) (*networkResponse, error) {
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil || resp == nil {
		return nil, err
	}
	return &networkResponse{status: int(resp.Status)}, nil
}

// browserStepError explains why step s failed: a timeout names what was
// awaited, a dead browser is an error of the probe, not of the target.
func (r *runner) browserStepError(runCtx, ctx context.Context, err error, s config.Step) (Status, string) {
	if msg, crashed := crashReason(err); crashed {
		return Error, msg
	}
	if errors.Is(runCtx.Err(), context.Canceled) {
		return Down, "canceled"
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		var what string
		switch s.Action() {
		case "navigate":
			what = "page " + s.Navigate + " to load"
		case "click":
			what = fmt.Sprintf("selector %q to click", s.Click)
		case "fill":
			what = fmt.Sprintf("selector %q to fill", s.Fill.Selector)
		case "wait_for":
			what = fmt.Sprintf("selector %q", s.WaitFor)
		case "wait_text":
			what = fmt.Sprintf("text %q in selector %q", s.WaitText.Text, s.WaitText.Selector)
		default:
			what = "the page"
		}
		return Down, fmt.Sprintf("timed out after %s waiting for %s", r.timeout, what)
	}
	var le *chromedp.LoadError
	if errors.As(err, &le) {
		return Down, fmt.Sprintf("navigate to %s: %s", s.Navigate, le.ErrorText)
	}
	var ex *chromedp.ExceptionError
	if errors.As(err, &ex) {
		return Down, fmt.Sprintf("%s: JavaScript exception: %s", s.Action(), firstLine(ex.Error()))
	}
	return Down, fmt.Sprintf("%s: %s", s.Action(), firstLine(err.Error()))
}

// browserFault explains an error outside the steps.
func (r *runner) browserFault(ctx context.Context, err error, what string) string {
	if msg, crashed := crashReason(err); crashed {
		return msg
	}
	if ctx.Err() != nil {
		return fmt.Sprintf("%s: timed out after %s", what, r.timeout)
	}
	return fmt.Sprintf("%s: %s", what, firstLine(err.Error()))
}

// crashReason reports whether err says the browser process died.
func crashReason(err error) (string, bool) {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Sprintf("chromium exited unexpectedly (%s); the run was abandoned", exit), true
	}
	return "", false
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
