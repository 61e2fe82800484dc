// Command serverbench measures the latency of Steward's GET /api/v1/services
// under an open-loop load: it starts the real server in process on a
// loopback port, with a realistic configuration on a SQLite store in a
// temporary directory and a real API token, and issues requests on a fixed
// schedule whether or not earlier ones have been answered. Each latency is
// measured from the request's scheduled time, so a stalled server is charged
// for the requests it delayed (no coordinated omission).
//
// It first runs the same load against /healthz, the floor of the HTTP stack
// on this machine, and prints the services latencies as ratios to it.
//
//	go run ./bench/serverbench [-rate 500] [-duration 10s] [-services 50]
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/server"
	"github.com/stewardhq/steward/internal/store"
)

type options struct {
	rate      int
	duration  time.Duration
	warmup    time.Duration
	services  int
	targetP99 time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.rate, "rate", 500, "requests per second, issued on a fixed schedule")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured duration of each phase")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each phase")
	flag.IntVar(&o.services, "services", 50, "services in the generated configuration")
	flag.DurationVar(&o.targetP99, "target-p99", 20*time.Millisecond, "p99 objective for /api/v1/services")
	flag.Parse()
	if o.rate < 1 || o.duration <= 0 || o.services < 0 {
		fmt.Fprintln(os.Stderr, "serverbench: -rate must be >= 1, -duration > 0, -services >= 0")
		os.Exit(2)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pass, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serverbench:", err)
		os.Exit(1)
	}
	if !pass {
		os.Exit(3)
	}
}

func run(ctx context.Context, o options, out io.Writer) (bool, error) {
	dir, err := os.MkdirTemp("", "serverbench-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{Logger: log})
	if err != nil {
		return false, err
	}
	defer st.Close()
	audit := chainAppender(st)
	am := auth.NewManager(st, nil, audit)
	if _, _, err := am.AddUser(ctx, "local:bench", "bench", "bench@example.com", []string{auth.RoleViewer}, false); err != nil {
		return false, err
	}
	token, _, err := am.CreateToken(ctx, "local:bench", "bench", "serverbench", time.Hour)
	if err != nil {
		return false, err
	}
	srv, err := server.New(server.Options{Config: benchConfig(o.services), Store: st, Auth: am, Audit: audit, Logger: log, Version: "serverbench"})
	if err != nil {
		return false, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	srvCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(srvCtx, ln) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			fmt.Fprintln(os.Stderr, "serverbench: server:", err)
		}
	}()

	base := "http://" + ln.Addr().String()
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     time.Minute,
		},
	}
	size, err := probe(ctx, client, base+"/api/v1/services", token)
	if err != nil {
		return false, err
	}

	fmt.Fprintf(out, "serverbench: %s/%s, GOMAXPROCS=%d, %d services (%d bytes JSON), SQLite store, open loop at %d req/s for %v (+%v warmup)\n",
		runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), o.services, size, o.rate, o.duration, o.warmup)
	baseline := phase(ctx, client, base+"/healthz", "", o)
	baseline.print(out, "/healthz (baseline)")
	res := phase(ctx, client, base+"/api/v1/services", token, o)
	res.print(out, "/api/v1/services")

	fmt.Fprintf(out, "ratio services/healthz: p50 %.2fx  p90 %.2fx  p99 %.2fx\n",
		ratio(res.pct(50), baseline.pct(50)), ratio(res.pct(90), baseline.pct(90)), ratio(res.pct(99), baseline.pct(99)))
	p99 := res.pct(99)
	pass := p99 <= o.targetP99 && res.errors == 0 && res.achieved >= 0.95*float64(o.rate)
	verdict := "PASS"
	if !pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(out, "%s: p99 %v vs target %v, %d errors, achieved %.1f req/s of %d\n", verdict, round(p99), o.targetP99, res.errors, res.achieved, o.rate)
	return pass, nil
}

// probe checks that the endpoint answers 200 and returns the body size.
func probe(ctx context.Context, c *http.Client, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	var v struct{ Services []json.RawMessage }
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	return len(b), nil
}

type result struct {
	lat      []time.Duration // of successful requests, sorted
	count    int
	errors   int
	firstErr error
	achieved float64 // completed requests per second of the measured window
}

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

func (r result) print(out io.Writer, name string) {
	fmt.Fprintf(out, "%-20s count %d  errors %d  achieved %.1f req/s  p50 %v  p90 %v  p99 %v  p99.9 %v  max %v\n",
		name, r.count, r.errors, r.achieved, round(r.pct(50)), round(r.pct(90)), round(r.pct(99)), round(r.pct(99.9)), round(r.pct(100)))
	if r.firstErr != nil {
		fmt.Fprintf(out, "%-20s first error: %v\n", "", r.firstErr)
	}
}

// phase runs an unmeasured warmup and then the measured open-loop load.
func phase(ctx context.Context, c *http.Client, url, token string, o options) result {
	if o.warmup > 0 {
		openLoop(ctx, c, url, token, o.rate, o.warmup)
	}
	return openLoop(ctx, c, url, token, o.rate, o.duration)
}

// openLoop issues rate requests per second for d, each at its scheduled
// time in its own goroutine, and waits for all of them.
func openLoop(ctx context.Context, c *http.Client, url, token string, rate int, d time.Duration) result {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() { lat[i], errs[i] = request(ctx, c, url, token, at) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	r := result{count: n, achieved: float64(n) / elapsed.Seconds()}
	ok := lat[:0]
	for i := range n {
		if errs[i] != nil {
			r.errors++
			if r.firstErr == nil {
				r.firstErr = errs[i]
			}
			continue
		}
		ok = append(ok, lat[i])
	}
	slices.Sort(ok)
	r.lat = ok
	r.achieved = float64(len(ok)) / elapsed.Seconds()
	return r
}

// request does one GET and returns its latency from the scheduled time.
func request(ctx context.Context, c *http.Client, url, token string, scheduled time.Time) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, errors.New(resp.Status)
	}
	return time.Since(scheduled), nil
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// benchConfig is a configuration of n services shaped like a mid-sized
// team's: owners, labels, contacts and one to three databases each.
func benchConfig(n int) *config.Config {
	engines := []string{"postgres", "mysql", "sqlite"}
	c := &config.Config{}
	for i := range n {
		name := fmt.Sprintf("service-%02d", i)
		svc := config.Service{
			Name:        name,
			Description: fmt.Sprintf("Service %d of the benchmark estate, serving customer traffic", i),
			Owners:      []string{fmt.Sprintf("team-%d", i%7), "platform"},
			Tier:        1 + i%4,
			Labels:      map[string]string{"env": "prod", "region": []string{"eu-west-1", "us-east-1"}[i%2], "cost-center": fmt.Sprint(1000 + i)},
			Contacts: config.Contacts{
				Oncall:      config.Contact{Name: name + "-oncall", Phone: "+41 44 555 01 " + fmt.Sprintf("%02d", i), URL: "https://pager.example.com/" + name},
				Escalation:  config.Contact{Name: "head of team " + fmt.Sprint(i%7), Email: fmt.Sprintf("lead%d@example.com", i%7)},
				ProviderNOC: config.Contact{Name: "Hoster NOC", Phone: "+1 555 0100", Email: "noc@hoster.example"},
			},
		}
		for d := range 1 + i%3 {
			db := config.Database{Name: fmt.Sprintf("db%d", d), Engine: engines[(i+d)%3], URL: config.Secret(fmt.Sprintf("env:%s_DB%d_URL", name, d))}
			if d == 0 {
				db.ReplicaURL = config.Secret(fmt.Sprintf("env:%s_DB%d_REPLICA", name, d))
			}
			svc.Databases = append(svc.Databases, db)
		}
		c.Services = append(c.Services, svc)
	}
	return c
}

// chainAppender records audit events in the store, each hashed with its
// predecessor (SHA-256). internal/audit's Log, the production appender, is
// being written; switch to it when it lands.
func chainAppender(st *store.Store) auth.AuditFunc {
	return func(ctx context.Context, actor, action, target, outcome string, details map[string]any) error {
		d, err := json.Marshal(details)
		if err != nil {
			return err
		}
		if details == nil {
			d = []byte("{}")
		}
		return st.AppendAudit(ctx, func(h store.AuditHead) ([]store.AuditRecord, error) {
			r := store.AuditRecord{Seq: h.Seq + 1, Time: time.Now().UTC().Truncate(time.Microsecond),
				Actor: actor, Action: action, Target: target, Outcome: outcome, Details: string(d), PrevHash: h.Hash}
			sum := sha256.Sum256(fmt.Appendf(nil, "%d\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s",
				r.Seq, store.FormatTime(r.Time), r.Actor, r.Action, r.Target, r.Outcome, r.Details, r.PrevHash))
			r.Hash = hex.EncodeToString(sum[:])
			return []store.AuditRecord{r}, nil
		})
	}
}
