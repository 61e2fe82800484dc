package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/server"
	"github.com/stewardhq/steward/internal/store"
)

// runAsCLI makes this test binary the steward command when it is started
// with it set, so that tests run agents as processes of their own without
// building the binary again: main's code, on the command line given.
const runAsCLI = "STEWARD_TEST_RUN_AS_CLI"

func init() {
	if os.Getenv(runAsCLI) != "1" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stewardBinary is the executable that runs as the steward command.
func stewardBinary(t *testing.T) string {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// agentProc is a `steward agent` process.
type agentProc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startAgent(t *testing.T, bin string, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{cmd: exec.Command(bin, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.Env = append(agentEnv(), runAsCLI+"=1")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("STEWARD_TEST_AGENT_LOG") != "" {
			t.Logf("agent %v log:\n%s", args, p.stderr.String())
		}
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func agentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STEWARD_") {
			env = append(env, kv)
		}
	}
	return env
}

// stop sends SIGTERM and returns the exit code.
func (p *agentProc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return p.wait(t, 30*time.Second)
}

func (p *agentProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("agent did not exit within %s; stderr:\n%s", d, p.stderr.String())
		return -1
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// acceptAll is a TCP listener that accepts and closes: a self-check target.
func acceptAll(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

func createToken(t *testing.T, cfg, user string) string {
	t.Helper()
	r := steward(t, "-c", cfg, "token", "create", user, "-o", "json")
	var tok tokenCreateResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tok) != nil || tok.Token == "" {
		t.Fatalf("token create %s: %+v", user, r)
	}
	return tok.Token
}

// scheduledOf reads the scheduled time a stored result's details carry.
func scheduledOf(t *testing.T, r store.ProbeResultRow) time.Time {
	t.Helper()
	var d struct {
		Scheduled time.Time `json:"scheduled"`
	}
	if err := json.Unmarshal([]byte(r.Details), &d); err != nil || d.Scheduled.IsZero() {
		t.Fatalf("result %d has no scheduled time in its details %q: %v", r.ID, r.Details, err)
	}
	return d.Scheduled
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// An agent process probes from its location, pushes its results, keeps
// probing and buffers through a server outage, uploads the backlog exactly
// once, and records broken results when its self-check fails.
func TestAgentProcess(t *testing.T) {
	t.Parallel()
	bin := stewardBinary(t)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer target.Close()
	closed := freeAddr(t) // nothing listens here: the tcp probe is down
	selfCheck := acceptAll(t)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "steward.yaml")
	yaml := fmt.Sprintf(`steward:
  data_dir: data
roles:
  - {name: prober, permissions: [probe.agent]}
users:
  - {name: agent-eu, roles: [prober]}
  - {name: watcher, roles: [viewer]}
services:
  - name: shop
    probes:
      - {name: home, type: http, url: "%s/", interval: 1s, timeout: 900ms, locations: [local, eu-west]}
      - {name: gone, type: tcp, address: "%s", interval: 1s, timeout: 900ms, locations: [eu-west]}
      - {name: lonely, type: http, url: "%s/", interval: 1h}
`, target.URL, closed, target.URL)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	stopServe := startServeAt(t, cfg, addr, "")
	agentTok := createToken(t, cfg, "agent-eu")
	viewerTok := createToken(t, cfg, "watcher")

	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "data", "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	results := func(probeName string) []store.ProbeResultRow {
		t.Helper()
		rows, err := st.ListProbeResults(ctx, "shop", probeName, time.Time{}, 10000)
		if err != nil {
			t.Fatal(err)
		}
		var out []store.ProbeResultRow
		for _, r := range rows {
			if r.Location == "eu-west" {
				out = append(out, r)
			}
		}
		slices.Reverse(out) // oldest first
		return out
	}

	agentData := filepath.Join(dir, "agent")
	ag := startAgent(t, bin, "--server", base, "--token", agentTok, "--log-level", "debug", "-o", "json",
		"agent", "--location", "eu-west", "--data-dir", agentData, "--poll-interval", "1s", "--self-check", selfCheck.Addr().String())

	t.Run("results arrive with the location", func(t *testing.T) {
		waitFor(t, "up and down results from eu-west", 20*time.Second, func() bool {
			return len(results("home")) >= 2 && len(results("gone")) >= 2
		})
		if h := results("home"); h[0].Status != "up" || h[0].Code != 200 {
			t.Errorf("home from eu-west = %+v, want up 200", h[0])
		}
		if g := results("gone"); g[0].Status != "down" || !strings.Contains(g[0].Error, "refused") {
			t.Errorf("gone from eu-west = %+v, want down: connection refused", g[0])
		}
		// The server runs local probes only: gone is not one.
		all, err := st.ListProbeResults(ctx, "shop", "gone", time.Time{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range all {
			if r.Location != "eu-west" {
				t.Fatalf("shop/gone ran from %s; only eu-west is configured", r.Location)
			}
		}
		if r := steward(t, "-c", cfg, "probe", "list", "shop"); r.code != 0 || !strings.Contains(r.stdout, "local,eu-west (quorum 2)") || !strings.Contains(r.stdout, "LOCATIONS") {
			t.Errorf("probe list: %+v", r)
		}
		r := steward(t, "-c", cfg, "probe", "locations", "-o", "json")
		var locs []probe.LocationStatus
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &locs) != nil {
			t.Fatalf("probe locations: %+v", r)
		}
		if len(locs) != 2 || locs[1].Name != "eu-west" || locs[1].Status != probe.LocationHealthy || locs[1].AgentUser != "agent-eu" || locs[1].Assigned != 2 {
			t.Fatalf("locations = %+v", locs)
		}
		r = steward(t, "-c", cfg, "audit", "export", "--since", "1", "--output", "jsonl")
		if r.code != 0 || strings.Count(r.stdout, `"probe.location.register"`) != 1 || !strings.Contains(r.stdout, `"location:eu-west"`) {
			t.Fatalf("audit: want one probe.location.register of location:eu-west: %+v", r)
		}
		r = steward(t, "-c", cfg, "probe", "status", "shop", "-o", "json")
		var rows []probeStatusRow
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rows) != nil {
			t.Fatalf("probe status: %+v", r)
		}
		var verdict *probeStatusRow
		for i := range rows {
			if rows[i].Probe == "home" && rows[i].Verdict != nil {
				verdict = &rows[i]
			}
			if rows[i].Location == "eu-west" && rows[i].LocationHealth != probe.LocationHealthy {
				t.Errorf("row %+v: want location health healthy", rows[i])
			}
		}
		if verdict == nil || verdict.Status != "up" || verdict.Quorum != "2 of 2" || verdict.Verdict.Up != 2 {
			t.Errorf("quorum verdict of home = %+v in %+v", verdict, rows)
		}
	})

	t.Run("buffers through an outage and uploads once", func(t *testing.T) {
		stopServe()
		down := time.Now()
		// Wait at least 3 intervals with the server gone.
		time.Sleep(4 * time.Second)
		waitFor(t, "the agent to notice the outage", 10*time.Second, func() bool {
			return strings.Contains(ag.stderr.String(), "server unreachable")
		})
		stopServe = startServeAt(t, cfg, addr, "")
		up := time.Now()
		// Uploads go oldest first, so a result scheduled after the restart
		// means the backlog is in.
		waitFor(t, "the backlog to be uploaded", 30*time.Second, func() bool {
			h := results("home")
			return len(h) > 0 && scheduledOf(t, h[len(h)-1]).After(up.Add(time.Second))
		})
		for _, name := range []string{"home", "gone"} {
			rows := results(name)
			slots := map[time.Time]int{}
			var times []time.Time
			during := 0
			for _, r := range rows {
				s := scheduledOf(t, r)
				if slots[s]++; slots[s] == 1 {
					times = append(times, s)
				}
				if s.After(down) && s.Before(up) {
					during++
				}
			}
			slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
			for s, n := range slots {
				if n != 1 {
					t.Errorf("%s: slot %s stored %d times, want once", name, s.Format(time.StampMilli), n)
				}
			}
			for i := 1; i < len(times); i++ {
				if gap := times[i].Sub(times[i-1]); gap != time.Second {
					t.Errorf("%s: %s between slots %s and %s; want every 1s slot", name, gap, times[i-1].Format(time.StampMilli), times[i].Format(time.StampMilli))
				}
			}
			if during < 3 {
				t.Errorf("%s: %d results from the outage, want at least 3", name, during)
			}
		}
		n, distinct, err := st.CountProbeResultUIDs(ctx, "eu-west")
		if err != nil || n != distinct || n == 0 {
			t.Fatalf("uids: %d results, %d distinct, %v", n, distinct, err)
		}
		if !strings.Contains(ag.stderr.String(), "server reachable again") {
			t.Errorf("agent log lacks the reconnection:\n%s", ag.stderr.String())
		}
	})

	t.Run("a failing self-check records broken results", func(t *testing.T) {
		selfCheck.Close()
		since := time.Now()
		waitFor(t, "broken results and an unhealthy location", 20*time.Second, func() bool {
			g := results("gone")
			r := steward(t, "-c", cfg, "probe", "locations", "-o", "json")
			var locs []probe.LocationStatus
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &locs) != nil || len(locs) < 2 {
				t.Fatalf("probe locations: %+v", r)
			}
			return len(g) > 0 && g[len(g)-1].Status == "broken" && g[len(g)-1].StartedAt.After(since) &&
				locs[1].Status == probe.LocationUnhealthy && strings.Contains(locs[1].Reason, "self-check")
		})
		g := results("gone")
		last := g[len(g)-1]
		if !strings.Contains(last.Error, "could not probe") || !strings.Contains(last.Error, selfCheck.Addr().String()) {
			t.Errorf("broken result's reason = %q", last.Error)
		}
		// The target of home still answers: an up result stays up.
		if h := results("home"); h[len(h)-1].Status != "up" {
			t.Errorf("home from the unhealthy location = %+v, want up", h[len(h)-1])
		}
		// With eu-west broken, home's quorum of 2 cannot be met.
		r := steward(t, "-c", cfg, "probe", "status", "shop")
		if r.code != 0 || !strings.Contains(r.stdout, "home (quorum 2 of 2)") || !strings.Contains(r.stdout, "BROKEN") || !strings.Contains(r.stdout, "gone@eu-west (unhealthy)") {
			t.Errorf("probe status:\n%s\n%s", r.stdout, r.stderr)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		call := func(method, path, tok string, body io.Reader, length int64) (int, []byte) {
			t.Helper()
			req, err := http.NewRequest(method, base+path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			if length > 0 {
				req.ContentLength = length
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
		code, b := call("GET", "/api/v1/agent/assignments?location=mars", agentTok, nil, 0)
		var as server.AgentAssignments
		if code != 200 || json.Unmarshal(b, &as) != nil || len(as.Probes) != 0 || !strings.Contains(as.Message, `no probe is assigned to location "mars"`) || !strings.Contains(as.Message, "eu-west") {
			t.Errorf("unknown location: %d %s", code, b)
		}
		code, b = call("GET", "/api/v1/agent/assignments?location=eu-west", agentTok, nil, 0)
		if code != 200 || json.Unmarshal(b, &as) != nil || len(as.Probes) != 2 || as.Version == "" {
			t.Fatalf("assignments: %d %s", code, b)
		}
		req, _ := http.NewRequest("GET", base+"/api/v1/agent/assignments?location=eu-west", nil)
		req.Header.Set("Authorization", "Bearer "+agentTok)
		req.Header.Set("If-None-Match", `"`+as.Version+`"`)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
			t.Errorf("assignments with the current ETag: %v %v, want 304", resp, err)
		} else {
			resp.Body.Close()
		}
		if code, b = call("GET", "/api/v1/agent/assignments?location=eu-west", viewerTok, nil, 0); code != 403 || !strings.Contains(string(b), "probe.agent") {
			t.Errorf("viewer fetching assignments: %d %s", code, b)
		}
		upload := func(results ...map[string]any) (int, string) {
			b, _ := json.Marshal(map[string]any{"location": "eu-west", "results": results})
			code, ans := call("POST", "/api/v1/agent/results", agentTok, bytes.NewReader(b), 0)
			return code, string(ans)
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		res := func(uid, svc, name string) map[string]any {
			return map[string]any{"uid": uid, "service": svc, "probe": name, "status": "up", "started_at": now, "duration_ms": 5}
		}
		for _, c := range []struct {
			r    map[string]any
			want string
		}{
			{res("t-1", "shop", "lonely"), "probe shop/lonely is not assigned to location eu-west"},
			{res("t-2", "nosuch", "home"), `unknown service \"nosuch\"`},
			{res("t-3", "shop", "nope"), "unknown probe shop/nope"},
			{res("", "shop", "home"), "uid"},
		} {
			if code, ans := upload(res("t-ok", "shop", "home"), c.r); code != 400 || !strings.Contains(ans, c.want) || !strings.Contains(ans, `"index":1`) {
				t.Errorf("upload with %v: %d %s; want 400 naming %q", c.r, code, ans, c.want)
			}
		}
		if code, ans := upload(res("t-ok", "shop", "home"), res("t-ok", "shop", "home")); code != 200 || !strings.Contains(ans, `"stored":1`) || !strings.Contains(ans, `"duplicates":1`) {
			t.Errorf("upload of one result twice: %d %s", code, ans)
		}
		huge := bytes.Repeat([]byte("x"), server.MaxAgentBody+1)
		if code, b := call("POST", "/api/v1/agent/results", agentTok, bytes.NewReader(huge), int64(len(huge))); code != 413 {
			t.Errorf("oversized upload: %d %s, want 413", code, b)
		}
		many := make([]map[string]any, server.MaxAgentBatch+1)
		for i := range many {
			many[i] = res(fmt.Sprintf("m-%d", i), "shop", "home")
		}
		if code, ans := upload(many...); code != 413 || !strings.Contains(ans, "5001 results") {
			t.Errorf("upload of 5001 results: %d %s, want 413", code, ans)
		}

		// A wrong token, or a token without the permission, stops an
		// agent at once with the reason.
		for _, tok := range []string{"stw_wrongwrongwrong", viewerTok} {
			bad := startAgent(t, bin, "--server", base, "--token", tok, "agent", "--location", "eu-west", "--data-dir", filepath.Join(dir, "bad"))
			if code := bad.wait(t, 20*time.Second); code != exitUsage || !strings.Contains(bad.stderr.String(), "refused the agent's token") || !strings.Contains(bad.stderr.String(), "probe.agent") {
				t.Errorf("agent with token %s…: exit %d\n%s", tok[:6], code, bad.stderr.String())
			}
		}
		if r := steward(t, "--server", base, "--token", agentTok, "agent", "--location", "local", "--data-dir", filepath.Join(dir, "bad")); r.code != exitUsage || !strings.Contains(r.stderr, "server itself") {
			t.Errorf("agent --location local: %+v", r)
		}
	})

	if code := ag.stop(t); code != 0 {
		t.Errorf("agent exit %d:\n%s", code, ag.stderr.String())
	}
	var sum struct {
		Results, Sent, Broken, Dropped int64
		Buffered                       int
	}
	if err := json.Unmarshal([]byte(ag.stdout.String()), &sum); err != nil || sum.Results == 0 || sum.Sent == 0 || sum.Broken == 0 || sum.Dropped != 0 {
		t.Errorf("agent summary = %+v (%v) from %q", sum, err, ag.stdout.String())
	}
	stopServe()
}
