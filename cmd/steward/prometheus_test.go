package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testenv"
)

// A real Prometheus server (the Debian package) scrapes `steward serve`
// with a read token and sees the probe metrics: 1 for a probe that is up,
// 0 for one that is down, and the scrape itself up.
func TestPrometheusScrapesProbeMetrics(t *testing.T) {
	t.Parallel()
	bin := testenv.Prometheus(t)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer ts.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "steward.yaml")
	yaml := fmt.Sprintf(`steward:
  data_dir: data
services:
  - name: shop
    probes:
      - {name: home, type: http, url: "%s/", interval: 1s, timeout: 1s}
      - {name: checkout, type: http, url: "%s/down", interval: 1s, timeout: 1s}
`, ts.URL, ts.URL)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := steward(t, "-c", cfg, "user", "add", "prometheus", "--role", "viewer", "-o", "json")
	var added userAddResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &added) != nil || added.Token == "" {
		t.Fatalf("user add: %+v", r)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(added.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stewardURL, stop := startServeConfig(t, cfg, "")
	defer stop()

	promURL := startPrometheus(t, bin, dir, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: steward
    authorization:
      credentials_file: %s
    static_configs:
      - targets: ["%s"]
`, tokenFile, strings.TrimPrefix(stewardURL, "http://")))

	want := map[string]string{
		`up{job="steward"}`: "1",
		`steward_probe_success{service="shop",probe="home"}`:     "1",
		`steward_probe_success{service="shop",probe="checkout"}`: "0",
	}
	deadline := time.Now().Add(30 * time.Second)
	for q, v := range want {
		for {
			got, err := promQuery(promURL, q)
			if err == nil && got == v {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus query %s = %q (err %v), want %s after 30s", q, got, err, v)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// startPrometheus runs the prometheus binary with the given config on a
// free loopback port, its storage in dir, until the test ends. It returns
// the server's URL once it is ready.
func startPrometheus(t *testing.T, bin, dir, config string) string {
	t.Helper()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	// The port may be taken between finding it and prometheus binding it:
	// try a few.
	var lastOut string
	for range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		ctx, cancel := context.WithCancel(context.Background())
		var out promOutput
		cmd := exec.CommandContext(ctx, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
			"--web.listen-address="+addr, "--log.level=warn")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cancel()
			<-exited
			if t.Failed() {
				t.Logf("prometheus output:\n%s", out.String())
			}
		})
		u := "http://" + addr
		if err := waitReady(u+"/-/ready", exited); err != nil {
			t.Fatalf("prometheus at %s: %v\n%s", u, err, out.String())
		}
		select {
		case <-exited:
		default:
			return u
		}
		cancel()
		lastOut = out.String()
	}
	t.Fatalf("prometheus exited before it was ready, three times; last output:\n%s", lastOut)
	return ""
}

// waitReady polls url until it answers 200 (nil), the process exits (nil:
// the caller looks at exited) or 20s pass.
func waitReady(url string, exited <-chan struct{}) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 20s: %v", err)
		}
	}
}

// promQuery runs an instant query and returns the value of its only
// sample; "" when there is none yet.
func promQuery(base, q string) (string, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("query %s: decode answer: %w", q, err)
	}
	if body.Status != "success" {
		return "", fmt.Errorf("query %s: %s", q, body.Error)
	}
	switch len(body.Data.Result) {
	case 0:
		return "", nil
	case 1:
		v, _ := body.Data.Result[0].Value[1].(string)
		return v, nil
	default:
		return "", fmt.Errorf("query %s: %d series, want one", q, len(body.Data.Result))
	}
}

// promOutput collects the output of the prometheus process for the test.
type promOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *promOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *promOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
