package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProbeRunAndList(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"items":[1,2,3]}`)
	}))
	defer ts.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "steward.yaml")
	yaml := fmt.Sprintf(`services:
  - name: shop
    probes:
      - {name: home, type: http, url: "%s/?token=abcdef123456", assert: "status == 200 && json.items.size() == 3 && duration < 5s"}
      - {name: broken, type: http, url: "%s/down"}
`, ts.URL, ts.URL)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := steward(t, "-c", cfg, "probe", "run", "shop/home")
	if r.code != 0 || !strings.Contains(r.stdout, "UP") || !strings.Contains(r.stdout, "phases:") {
		t.Fatalf("probe run home: %+v", r)
	}
	r = steward(t, "-c", cfg, "probe", "run", "shop/broken", "-o", "json")
	var res struct {
		Status string `json:"status"`
		Code   int    `json:"code"`
	}
	if r.code != exitFailed || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Status != "down" || res.Code != 503 {
		t.Fatalf("probe run broken: %+v", r)
	}
	if r := steward(t, "-c", cfg, "probe", "run", "shop/nope"); r.code != exitUsage || !strings.Contains(r.stderr, "home, broken") {
		t.Fatalf("unknown probe: %+v", r)
	}
	r = steward(t, "-c", cfg, "probe", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "home") || strings.Contains(r.stdout, "abcdef123456") {
		t.Fatalf("probe list (the token must be redacted): %+v", r)
	}
}
