package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Editing the config file while serving reloads it without a signal: a
// service added to an included file appears, and an invalid edit is
// rejected while the running config keeps serving.
func TestServeReloadsChangedConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "steward.yaml")
	inc := filepath.Join(dir, "services.yaml")
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg, "include: [services.yaml]\nusers:\n  - {name: ann, roles: [admin]}\n")
	write(inc, "services:\n  - name: shop\n")
	if r := steward(t, "-c", cfg, "validate"); r.code != 0 {
		t.Fatalf("validate: %+v", r)
	}
	url, stop := startServeConfig(t, cfg, "")
	defer stop()
	tok := createToken(t, cfg, "ann")
	services := func() string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/services", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	waitFor := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			body := services()
			if ok(body) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: services are still %s", what, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("start", func(b string) bool { return strings.Contains(b, `"shop"`) })

	// An invalid edit is rejected: shop keeps being served.
	write(inc, "services:\n  - name: shop\n    tier: 9\n")
	time.Sleep(3 * configWatchInterval)
	waitFor("invalid edit", func(b string) bool { return strings.Contains(b, `"shop"`) })

	write(inc, "services:\n  - name: shop\n  - name: billing\n")
	waitFor("valid edit", func(b string) bool { return strings.Contains(b, `"billing"`) })
}
