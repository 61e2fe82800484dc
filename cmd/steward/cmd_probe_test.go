package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
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

// The server schedules configured probes (1s is the shortest interval the
// config allows), stores their results and exports their metrics.
func TestServeRunsProbes(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer ts.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "steward.yaml")
	yaml := fmt.Sprintf(`steward:
  data_dir: data
services:
  - name: shop
    probes:
      - {name: home, type: http, url: "%s/", interval: 1s, timeout: 1s}
  - name: blog
    probes:
      - {name: feed, type: http, url: "%s/feed", interval: 1h}
`, ts.URL, ts.URL)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := steward(t, "-c", cfg, "user", "add", "watcher", "--role", "viewer", "-o", "json")
	var added userAddResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &added) != nil {
		t.Fatalf("user add: %+v", r)
	}
	url, stop := startServeConfig(t, cfg, "")
	defer stop()

	var rows []probeStatusRow
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = steward(t, "-c", cfg, "probe", "status", "shop", "-o", "json")
		rows = nil
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rows) != nil {
			t.Fatalf("probe status: %+v", r)
		}
		if len(rows) == 1 && rows[0].Status == "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no up result for shop/home after 10s: %+v", rows)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rows[0].Probe != "home" || rows[0].LastRun == nil || rows[0].Code != 200 || rows[0].Location != "local" {
		t.Errorf("status row = %+v", rows[0])
	}
	// Every run is stored, not only the latest.
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "data", "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline = time.Now().Add(10 * time.Second)
	for {
		hist, err := st.ListProbeResults(context.Background(), "shop", "home", time.Time{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d results stored for shop/home, want several", len(hist))
		}
		time.Sleep(200 * time.Millisecond)
	}

	r = steward(t, "-c", cfg, "probe", "status")
	if r.code != 0 || !strings.Contains(r.stdout, "UP") || !strings.Contains(r.stdout, "feed") || !strings.Contains(r.stdout, "LAST RUN") {
		t.Fatalf("probe status table: %+v", r)
	}
	if r := steward(t, "-c", cfg, "probe", "status", "nope"); r.code != exitUsage {
		t.Fatalf("unknown service: %+v", r)
	}

	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+added.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`steward_probe_success{probe="home",service="shop"} 1`, `steward_probe_duration_seconds_count{probe="home",service="shop"}`,
		`steward_probe_phase_seconds{phase="first_byte",probe="home",service="shop"}`, `steward_probe_runs_total{class="cheap"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}

// A reload reschedules only what changed: an unchanged probe keeps its next
// slot, a removed one is dropped, an added one is scheduled.
func TestProbeReloadUpdatesSchedule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	load := func(probes string) *config.Config {
		t.Helper()
		cfg, err := config.Parse(filepath.Join(dir, "steward.yaml"), []byte("services:\n  - name: shop\n    probes:\n"+probes), config.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	home := "      - {name: home, type: tcp, address: \"127.0.0.1:1\", interval: 1h}\n"
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	p, err := startProbes(ctx, load(home+"      - {name: old, type: tcp, address: \"127.0.0.1:1\", interval: 1h}\n"), st, prometheus.NewRegistry(), log, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	next, ok := p.sched.NextRun("shop/home")
	if !ok {
		t.Fatal("shop/home not scheduled")
	}
	if err := p.update(load(home + "      - {name: new, type: tcp, address: \"127.0.0.1:1\", interval: 1h}\n")); err != nil {
		t.Fatal(err)
	}
	if again, ok := p.sched.NextRun("shop/home"); !ok || !again.Equal(next) {
		t.Errorf("unchanged probe moved from %v to %v", next, again)
	}
	if _, ok := p.sched.NextRun("shop/old"); ok {
		t.Error("removed probe still scheduled")
	}
	if _, ok := p.sched.NextRun("shop/new"); !ok {
		t.Error("added probe not scheduled")
	}
}
