package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testenv"
)

const browserSecret = "hunter2-very-secret"

// shopSite is a small site for browser probes: a login form leading to a
// dashboard, and a page that writes errors to the console.
func shopSite(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><head><title>Log in</title></head><body>
<form method="post" action="/login">
  <input id="user" name="user"> <input id="password" name="password" type="password">
  <button id="submit" type="submit">Log in</button>
</form>
<button id="echo" type="button" onclick="console.error('pw=' + document.getElementById('password').value)">echo</button>
</body></html>`)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("user") != "probe" || r.FormValue("password") != browserSecret {
			http.Error(w, "bad credentials", http.StatusForbidden)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "ok", Path: "/"})
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("session"); err != nil || c.Value != "ok" {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		// The greeting appears late, as on a page that loads its data.
		fmt.Fprint(w, `<!doctype html><html><head><title>Dashboard</title></head><body>
<h1 id="welcome"></h1>
<script>setTimeout(() => { document.getElementById('welcome').textContent = 'Welcome, probe'; }, 300);</script>
</body></html>`)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><head><title>Broken</title></head><body><p>half a page</p>
<script>console.error('cannot load widgets: ' + 'TypeError x is undefined');</script>
</body></html>`)
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "oops", http.StatusInternalServerError)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

var (
	sharedPoolOnce sync.Once
	sharedPool     *BrowserPool
)

// browserPool returns a pool of real Chromium shared by the tests, or
// skips (fails under CI) when Chromium is missing.
func browserPool(t *testing.T) *BrowserPool {
	t.Helper()
	if err := checkChromium(DefaultChromium); err != nil {
		testenv.Skip(t, "%v", err)
	}
	sharedPoolOnce.Do(func() { sharedPool = NewBrowserPool(0, "") })
	return sharedPool
}

// passwordRef writes the login password to a file and returns its
// secret reference.
func passwordRef(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte(browserSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + f
}

func TestBrowserLogin(t *testing.T) {
	t.Parallel()
	pool := browserPool(t)
	srv := shopSite(t)
	p := loadProbe(t, fmt.Sprintf(`- name: login
  type: browser
  interval: 1m
  timeout: 30s
  steps:
    - {navigate: "%s/login"}
    - {fill: {selector: "#user", value: probe}}
    - {name: password, fill: {selector: "#password", value: "%s"}}
    - {click: "#submit"}
    - {wait_text: {selector: "#welcome", text: "Welcome, probe"}}
    - {wait_for: "#welcome"}
    - {assert: 'title == "Dashboard" && url endsWith "/dashboard" && text contains "Welcome" && duration < 30s'}`, srv.URL, passwordRef(t)))
	res := run(t, p, Options{BrowserPool: pool})
	wantStatus(t, res, Up, "")
	names := []string{"1-navigate", "2-fill", "password", "4-click", "5-wait-text", "6-wait-for", "7-assert"}
	if len(res.Steps) != len(names) {
		t.Fatalf("got %d steps, want %d: %+v", len(res.Steps), len(names), res.Steps)
	}
	for i, s := range res.Steps {
		if s.Name != names[i] || s.Status != Up || s.Duration <= 0 {
			t.Errorf("step %d = %+v, want %s up with a duration", i, s, names[i])
		}
	}
	if res.Steps[0].Code != 200 || res.Steps[0].URL != srv.URL+"/login" {
		t.Errorf("navigate step = %+v, want code 200 and the URL", res.Steps[0])
	}
	if len(res.Artifacts) != 0 {
		t.Errorf("a passing run kept %d artifacts, want none", len(res.Artifacts))
	}
}

func TestBrowserFailureKeepsArtifacts(t *testing.T) {
	t.Parallel()
	pool := browserPool(t)
	srv := shopSite(t)
	p := loadProbe(t, fmt.Sprintf(`- name: login
  type: browser
  interval: 1m
  timeout: 8s
  steps:
    - {navigate: "%s/login"}
    - {fill: {selector: "#password", value: "%s"}}
    - {click: "#echo"}
    - {navigate: "%s/broken"}
    - {wait_for: "#never"}
    - {assert: 'title == "Broken"'}`, srv.URL, passwordRef(t), srv.URL))
	start := time.Now()
	res := run(t, p, Options{BrowserPool: pool})
	wantStatus(t, res, Down, `step 5-wait-for: timed out after 8s waiting for selector "#never"`)
	if el := time.Since(start); el > 9*time.Second {
		t.Errorf("run took %s, want it within the 8s timeout", el)
	}
	if len(res.Steps) != 5 {
		t.Errorf("got %d steps, want 5 (the run stops at the failed step)", len(res.Steps))
	}
	arts := map[string]Artifact{}
	for _, a := range res.Artifacts {
		arts[a.Name] = a
	}
	shot, ok := arts["screenshot.png"]
	if !ok || shot.ContentType != "image/png" || !bytes.HasPrefix(shot.Data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("no PNG screenshot among the artifacts %v", res.Artifacts)
	}
	cons := string(arts["console.log"].Data)
	for _, want := range []string{"[error] pw=REDACTED", "[error] cannot load widgets: TypeError x is undefined"} {
		if !strings.Contains(cons, want) {
			t.Errorf("console log %q does not contain %q", cons, want)
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), browserSecret) || strings.Contains(cons, browserSecret) {
		t.Errorf("the secret leaked into the result: %s", b)
	}
}

func TestBrowserDown(t *testing.T) {
	t.Parallel()
	pool := browserPool(t)
	srv := shopSite(t)
	// The cases that wait for something that never comes take their whole
	// timeout; the others end as soon as the page answers, so they get a
	// long one: the timeout includes waiting for a browser of the shared
	// pool and starting Chromium, which takes seconds on a loaded machine.
	tests := []struct {
		name, timeout, steps, want string
	}{
		{"assertion", "30s", fmt.Sprintf(`[{navigate: "%s/broken"}, {assert: 'title == "Shop"'}]`, srv.URL), `step 2-assert: assertion failed: title == "Shop"`},
		{"wait text", "10s", fmt.Sprintf(`[{navigate: "%s/broken"}, {wait_text: {selector: body, text: "all good"}}]`, srv.URL), `waiting for text "all good" in selector "body"`},
		{"click", "10s", fmt.Sprintf(`[{navigate: "%s/broken"}, {click: "#buy"}]`, srv.URL), `waiting for selector "#buy" to click`},
		{"http status", "30s", fmt.Sprintf(`[{navigate: "%s/fail"}]`, srv.URL), "HTTP status 500"},
		// Port 2 (below the ephemeral range, not one Chromium calls unsafe):
		// an address grabbed and closed here could be reused by a parallel test.
		{"refused", "30s", `[{navigate: "http://127.0.0.1:2/"}]`, "net::ERR_CONNECTION_REFUSED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := loadProbe(t, fmt.Sprintf("- {name: shop, type: browser, interval: 1m, timeout: %s, steps: %s}", tt.timeout, tt.steps))
			res := run(t, p, Options{BrowserPool: pool})
			wantStatus(t, res, Down, tt.want)
		})
	}
}

func TestBrowserChromiumMissing(t *testing.T) {
	t.Parallel()
	p := loadProbe(t, `- {name: shop, type: browser, steps: [{navigate: "http://127.0.0.1:1/"}]}`)
	missing := filepath.Join(t.TempDir(), "chromium")
	res := run(t, p, Options{BrowserPool: NewBrowserPool(1, missing)})
	wantStatus(t, res, Error, fmt.Sprintf("chromium not found at %s; install the chromium package", missing))

	res = run(t, p, Options{})
	wantStatus(t, res, Error, "need a browser pool")
}

func TestBrowserCrash(t *testing.T) {
	t.Parallel()
	browserPool(t) // skips without Chromium
	srv := shopSite(t)
	pool := NewBrowserPool(1, "")
	pool.started = func(proc *os.Process) {
		// Kill the browser once the probe waits for its selector.
		go func() {
			time.Sleep(2 * time.Second)
			if err := proc.Kill(); err != nil {
				t.Errorf("kill chromium: %v", err)
			}
		}()
	}
	p := loadProbe(t, fmt.Sprintf(`- {name: shop, type: browser, interval: 1m, timeout: 30s, steps: [{navigate: "%s/login"}, {wait_for: "#never"}]}`, srv.URL))
	start := time.Now()
	res := run(t, p, Options{BrowserPool: pool})
	wantStatus(t, res, Error, "chromium exited unexpectedly")
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("a crashed browser took %s to report, want well under the 30s timeout", el)
	}
	if len(res.Steps) != 2 || res.Steps[1].Status != Error {
		t.Errorf("steps = %+v, want the second one to be the error", res.Steps)
	}
}

func TestBrowserPoolBounded(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pool := NewBrowserPool(1, exe) // any executable: the run never gets a slot
	if pool.Size() != 1 || NewBrowserPool(0, "").Size() != DefaultBrowserPoolSize {
		t.Fatalf("pool sizes %d and %d, want 1 and %d", pool.Size(), NewBrowserPool(0, "").Size(), DefaultBrowserPoolSize)
	}
	if err := pool.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer pool.release()
	p := loadProbe(t, `- {name: shop, type: browser, interval: 1m, timeout: 1s, steps: [{navigate: "http://127.0.0.1:1/"}]}`)
	res := run(t, p, Options{BrowserPool: pool})
	wantStatus(t, res, Error, "all 1 browsers of the pool are busy")
}

func TestBrowserConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, probes string
		want         []string
	}{
		{"no steps", "- {name: b, type: browser}", []string{`browser probe "b" has no steps`}},
		{"no action", "- name: b\n  type: browser\n  steps:\n    - {name: one}",
			[]string{"steward.yaml:7:13: browser step 1 has no action: set one of navigate, click, fill, wait_for, wait_text, assert"}},
		{"two actions", "- name: b\n  type: browser\n  steps:\n    - {navigate: \"http://127.0.0.1/\", click: \"#a\"}",
			[]string{"steward.yaml:7:13: browser step 1 has several actions (navigate, click)"}},
		{"bad url", "- name: b\n  type: browser\n  steps:\n    - {navigate: \"ftp://x/\"}",
			[]string{`steward.yaml:7:24: invalid url "ftp://x/"`}},
		{"bad assert", "- name: b\n  type: browser\n  steps:\n    - {assert: \"status == 200\"}",
			[]string{"steward.yaml:7:22: invalid assert expression at line 1, column 1", "unknown name status"}},
		{"journey key", "- name: b\n  type: browser\n  steps:\n    - {url: \"http://127.0.0.1/\", wait_for: \"#a\"}",
			[]string{"steward.yaml:7:19: url does not apply to browser steps (only to journey steps)"}},
		{"fill selector", "- name: b\n  type: browser\n  steps:\n    - {fill: {value: x}}", []string{"fill needs a selector"}},
		{"fill secret", "- name: b\n  type: browser\n  steps:\n    - {fill: {selector: \"#p\", value: \"env:\"}}", []string{"invalid secret reference"}},
		{"wait text", "- name: b\n  type: browser\n  steps:\n    - {wait_text: {selector: body}}", []string{"wait_text needs a selector and a text"}},
		{"probe assert", "- {name: b, type: browser, assert: 'title == \"x\"', steps: [{navigate: \"http://127.0.0.1/\"}]}",
			[]string{"a browser probe asserts in its steps"}},
		{"probe key", "- {name: b, type: browser, url: \"http://127.0.0.1/\", steps: [{navigate: \"http://127.0.0.1/\"}]}",
			[]string{"url does not apply to browser probes"}},
		{"duplicate", "- name: b\n  type: browser\n  steps:\n    - {name: a, click: \"#a\"}\n    - {name: a, click: \"#b\"}", []string{`duplicate step "a"`}},
		{"journey action", "- name: j\n  type: journey\n  steps:\n    - {name: one, url: \"http://127.0.0.1/\", click: \"#a\"}",
			[]string{"click is a browser action; journey steps make HTTP requests"}},
		{"journey url", "- name: j\n  type: journey\n  steps:\n    - {name: one}", []string{`step is missing required key "url"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(t, tt.probes)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}
