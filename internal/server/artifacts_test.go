package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/probe/sched"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

// failingSite is a page whose script logs an error and never shows the
// element the probe waits for.
func failingSite(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><head><title>Shop</title></head><body><h1>Out of order</h1>
<script>console.error('checkout widget failed: <b>HTTP 503</b>');</script></body></html>`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A real Chromium failure, written by the probe Recorder, is listed by the
// failures API with its failed step and artifact links; the artifacts are
// served with their content type, and the probe page's fragment shows the
// screenshot and the console log.
func TestProbeFailuresWithBrowserArtifacts(t *testing.T) {
	t.Parallel()
	if fi, err := os.Stat(probe.DefaultChromium); err != nil || fi.IsDir() {
		testenv.Skip(t, "chromium not found at %s; install the chromium package", probe.DefaultChromium)
	}
	site := failingSite(t)
	cfg := testConfig()
	cfg.Services[0].Probes = []config.Probe{{Name: "checkout", Type: config.ProbeBrowser, Interval: "1m", Timeout: "30s",
		Steps: []config.Step{{Name: "open", Navigate: site.URL + "/"}, {Name: "pay", Assert: `title == "Checkout"`}}}}
	b := setup(t, setupOpts{config: cfg})

	rec, err := probe.NewRecorder(b.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := probe.NewBrowserPool(1, "")
	j := rec.Jobs(cfg, probe.Options{BrowserPool: pool})[0]
	ctx := context.Background()
	started := time.Now()
	out := j.Run(ctx)
	if out.Status != string(probe.Down) {
		t.Fatalf("run = %+v, want down", out)
	}
	if err := rec.WriteBatch(ctx, []sched.Record{{Key: j.Key, Started: started, Status: out.Status, Duration: out.Duration, Error: out.Error}}); err != nil {
		t.Fatal(err)
	}

	var resp failuresJSON
	b.getJSON(t, "/api/v1/probes/shop/checkout/failures", b.viewer, http.StatusOK, &resp)
	if len(resp.Failures) != 1 {
		t.Fatalf("failures = %+v", resp)
	}
	f := resp.Failures[0]
	if f.Status != "down" || f.Error != `step pay: assertion failed: title == "Checkout"` || f.FailedStep == nil || f.FailedStep.Name != "pay" ||
		len(f.Steps) != 2 || f.Steps[0].Status != "up" || f.Location != "local" {
		t.Errorf("failure = %+v, failed step %+v", f, f.FailedStep)
	}
	arts := map[string]artifactJSON{}
	for _, a := range f.Artifacts {
		arts[a.Kind] = a
	}
	shot, cons := arts[store.ArtifactScreenshot], arts[store.ArtifactConsole]
	if shot.ID == 0 || cons.ID == 0 || shot.URL != fmt.Sprintf("/api/v1/probes/artifacts/%d", shot.ID) || shot.Size == 0 {
		t.Fatalf("artifacts = %+v", f.Artifacts)
	}

	r := b.do(t, "GET", shot.URL, b.viewer)
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "image/png" || r.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!bytes.HasPrefix([]byte(r.body), []byte("\x89PNG\r\n\x1a\n")) || int64(len(r.body)) != shot.Size {
		t.Errorf("GET %s: %d %q nosniff=%q, %d bytes", shot.URL, r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("X-Content-Type-Options"), len(r.body))
	}
	r = b.do(t, "GET", cons.URL, b.viewer)
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" || !strings.Contains(r.body, "checkout widget failed: <b>HTTP 503</b>") ||
		!strings.Contains(r.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("GET %s: %d %q csp %q: %s", cons.URL, r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Content-Security-Policy"), r.body)
	}
	if r := b.do(t, "GET", cons.URL, ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET %s without a token: %d, want 401", cons.URL, r.StatusCode)
	}

	// The probe page loads the section; the section shows both artifacts,
	// the console log escaped.
	cookie := "Cookie: " + cookieName + "=" + b.viewer
	page := b.do(t, "GET", "/probes/shop/checkout", "", cookie)
	if !strings.Contains(page.body, `hx-get="/probes/shop/checkout/failures"`) {
		t.Errorf("probe page does not load the failures: %s", page.body)
	}
	frag := b.do(t, "GET", "/probes/shop/checkout/failures", "", cookie, "HX-Request: true")
	for _, want := range []string{
		`<h2>Recent failures</h2>`,
		`The newest failed runs, at most 5.`,
		`from <span class="location">local</span>, failed at step <code>pay</code>`,
		fmt.Sprintf(`<img src="/api/v1/probes/artifacts/%d"`, shot.ID),
		`failed at step <code>pay</code>`,
		`<summary>Console log`,
		`checkout widget failed: &lt;b&gt;HTTP 503&lt;/b&gt;`,
		fmt.Sprintf(`href="/api/v1/probes/artifacts/%d"`, cons.ID),
	} {
		if !strings.Contains(frag.body, want) {
			t.Errorf("failures fragment lacks %s:\n%s", want, frag.body)
		}
	}
	if strings.Contains(frag.body, "<html") || strings.Contains(frag.body, "<b>HTTP 503") {
		t.Errorf("fragment is a whole page or unescaped:\n%s", frag.body)
	}
	// Without JavaScript, the same URL is a page of its own.
	if full := b.do(t, "GET", "/probes/shop/checkout/failures", "", cookie); full.StatusCode != http.StatusOK || !strings.Contains(full.body, "<html") ||
		!strings.Contains(full.body, "Recent failures") {
		t.Errorf("failures page: %d %s", full.StatusCode, full.body)
	}
}

func TestProbeFailuresAPIErrors(t *testing.T) {
	t.Parallel()
	b := probeSetup(t)
	var resp failuresJSON
	b.getJSON(t, "/api/v1/probes/shop/home/failures?limit=1", b.viewer, http.StatusOK, &resp)
	if len(resp.Failures) != 1 || resp.Failures[0].Error != xssReason || resp.Failures[0].FailedStep != nil || len(resp.Failures[0].Artifacts) != 0 {
		t.Errorf("failures of an http probe = %+v", resp)
	}
	for path, want := range map[string]int{
		"/api/v1/probes/shop/home/failures?limit=0":   http.StatusBadRequest,
		"/api/v1/probes/shop/home/failures?limit=abc": http.StatusBadRequest,
		"/api/v1/probes/shop/nope/failures":           http.StatusNotFound,
		"/api/v1/probes/artifacts/abc":                http.StatusBadRequest,
		"/api/v1/probes/artifacts/0":                  http.StatusBadRequest,
		"/api/v1/probes/artifacts/12345":              http.StatusNotFound,
	} {
		if r := b.do(t, "GET", path, b.viewer); r.StatusCode != want {
			t.Errorf("GET %s: %d, want %d: %s", path, r.StatusCode, want, r.body)
		}
	}
	// An artifact with a content type that browsers would run is served
	// as a download.
	arts, err := b.store.InsertProbeArtifacts(t.Context(), []store.ProbeArtifact{{Service: "shop", Probe: "home", StartedAt: time.Now(),
		Name: "page.html", Kind: store.ArtifactOther, ContentType: "text/html", Data: []byte("<script>alert(1)</script>")}})
	if err != nil {
		t.Fatal(err)
	}
	r := b.do(t, "GET", fmt.Sprintf("/api/v1/probes/artifacts/%d", arts[0].ID), b.viewer)
	if r.Header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("html artifact served as %q, %q", r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition"))
	}
}
