package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/testenv"
)

// A failing browser probe run from the CLI writes its screenshot and
// console log to --artifacts DIR and prints where.
func TestProbeRunWritesArtifacts(t *testing.T) {
	t.Parallel()
	if fi, err := os.Stat(probe.DefaultChromium); err != nil || fi.IsDir() {
		testenv.Skip(t, "chromium not found at %s; install the chromium package", probe.DefaultChromium)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><head><title>Shop</title></head><body><script>console.warn('cart service slow');</script></body></html>`)
	}))
	defer ts.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "steward.yaml")
	yaml := fmt.Sprintf(`services:
  - name: shop
    probes:
      - name: checkout
        type: browser
        timeout: 30s
        steps:
          - {navigate: "%s/"}
          - {assert: 'title == "Checkout"'}
`, ts.URL)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "artifacts", "new")
	r := steward(t, "-c", cfg, "probe", "run", "shop/checkout", "--artifacts", out)
	if r.code != exitFailed || !strings.Contains(r.stdout, `reason: step 2-assert: assertion failed: title == "Checkout"`) {
		t.Fatalf("probe run: %+v", r)
	}
	paths := regexp.MustCompile(`artifact: (\S+) \((\d+) bytes\)`).FindAllStringSubmatch(r.stdout, -1)
	if len(paths) != 2 {
		t.Fatalf("want two artifact lines: %s", r.stdout)
	}
	for _, m := range paths {
		b, err := os.ReadFile(m[1])
		if err != nil || fmt.Sprint(len(b)) != m[2] || filepath.Dir(m[1]) != out || !strings.HasPrefix(filepath.Base(m[1]), "shop-checkout-") {
			t.Fatalf("artifact %s (%s bytes): %d bytes, %v", m[1], m[2], len(b), err)
		}
		if fi, _ := os.Stat(m[1]); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %s, want 0600", m[1], fi.Mode().Perm())
		}
		switch {
		case strings.HasSuffix(m[1], "-screenshot.png"):
			if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
				t.Errorf("%s is not a PNG", m[1])
			}
		case strings.HasSuffix(m[1], "-console.log"):
			if !strings.Contains(string(b), "[warning] cart service slow") {
				t.Errorf("console log %s = %q", m[1], b)
			}
		default:
			t.Errorf("unexpected artifact %s", m[1])
		}
	}
	// Without the flag, the run says how to keep them.
	r = steward(t, "-c", cfg, "probe", "run", "shop/checkout")
	if r.code != exitFailed || !strings.Contains(r.stdout, "not written: pass --artifacts DIR to keep them") {
		t.Fatalf("probe run without --artifacts: %+v", r)
	}
}
