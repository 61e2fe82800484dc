package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

// scoreWorkspace writes a config with one service and records one fresh
// backup run in its store.
func scoreWorkspace(t *testing.T) (cfgPath, storeURL string) {
	t.Helper()
	dir := t.TempDir()
	storeURL = "sqlite://" + filepath.Join(dir, "steward.db")
	cfg := "steward:\n  data_dir: data\n  store: " + storeURL + "\n" +
		"services:\n  - name: shop\n    tier: 1\n    objectives: {rpo: 24h}\n" +
		"    contacts: {oncall: {name: on-call, phone: \"+1 555 0100\"}, escalation: {name: cto, email: cto@example.com}}\n" +
		"    databases:\n      - {name: main, engine: sqlite, url: app.db}\n" +
		"    backups:\n      - {name: nightly, database: main, method: sqlite, repository: backups}\n" +
		"  - name: docs\n    tier: 4\n"
	cfgPath = filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, storeURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, err := st.InsertBackupRun(ctx, store.BackupRun{Service: "shop", Backup: "nightly", BackupID: "b1", Method: "sqlite", Actor: "alice", StartedAt: time.Now().Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	fin := time.Now().Add(-time.Hour)
	run.State, run.FinishedAt = store.BackupSucceeded, &fin
	if _, err := st.FinishBackupRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	return cfgPath, storeURL
}

func TestScoreLocal(t *testing.T) {
	t.Parallel()
	cfg, _ := scoreWorkspace(t)

	r := steward(t, "-c", cfg, "score", "-o", "json")
	var card readiness.Scorecard
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &card) != nil {
		t.Fatalf("score json: %+v", r)
	}
	if len(card.Services) != 2 || card.Score <= 0 || card.Score >= 100 {
		t.Fatalf("scorecard = %+v", card)
	}
	for _, sc := range card.Services {
		if len(sc.Results) != 14 {
			t.Fatalf("%s: %d results, want all 14 controls", sc.Service, len(sc.Results))
		}
		for i, res := range sc.Results {
			if res.Control.Number != i+1 || res.Status == "" || res.Reason == "" {
				t.Errorf("%s control %d: %+v", sc.Service, i+1, res)
			}
		}
	}
	if got := card.Services[0].Results[0]; got.Control.ID != "backups" || got.Status != readiness.Pass {
		t.Fatalf("shop backups = %+v, want pass from the recorded run", got)
	}

	r = steward(t, "-c", cfg, "score", "shop")
	if r.code != 0 || !strings.Contains(r.stdout, "shop (tier 1)") || !strings.Contains(r.stdout, "backups") || !strings.Contains(r.stdout, "fix: ") ||
		strings.Contains(r.stdout, "docs (tier 4)") {
		t.Fatalf("score table: %+v", r)
	}
	r = steward(t, "-c", cfg, "score", "shop", "-o", "md")
	if r.code != 0 || !strings.Contains(r.stdout, "| # | Control | Status | Reason | Fix |") || !strings.Contains(r.stdout, "Backups are younger than the RPO objective") {
		t.Fatalf("score md: %+v", r)
	}

	// --fail-under: exit 1 (a finding) below, 0 at or above.
	r = steward(t, "-c", cfg, "score", "--fail-under", "99.5")
	if r.code != exitFailed || !strings.Contains(r.stderr, "below --fail-under 99.5") {
		t.Fatalf("score --fail-under 99.5: %+v", r)
	}
	if r := steward(t, "-c", cfg, "score", "--fail-under", "0.1"); r.code != 0 {
		t.Fatalf("score --fail-under 0.1: %+v", r)
	}

	for _, bad := range [][]string{{"score", "nosuch"}, {"score", "--fail-under", "101"}, {"score", "-o", "yaml"}, {"score", "history", "shop", "--control", "nosuch"}} {
		if r := steward(t, append([]string{"-c", cfg}, bad...)...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", bad, r.code, exitUsage, r.stderr)
		}
	}

	// History: nothing stored yet, then two recorded evaluations.
	r = steward(t, "-c", cfg, "score", "history", "shop")
	if r.code != 0 || !strings.Contains(r.stdout, "no stored evaluations yet") {
		t.Fatalf("empty history: %+v", r)
	}
	for range 2 {
		if r := steward(t, "-c", cfg, "score", "--record", "-o", "json"); r.code != 0 {
			t.Fatalf("score --record: %+v", r)
		}
	}
	r = steward(t, "-c", cfg, "score", "history", "shop", "--control", "backups")
	if r.code != 0 || !strings.Contains(r.stdout, "2 evaluations") || strings.Count(r.stdout, "backups") != 2 || !strings.Contains(r.stdout, "backups is pass now") {
		t.Fatalf("history --control backups: %+v", r)
	}
	r = steward(t, "-c", cfg, "score", "history", "shop", "-o", "json")
	var h readiness.History
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &h) != nil || len(h.Points) != 2 || len(h.Changes) != 14 {
		t.Fatalf("history json: %+v", r)
	}
}

func TestScoreRemote(t *testing.T) {
	t.Parallel()
	cfg, st := scoreWorkspace(t)
	url, stop := startServeConfig(t, cfg, "")
	defer stop()
	r := steward(t, "--store", st, "user", "add", "viewer1", "--role", "viewer", "-o", "json")
	var added userAddResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &added) != nil {
		t.Fatalf("user add: %+v", r)
	}
	r = steward(t, "--server", url, "--token", added.Token, "score", "shop", "-o", "json")
	var card readiness.Scorecard
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &card) != nil || len(card.Services) != 1 || len(card.Services[0].Results) != 14 {
		t.Fatalf("remote score: %+v", r)
	}
	if r := steward(t, "--server", url, "--token", added.Token, "score", "nosuch"); r.code != exitUsage || !strings.Contains(r.stderr, "not in the configuration") {
		t.Fatalf("remote score of an unknown service: %+v", r)
	}
	// The server records the scorecard when it starts (readiness.score
	// runs on start); the history shows it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = steward(t, "--server", url, "--token", added.Token, "score", "history", "shop", "-o", "json")
		var h readiness.History
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &h) != nil {
			t.Fatalf("remote history: %+v", r)
		}
		if len(h.Points) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server recorded no scorecard within 20s of starting")
		}
		time.Sleep(200 * time.Millisecond)
	}
	req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/score/history", nil)
	req.Header.Set("Authorization", "Bearer "+added.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("history without a service: %d, want 400", resp.StatusCode)
	}
}

// TestScoreSLOFromProbeResults evaluates control probes-slo through the
// SLO evaluator's report on stored probe results.
func TestScoreSLOFromProbeResults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	storeURL := "sqlite://" + filepath.Join(dir, "steward.db")
	cfg := "steward:\n  data_dir: data\n  store: " + storeURL + "\n" +
		"services:\n  - name: web\n    slo: {availability: \"99\"}\n    probes:\n" +
		"      - {name: home, type: http, url: \"http://127.0.0.1:9/\", interval: 1m, locations: [local, eu]}\n"
	path := filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, storeURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rows []store.ProbeResultRow
	now := time.Now().UTC().Truncate(time.Minute)
	for i := range 30 {
		for _, loc := range []string{"local", "eu"} {
			rows = append(rows, store.ProbeResultRow{Service: "web", Probe: "home", Location: loc, Status: "up", StartedAt: now.Add(-time.Duration(i) * time.Minute), Code: 200})
		}
	}
	if err := st.InsertProbeResults(ctx, rows); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r := steward(t, "-c", path, "score", "web", "-o", "json")
	var card readiness.Scorecard
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &card) != nil {
		t.Fatalf("score: %+v", r)
	}
	res := card.Services[0].Results[9]
	if res.Control.ID != readiness.CtlProbesSLO || res.Status != readiness.Pass || !strings.Contains(res.Reason, "from 2 locations (eu, local)") {
		t.Fatalf("probes-slo = %s: %s", res.Status, res.Reason)
	}
	t.Logf("probes-slo: %s", res.Reason)
	slos := 0
	for _, ev := range res.Evidence {
		if ev.Kind == "slo" {
			slos++
		}
	}
	if slos != 1 {
		t.Fatalf("evidence = %+v, want the service's SLO", res.Evidence)
	}
}
