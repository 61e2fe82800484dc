package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/notify/webhook"
)

func TestNotifyTestAndStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var mu sync.Mutex
	var got []webhook.Payload
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte("sekrit"), body, r.Header.Get(webhook.SignatureHeader)); err != nil {
			t.Errorf("signature: %v", err)
		}
		var p webhook.Payload
		json.Unmarshal(body, &p)
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	if err := os.WriteFile(filepath.Join(dir, "hook.secret"), []byte("sekrit\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "steward:\n  data_dir: " + filepath.Join(dir, "data") + "\n" +
		"notify:\n  channels:\n" +
		"    - {name: hook, type: webhook, url: \"" + ok.URL + "\", secret: \"file:" + filepath.Join(dir, "hook.secret") + "\"}\n" +
		"    - {name: broken, type: webhook, url: \"" + down.URL + "\"}\n"
	path := filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	r := steward(t, "-c", path, "notify", "test", "hook")
	if r.code != 0 || !strings.Contains(r.stdout, "hook (webhook): delivered") {
		t.Fatalf("notify test hook: %+v", r)
	}
	mu.Lock()
	if len(got) != 1 || got[0].Event != notify.EventTest {
		t.Fatalf("receiver got %+v", got)
	}
	mu.Unlock()

	r = steward(t, "-c", path, "notify", "test", "-o", "json")
	var res []notifyTestResult
	if r.code != exitFailed || json.Unmarshal([]byte(r.stdout), &res) != nil || len(res) != 2 {
		t.Fatalf("notify test all: %+v", r)
	}
	if !res[0].Delivered || res[1].Delivered || !strings.Contains(res[1].Error, "503") || !strings.Contains(res[1].Error, "broken") {
		t.Fatalf("results = %+v", res)
	}

	r = steward(t, "-c", path, "notify", "status")
	if r.code != 0 || !strings.Contains(r.stdout, "LAST ERROR") || !strings.Contains(r.stdout, "503") {
		t.Fatalf("notify status: %+v", r)
	}
	r = steward(t, "-c", path, "notify", "status", "-o", "json")
	var st []notify.ChannelStatus
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || len(st) != 2 {
		t.Fatalf("notify status json: %+v", r)
	}
	if st[0].Channel != "hook" || st[0].Delivered != 2 || st[1].Channel != "broken" || st[1].Pending != 1 || st[1].LastError == "" {
		t.Fatalf("status = %+v", st)
	}

	if r := steward(t, "-c", path, "notify", "test", "nope"); r.code != exitUsage || !strings.Contains(r.stderr, "hook, broken") {
		t.Fatalf("unknown channel: %+v", r)
	}
	// The test sends are audited.
	r = steward(t, "-c", path, "audit", "export", "--since", "1", "--output", "jsonl")
	if r.code != 0 || strings.Count(r.stdout, `"notify.test"`) != 2 {
		t.Fatalf("audit: %+v", r)
	}
}

func TestNotifyTestWithoutChannels(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := steward(t, "--store", "sqlite://"+filepath.Join(dir, "s.db"), "notify", "test")
	if r.code != exitUsage || !strings.Contains(r.stderr, "no notification channels") {
		t.Fatalf("%+v", r)
	}
	r = steward(t, "--store", "sqlite://"+filepath.Join(dir, "s.db"), "notify", "status")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
}
