package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/store"
)

func TestSLOStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "steward.yaml")
	yaml := `services:
  - name: shop
    probes:
      - {name: home, type: http, url: "http://127.0.0.1:9/", interval: 30s, slo: {availability: 99.9, latency: {threshold: 500ms, target: 95}}}
  - name: blog
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	storeURL := "sqlite://" + filepath.Join(dir, "steward.db")
	r := steward(t, "-c", cfg, "--store", storeURL, "user", "add", "watcher", "--role", "viewer", "-o", "json")
	var added userAddResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &added) != nil {
		t.Fatalf("user add: %+v", r)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, storeURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	var rows []store.ProbeResultRow
	for i := range 100 {
		d := int64(100)
		if i%10 == 0 {
			d = 900 // slow, but up
		}
		rows = append(rows, store.ProbeResultRow{Service: "shop", Probe: "home", Status: "up", StartedAt: now.Add(time.Duration(i-110) * 30 * time.Second), DurationMS: d})
	}
	if err := st.InsertProbeResults(ctx, rows); err != nil {
		t.Fatal(err)
	}

	r = steward(t, "-c", cfg, "--store", storeURL, "slo", "status")
	for _, want := range []string{"TARGET", "shop/home", "availability", "99.9%", "100.000%", "latency", "95% ≤500ms", "90.000%", "100 counted", "UNKNOWN", "No open alerts."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("slo status lacks %q:\n%s", want, r.stdout)
		}
	}
	// The latency objective (90% under 500ms against 95%) has spent its budget.
	if r.code != exitFailed || !strings.Contains(r.stderr, "shop/home latency budget spent") {
		t.Fatalf("slo status with a spent budget: %+v", r)
	}

	// Ten checks down: the evaluator opens a down alert.
	var down []store.ProbeResultRow
	for i := range 10 {
		down = append(down, store.ProbeResultRow{Service: "shop", Probe: "home", Status: "down", StartedAt: now.Add(time.Duration(i-10) * 30 * time.Second), Error: "connection refused"})
	}
	if err := st.InsertProbeResults(ctx, down); err != nil {
		t.Fatal(err)
	}
	a, err := (&globalOptions{ConfigPath: cfg, configExplicit: true, StoreURL: storeURL}).openApp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := slowatch.New(slowatch.Deps{Store: st})
	if o, err := ev.Run(ctx, a.cfg, now); err != nil || o.Opened == 0 {
		t.Fatalf("evaluate: %+v, %v", o, err)
	}
	a.Close()

	r = steward(t, "-c", cfg, "--store", storeURL, "slo", "status", "shop", "-o", "json")
	var got slowatch.Status
	if r.code != exitFailed || json.Unmarshal([]byte(r.stdout), &got) != nil {
		t.Fatalf("slo status -o json: %+v", r)
	}
	if len(got.Objectives) != 2 || got.Objectives[0].Counted != 110 || got.Objectives[0].Good != 100 || len(got.Probes) != 1 || got.Probes[0].State != "down" {
		t.Errorf("json status = %+v", got)
	}
	names := map[string]bool{}
	for _, al := range got.Alerts {
		names[al.Name] = true
	}
	if !names["down"] {
		t.Errorf("open alerts = %+v, want down", got.Alerts)
	}
	r = steward(t, "-c", cfg, "--store", storeURL, "slo", "status", "shop")
	if !strings.Contains(r.stdout, "DOWN") || !strings.Contains(r.stdout, "connection refused") || !strings.Contains(r.stdout, "shop/home is down") {
		t.Errorf("slo status after the outage:\n%s", r.stdout)
	}
	if r := steward(t, "-c", cfg, "--store", storeURL, "slo", "status", "nope"); r.code != exitUsage || !strings.Contains(r.stderr, "nope") {
		t.Errorf("unknown service: %+v", r)
	}
	if r := steward(t, "-c", cfg, "--store", storeURL, "slo", "status", "blog"); r.code != 0 || !strings.Contains(r.stdout, "No objectives configured") {
		t.Errorf("service without objectives: %+v", r)
	}

	// The same through the server.
	url, stop := startServeConfig(t, cfg, storeURL)
	defer stop()
	r = steward(t, "--server", url, "--token", added.Token, "slo", "status", "shop", "-o", "json")
	var remote slowatch.Status
	if r.code != exitFailed || json.Unmarshal([]byte(r.stdout), &remote) != nil || len(remote.Objectives) != 2 || remote.Objectives[0].Counted < 110 {
		t.Fatalf("slo status --server: %+v", r)
	}
	if r := steward(t, "--server", url, "--token", added.Token, "slo", "status", "nope"); r.code != exitUsage {
		t.Errorf("unknown service via server: %+v", r)
	}
	// The server's probe.slo job (run at start) exports the SLO metrics.
	want := []string{`steward_slo_budget_remaining_ratio{objective="availability",probe="home",service="shop"}`,
		`steward_slo_burn_rate{objective="latency",probe="home",service="shop",window="1h"}`,
		`steward_probe_alert_open{alert="down",probe="home",service="shop",severity="page"} 1`}
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+added.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing := ""
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s after 15s", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
