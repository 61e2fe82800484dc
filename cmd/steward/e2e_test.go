package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

// The end-to-end test of the web UI: Debian's Chromium, driven by chromedp,
// against a running `steward serve` on loopback.
//
// Screenshots of the main pages go to $STEWARD_ARTIFACTS (CI keeps them)
// or to the test's temporary directory; with STEWARD_UPDATE_SCREENSHOTS=1
// they also replace docs/screenshots/*.png.

const e2eConfig = `steward:
  data_dir: data
services:
  - name: shop
    description: The web shop
    tier: 1
    owners: [team-shop]
    objectives: {rto: 30m, rpo: 1h}
    contacts:
      oncall: {name: shop-oncall, phone: "+41 44 000 00 00"}
      escalation: {name: Head of Operations, email: ops@example.com}
      provider_noc: {name: Hoster NOC, email: noc@hoster.example}
  - name: billing
    description: Invoices and payments
    tier: 2
    owners: [team-billing]
policies:
  approvals:
    - name: deploys
      match: {action: [deploy.gate]}
      require: [{approvals: 1, from: ["role:approver"]}]
      expires: 1h
`

// e2eViewport is the size of the browser window and the screenshots.
const e2eWidth, e2eHeight = 1280, 900

func TestWebUIEndToEnd(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(probe.DefaultChromium); err != nil {
		testenv.Skip(t, "chromium not found at %s (install Debian's chromium package): %v", probe.DefaultChromium, err)
	}
	start := time.Now()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(cfg, []byte(e2eConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	storeURL := "sqlite://" + filepath.Join(dir, "steward.db")
	tokens := map[string]string{}
	for _, u := range []struct {
		name  string
		roles []string
	}{{"alice", []string{"operator"}}, {"bob", []string{"approver", "auditor"}}, {"vic", []string{"viewer"}}} {
		args := []string{"-c", cfg, "--store", storeURL, "user", "add", u.name, "-o", "json"}
		for _, r := range u.roles {
			args = append(args, "--role", r)
		}
		r := steward(t, args...)
		var res userAddResult
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
			t.Fatalf("user add %s: %+v", u.name, r)
		}
		tokens[u.name] = res.Token
	}
	seedE2E(t, storeURL, time.Now())
	t.Logf("users and history ready after %v", time.Since(start).Round(time.Millisecond))

	base, stop := startServeConfig(t, cfg, storeURL)
	defer stop()
	t.Logf("serve ready after %v", time.Since(start).Round(time.Millisecond))

	// alice asks to deploy through the real pipeline.
	var created struct {
		Action struct {
			ID int64 `json:"id"`
		} `json:"action"`
	}
	apiCall(t, base, "POST", "/api/v1/actions", tokens["alice"],
		`{"kind":"deploy.gate","service":"shop","params":{"version":"v2.4.0"},"reason":"release 2.4.0 (INC-204)"}`, http.StatusCreated, &created)
	id := created.Action.ID
	card := fmt.Sprintf("#action-%d", id)

	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(probe.DefaultChromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.WindowSize(e2eWidth, e2eHeight),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium")),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Logf("chromium ready after %v", time.Since(start).Round(time.Millisecond))
	// Each user browses in a browser context of their own (own cookies).
	session := func(user string) context.Context {
		t.Helper()
		ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		// Generous: a loaded CI machine makes Chromium slow; a hang still
		// fails with the page's text (waitJS).
		ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
		t.Cleanup(cancelTimeout)
		login(t, ctx, base, tokens[user])
		return ctx
	}
	shots := screenshotDirs(t)

	// The viewer sees the pending action but has no button, and a forged
	// post (with the viewer's cookie and a valid CSRF token) is refused.
	vic := session("vic")
	browse(t, vic, chromedp.Navigate(base+"/approvals"), chromedp.WaitVisible(chromedp.CSS(card)))
	if n := evalJS[int](t, vic, fmt.Sprintf(`document.querySelectorAll(%q).length`, card+" button")); n != 0 {
		t.Fatalf("the viewer sees %d buttons on the action's card", n)
	}
	if txt := evalJS[string](t, vic, fmt.Sprintf(`document.querySelector(%q).innerText`, card)); !strings.Contains(txt, "You are not among those who may approve") {
		t.Fatalf("the viewer's card says:\n%s", txt)
	}
	browse(t, vic, chromedp.Navigate(fmt.Sprintf("%s/actions/%d", base, id)), chromedp.WaitVisible(chromedp.CSS("h1")))
	if n := evalJS[int](t, vic, `document.querySelectorAll('main form[action$="/approve"], main form[action$="/reject"]').length`); n != 0 {
		t.Fatalf("the viewer sees %d vote forms on the action's page", n)
	}
	csrf := evalJS[string](t, vic, `document.querySelector('meta[name="csrf-token"]').content`)
	var pending struct {
		Action struct {
			PlanHash string `json:"plan_hash"`
		} `json:"action"`
	}
	apiCall(t, base, "GET", fmt.Sprintf("/api/v1/actions/%d", id), tokens["vic"], "", http.StatusOK, &pending)
	form := url.Values{"plan_hash": {pending.Action.PlanHash}, "comment": {"forged"}, "csrf": {csrf}}
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/actions/%d/approve", base, id), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.AddCookie(&http.Cookie{Name: "steward_token", Value: tokens["vic"]})
	if code, body := send(t, req); code != http.StatusForbidden || !strings.Contains(body, "not eligible") {
		t.Fatalf("forged approval by the viewer: %d\n%s", code, body)
	}

	t.Logf("viewer checks done after %v", time.Since(start).Round(time.Millisecond))

	// bob: the overview, the service, then approving without a reload.
	bob := session("bob")
	browse(t, bob, chromedp.WaitVisible(chromedp.CSS("h1")))
	if txt := evalJS[string](t, bob, `document.querySelector("main").innerText`); !strings.Contains(txt, "Overview") ||
		!strings.Contains(txt, "waiting for you") || !strings.Contains(txt, "shop") || !strings.Contains(txt, "Needs attention") {
		t.Fatalf("overview:\n%s", txt)
	}
	shots.save(t, bob, "overview")

	browse(t, bob, chromedp.Click(chromedp.CSS(`table.overview a[href="/services/shop"]`)), chromedp.WaitVisible(chromedp.CSS("svg.drill-chart")))
	if txt := evalJS[string](t, bob, `document.querySelector("main").innerText`); !strings.Contains(txt, "Restore drills") ||
		!strings.Contains(txt, "orders-fk") || !strings.Contains(txt, "shop-oncall") {
		t.Fatalf("service page:\n%s", txt)
	}
	shots.save(t, bob, "service")
	evalJS[bool](t, bob, `document.getElementById("drills").scrollIntoView(), true`)
	shots.save(t, bob, "service-drills")

	browse(t, bob, chromedp.Navigate(base+"/approvals"), chromedp.WaitVisible(chromedp.CSS(card+` form[action$="/approve"] button`)))
	shots.save(t, bob, "approvals")
	evalJS[bool](t, bob, `window.stewardNoReload = true`)
	browse(t, bob,
		chromedp.SendKeys(chromedp.CSS(card+` textarea[name="comment"]`), "checked the plan"),
		chromedp.Click(chromedp.CSS(card+` form[action$="/approve"] button`)),
	)
	waitJS(t, bob, fmt.Sprintf(`(document.querySelector(%q)?.innerText || "").includes("Your approval was recorded.")`, card))
	if !evalJS[bool](t, bob, `window.stewardNoReload === true && location.pathname === "/approvals"`) {
		t.Fatal("approving reloaded the page")
	}
	var shown struct {
		Action struct {
			State string `json:"state"`
		} `json:"action"`
		Approvals []struct {
			User, Decision, Comment, Via string
		} `json:"approvals"`
	}
	apiCall(t, base, "GET", fmt.Sprintf("/api/v1/actions/%d", id), tokens["bob"], "", http.StatusOK, &shown)
	if shown.Action.State == "pending_approval" || len(shown.Approvals) != 1 || shown.Approvals[0].User != "bob" ||
		shown.Approvals[0].Decision != "approve" || shown.Approvals[0].Via != "ui" || shown.Approvals[0].Comment != "checked the plan" {
		t.Fatalf("after approving in the browser the store has %+v", shown)
	}

	// The audit log, filtered by service, with its integrity panel.
	browse(t, bob, chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS("article.verify")))
	browse(t, bob, chromedp.SetValue(chromedp.CSS(`#f-action`), "action."), chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)))
	waitJS(t, bob, `location.search.includes("action=action.")`)
	txt := evalJS[string](t, bob, `document.querySelector("main").innerText`)
	if !strings.Contains(txt, "verified") || !strings.Contains(txt, "action.approve") || strings.Contains(txt, "user.add") {
		t.Fatalf("audit page:\n%s", txt)
	}
	shots.save(t, bob, "audit")

	// The overview on a phone: the tables scroll inside their wrappers, the
	// page does not.
	browse(t, bob, chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if w := evalJS[int](t, bob, `document.documentElement.scrollWidth`); w > 390 {
		wide := evalJS[string](t, bob, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 391 && !e.closest(".overflow-auto")).slice(0, 8).map(e => e.tagName + "." + e.className).join(", ")`)
		t.Errorf("the overview is %dpx wide on a 390px phone; too wide: %s", w, wide)
	}
	shots.save(t, bob, "overview-phone")
	t.Logf("end-to-end test took %v", time.Since(start).Round(time.Millisecond))
}

// seedE2E records what drills, integrity checks and grants leave in the
// store, so that the service page has history to show.
func seedE2E(t *testing.T, storeURL string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, storeURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, d := range []struct {
		state, actor string
		rto, rpo     float64
	}{{"passed", "user:alice", 840, 2400}, {"passed", "user:bob", 1020, 1500}, {"failed", "user:alice", 0, 0},
		{"passed", "user:alice", 1380, 3000}, {"passed", "user:bob", 1260, 900}, {"passed", "system:jobs", 1500, 1200}} {
		at := now.Add(time.Duration(i-6) * 9 * 24 * time.Hour)
		r, err := st.StartDrillRun(ctx, store.DrillRunRow{Service: "shop", Drill: "nightly", Actor: d.actor, State: store.DrillRunning, StartedAt: at}, at.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		fin := at.Add(30 * time.Minute)
		r.State, r.FinishedAt = d.state, &fin
		if d.rto > 0 {
			r.RTOSeconds, r.RPOSeconds = &d.rto, &d.rpo
		} else {
			r.Error = "pg_restore: error: could not read from input file: end of file"
		}
		if err := st.UpdateDrillRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var runs []store.CheckRunRow
	for i := range 16 {
		status, viol := "pass", int64(0)
		if i == 9 || i == 10 {
			status, viol = "fail", 3
		}
		for _, c := range []string{"orders-fk", "stock-non-negative"} {
			runs = append(runs, store.CheckRunRow{Service: "shop", Check: c, Database: "main", Status: status, Violations: viol,
				Query: "SELECT …", Sample: "[]", Actor: "system:jobs", StartedAt: now.Add(time.Duration(i-16) * 6 * time.Hour)})
		}
	}
	if _, err := st.InsertCheckRuns(ctx, runs); err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		state, reason string
		exp           time.Duration
	}{{"active", "INC-211 investigate duplicate orders", 2 * time.Hour}, {"revoked", "INC-198 refund by hand", -20 * time.Hour}} {
		if _, err := st.InsertGrant(ctx, store.GrantRow{Service: "shop", Database: "main", Profile: "read-only", Engine: "postgres", Requester: "alice",
			Reason: g.reason, RoleName: "stw_" + g.state, State: g.state, CreatedAt: now.Add(g.exp - 4*time.Hour), ExpiresAt: now.Add(g.exp)}); err != nil {
			t.Fatal(err)
		}
	}
}

// login logs the browser in with the token and waits for the overview.
func login(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	browse(t, ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
	)
	waitJS(t, ctx, `location.pathname === "/" && document.querySelector("h1")?.innerText === "Overview"`)
}

func browse(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func evalJS[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitJS polls the expression until it is true (the context bounds it).
func waitJS(t *testing.T, ctx context.Context, js string) {
	t.Helper()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			page, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("waiting for %s: %v (last error %v)\npage:\n%s", js, ctx.Err(), err, page)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// apiCall sends a JSON API request with the token and decodes the answer.
func apiCall(t *testing.T, base, method, path, token, body string, want int, v any) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	code, out := send(t, req)
	if code != want {
		t.Fatalf("%s %s: %d, want %d\n%s", method, path, code, want, out)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, out, err)
		}
	}
}

// maxScreenshot bounds a committed screenshot's size.
const maxScreenshot = 300 << 10

// shotDirs are where screenshots go.
type shotDirs []string

func screenshotDirs(t *testing.T) shotDirs {
	t.Helper()
	dir := os.Getenv("STEWARD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dirs := shotDirs{filepath.Join(dir, "screenshots")}
	if os.Getenv("STEWARD_UPDATE_SCREENSHOTS") == "1" {
		dirs = append(dirs, filepath.Join("..", "..", "docs", "screenshots"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", strings.Join(dirs, ", "))
	return dirs
}

// save captures the viewport as NAME.png in every directory.
func (d shotDirs) save(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if _, err := png.DecodeConfig(bytes.NewReader(b)); err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	if len(b) > maxScreenshot {
		t.Errorf("screenshot %s is %d KiB, more than %d KiB", name, len(b)>>10, maxScreenshot>>10)
	}
	for _, dir := range d {
		p := filepath.Join(dir, name+".png")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s (%d KiB)", p, len(b)>>10)
	}
}
