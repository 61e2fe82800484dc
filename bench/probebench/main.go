// Command probebench measures HTTP probes at scale: N probes at one
// interval against a local HTTP server (a new connection per check, as an
// outside check makes), run by the code `steward serve` runs — the probe
// scheduler, probe.Run, the per-probe metrics and the Recorder writing every
// result to a SQLite store. It reports checks/s, schedule lag, missed runs,
// peak resident memory and CPU per check.
//
// The baseline, measured in the same run, is Prometheus's blackbox_exporter
// (Debian package prometheus-blackbox-exporter) making the same checks of
// the same server at the same rate, driven open loop through its /probe
// endpoint the way Prometheus scrapes it, with at most -backlog requests
// outstanding (a check due beyond that is skipped and counted, so that an
// overloaded exporter does not collapse). Each side runs in its own process
// and its CPU is read from the kernel: Steward's from getrusage in its own
// process, blackbox_exporter's from /proc/PID/stat. The driver's CPU (what
// Prometheus would spend scraping) and the target server's are measured
// separately and printed, not charged to either side.
//
//	go run ./bench/probebench [-probes 10000 -interval 10s -duration 60s -rounds 1]
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/bench/internal/proc"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/probe/sched"
	"github.com/stewardhq/steward/internal/store"
)

// Targets of the issue, checked and printed at the end.
const (
	targetP99Lag   = 100 * time.Millisecond
	targetPeakMiB  = 300
	targetCPURatio = 0.5
)

type options struct {
	probes   int
	interval time.Duration
	duration time.Duration
	rounds   int
	blackbox string
	target   string // the target's base URL (role steward)
	profile  string // CPU profile of the Steward side
	backlog  int    // most /probe requests outstanding
	workers  int    // cheap-pool workers of the scheduler; 0: its default
	heap     string // heap profile of the Steward side, at the end
}

func main() {
	var o options
	role := flag.String("role", "", "internal: run one part in this process (target or steward)")
	flag.IntVar(&o.probes, "probes", 10000, "number of HTTP probes")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "interval of every probe")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long each side runs")
	flag.IntVar(&o.rounds, "rounds", 1, "rounds; each round measures both sides, alternating which goes first")
	flag.StringVar(&o.blackbox, "blackbox", "prometheus-blackbox-exporter", "blackbox_exporter binary (apt-get install prometheus-blackbox-exporter)")
	flag.StringVar(&o.target, "target", "", "internal: the target's base URL")
	flag.IntVar(&o.backlog, "backlog", 0, "most /probe requests outstanding at blackbox_exporter; a check due while that many are is skipped and counted (0: one second of checks; -1: no limit)")
	flag.IntVar(&o.workers, "workers", 0, "workers of the scheduler's cheap pool (0: the default, as steward serve uses)")
	flag.StringVar(&o.heap, "memprofile", "", "write a heap profile of the Steward side, taken before it stops, to this file")
	flag.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the Steward side to this file")
	flag.Parse()
	var err error
	switch *role {
	case "":
		err = run(o, os.Stdout)
	case "target":
		err = serveTarget()
	case "steward":
		var r stewardResult
		if r, err = measureSteward(o); err == nil {
			err = json.NewEncoder(os.Stdout).Encode(r)
		}
	default:
		err = fmt.Errorf("unknown -role %q (want target or steward)", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "probebench:", err)
		os.Exit(1)
	}
}

// countPath answers the number of checks the target has served.
const countPath = "/_count"

// serveTarget answers every request with 200 "ok" on a loopback port,
// counting them, prints its URL, and exits when stdin closes (the parent
// is gone).
func serveTarget() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("http://%s\n", ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	var served atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == countPath {
				fmt.Fprintln(w, served.Load())
				return
			}
			served.Add(1)
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "ok\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	return srv.Serve(ln)
}

// stewardResult is what the steward role measures in its own process.
type stewardResult struct {
	Runs, Up, NotUp, Missed int
	FirstError              string
	P50, P99, Max           time.Duration // schedule lag
	RunP50, RunP99          time.Duration // duration of a check
	CPU                     time.Duration // user+sys from start of the scheduler to the last result stored
	Wall                    time.Duration
	PeakKiB, RSSKiB         int
	Batches                 int
}

// lagSink sits between the scheduler and the Recorder, keeping the lag of
// every record the Recorder stored.
type lagSink struct {
	next sched.Sink

	mu      sync.Mutex
	lags    []time.Duration
	runs    []time.Duration
	up      int
	notUp   int
	missed  int
	batches int
	first   string
}

func (s *lagSink) WriteBatch(ctx context.Context, recs []sched.Record) error {
	if err := s.next.WriteBatch(ctx, recs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	for _, r := range recs {
		switch r.Status {
		case sched.StatusMissed:
			s.missed++
			continue
		case sched.StatusUp:
			s.up++
		default:
			s.notUp++
			if s.first == "" {
				s.first = r.Key + ": " + r.Error
			}
		}
		s.lags = append(s.lags, r.Lag)
		s.runs = append(s.runs, r.Duration)
	}
	return nil
}

// stewardConfig is a config with the probes spread over services of 100.
func stewardConfig(o options) []byte {
	var b bytes.Buffer
	b.WriteString("steward:\n  data_dir: data\nservices:\n")
	for i := range o.probes {
		if i%100 == 0 {
			fmt.Fprintf(&b, "  - name: svc-%04d\n    probes:\n", i/100)
		}
		fmt.Fprintf(&b, "      - {name: p-%05d, type: http, url: %q, interval: %s}\n", i, fmt.Sprintf("%s/p/%d", o.target, i), o.interval)
	}
	return b.Bytes()
}

// measureSteward runs the probes as `steward serve` does (see startProbes
// in cmd/steward/cmd_serve.go) for o.duration.
func measureSteward(o options) (stewardResult, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "probebench-")
	if err != nil {
		return stewardResult{}, err
	}
	defer os.RemoveAll(dir)
	cfg, err := config.Parse(filepath.Join(dir, "steward.yaml"), stewardConfig(o), config.LoadOptions{})
	if err != nil {
		return stewardResult{}, err
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{Logger: log})
	if err != nil {
		return stewardResult{}, err
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	rec, err := probe.NewRecorder(st, reg)
	if err != nil {
		return stewardResult{}, err
	}
	sink := &lagSink{next: rec}
	sopts := sched.Options{Sink: sink, Registerer: reg, Logger: log}
	if o.workers > 0 {
		sopts.Pools = map[string]int{sched.ClassCheap: o.workers, sched.ClassBrowser: sched.DefaultBrowserWorkers}
	}
	s, err := sched.New(sopts)
	if err != nil {
		return stewardResult{}, err
	}
	opts := probe.Options{Logger: log, BrowserPool: probe.NewBrowserPool(0, "")}
	if _, err := s.Update(rec.Jobs(cfg, opts)); err != nil {
		return stewardResult{}, err
	}
	if o.profile != "" {
		f, err := os.Create(o.profile)
		if err != nil {
			return stewardResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return stewardResult{}, err
		}
		defer pprof.StopCPUProfile()
	}
	runtime.GC()
	cpu0 := cpuSelf()
	start := time.Now()
	if err := s.Start(ctx); err != nil {
		return stewardResult{}, err
	}
	time.Sleep(o.duration)
	if o.heap != "" {
		if err := writeHeapProfile(o.heap); err != nil {
			return stewardResult{}, err
		}
	}
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.Stop(stopCtx); err != nil {
		return stewardResult{}, err
	}
	cpu := cpuSelf() - cpu0
	wall := time.Since(start)
	rss, peak := proc.MemKiB("self")
	lags, runs := sink.lags, sink.runs
	slices.Sort(lags)
	slices.Sort(runs)
	return stewardResult{
		Runs: len(lags), Up: sink.up, NotUp: sink.notUp, Missed: sink.missed, FirstError: sink.first,
		P50: pct(lags, 0.50), P99: pct(lags, 0.99), Max: pct(lags, 1),
		RunP50: pct(runs, 0.50), RunP99: pct(runs, 0.99),
		CPU: cpu, Wall: wall, PeakKiB: peak, RSSKiB: rss, Batches: sink.batches,
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// blackboxResult is one driven run of blackbox_exporter.
type blackboxResult struct {
	Sent, OK, Failed int
	Skipped          int // not sent: the backlog was full
	Backlog          int // its limit
	FirstError       string
	SendP99, SendMax time.Duration // driver lateness: actual send - scheduled send
	P50, P99         time.Duration // scheduled send to response read
	CPU              time.Duration // blackbox_exporter user+sys over the run
	DriverCPU        time.Duration // the driver's user+sys over the run
	Wall             time.Duration
	PeakKiB          int
}

const blackboxConfig = `modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
`

// blackbox is a running blackbox_exporter.
type blackbox struct {
	cmd  *exec.Cmd
	url  string
	dir  string
	done chan struct{}
}

func startBlackbox(bin string) (*blackbox, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("blackbox_exporter: %w; install it with `apt-get install prometheus-blackbox-exporter` or pass -blackbox PATH", err)
	}
	dir, err := os.MkdirTemp("", "probebench-bb-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "blackbox.yml")
	if err := os.WriteFile(cfg, []byte(blackboxConfig), 0o644); err != nil {
		return nil, err
	}
	for range 3 { // the free port may be taken before blackbox binds it
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command(path, "--config.file="+cfg, "--web.listen-address="+addr, "--log.level=warn")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", path, err)
		}
		b := &blackbox{cmd: cmd, url: "http://" + addr, dir: dir, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(b.done) }()
		if b.waitReady() {
			return b, nil
		}
		b.stop()
	}
	os.RemoveAll(dir)
	return nil, errors.New("blackbox_exporter did not start (see its output above)")
}

func (b *blackbox) waitReady() bool {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(b.url + "/-/healthy")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-b.done:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

func (b *blackbox) stop() {
	_ = b.cmd.Process.Kill()
	<-b.done
}

// driveBlackbox asks blackbox_exporter to probe each target in turn, open
// loop at probes/interval requests per second for the duration, over
// keep-alive connections (as Prometheus scrapes).
func driveBlackbox(b *blackbox, o options) (blackboxResult, error) {
	rate := float64(o.probes) / o.interval.Seconds()
	total := int(rate * o.duration.Seconds())
	period := time.Duration(float64(time.Second) / rate)
	// The interval is the scrape timeout, as Prometheus would have it.
	client := &http.Client{Timeout: o.interval, Transport: &http.Transport{MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}}
	urls := make([]string, o.probes)
	for i := range urls {
		urls[i] = b.url + "/probe?module=http_2xx&target=" + fmt.Sprintf("%s/p/%d", o.target, i)
	}
	var (
		mu         sync.Mutex
		lat, sends []time.Duration
		ok, failed int
		firstErr   string
		wg         sync.WaitGroup
	)
	lat = make([]time.Duration, 0, total)
	sends = make([]time.Duration, 0, total)
	backlog := o.backlog
	if backlog == 0 {
		backlog = max(1, int(rate))
	}
	skipped := 0
	var inflight atomic.Int64
	success := []byte("\nprobe_success 1\n")
	runtime.GC()
	cpu0, bb0 := cpuSelf(), proc.CPU(b.cmd.Process.Pid)
	start := time.Now()
	for i := range total {
		at := start.Add(time.Duration(i) * period)
		if d := time.Until(at); d > time.Millisecond {
			time.Sleep(d)
		}
		if backlog > 0 && inflight.Load() >= int64(backlog) {
			skipped++
			continue
		}
		inflight.Add(1)
		wg.Go(func() {
			defer inflight.Add(-1)
			sent := time.Since(at)
			req, _ := http.NewRequest(http.MethodGet, urls[i%len(urls)], nil)
			req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.Itoa(int(o.interval.Seconds())))
			resp, err := client.Do(req)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			took := time.Since(at)
			mu.Lock()
			defer mu.Unlock()
			sends = append(sends, sent)
			lat = append(lat, took)
			switch {
			case err == nil && bytes.Contains(body, success):
				ok++
				return
			case err == nil:
				err = fmt.Errorf("probe_success %s (probe_http_status_code %s, probe_duration_seconds %s)",
					sample(body, "probe_success"), sample(body, "probe_http_status_code"), sample(body, "probe_duration_seconds"))
			}
			failed++
			if firstErr == "" {
				firstErr = err.Error()
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	cpu, bbCPU := cpuSelf()-cpu0, proc.CPU(b.cmd.Process.Pid)-bb0
	_, peak := proc.MemKiB(strconv.Itoa(b.cmd.Process.Pid))
	slices.Sort(lat)
	slices.Sort(sends)
	return blackboxResult{
		Sent: total - skipped, Skipped: skipped, Backlog: backlog, OK: ok, Failed: failed, FirstError: firstErr,
		SendP99: pct(sends, 0.99), SendMax: pct(sends, 1), P50: pct(lat, 0.50), P99: pct(lat, 0.99),
		CPU: bbCPU, DriverCPU: cpu, Wall: wall, PeakKiB: peak,
	}, nil
}

// round is one measurement of both sides.
type round struct {
	first              string
	steward            stewardResult
	blackbox           blackboxResult
	targetS, targetB   time.Duration // CPU of the target server during each side
	servedS, servedB   int64         // checks the target served during each side
	loadStart, loadEnd string
}

func run(o options, out io.Writer) error {
	if o.probes < 1 || o.interval <= 0 || o.duration <= 0 || o.rounds < 1 {
		return errors.New("-probes, -interval, -duration and -rounds must be positive")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	target, err := startTarget(self)
	if err != nil {
		return err
	}
	defer target.stop()
	o.target = target.url
	bb, err := startBlackbox(o.blackbox)
	if err != nil {
		return err
	}
	defer func() { bb.stop(); os.RemoveAll(bb.dir) }()
	rate := float64(o.probes) / o.interval.Seconds()
	fmt.Fprintf(out, "%d HTTP probes every %s = %.0f checks/s against %s (new connection per check), %s per side, %d round(s)\n",
		o.probes, o.interval, rate, target.url, o.duration, o.rounds)
	fmt.Fprintf(out, "machine: %d CPUs, load average %s at start\n", runtime.NumCPU(), proc.LoadAvg())
	workers := fmt.Sprintf("%d (the default)", sched.DefaultCheapWorkers)
	if o.workers > 0 {
		workers = strconv.Itoa(o.workers)
	}
	fmt.Fprintf(out, "Steward: scheduler pool of %s workers for HTTP probes; blackbox_exporter: at most %d /probe requests outstanding\n", workers, cmp.Or(o.backlog, int(rate)))

	var rounds []round
	for i := range o.rounds {
		r := round{loadStart: proc.LoadAvg(), first: "steward"}
		order := []string{"steward", "blackbox"}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
			r.first = "blackbox"
		}
		for _, side := range order {
			t0, n0 := proc.CPU(target.pid()), target.served()
			switch side {
			case "steward":
				if r.steward, err = runSteward(self, o); err != nil {
					return err
				}
				r.targetS, r.servedS = proc.CPU(target.pid())-t0, target.served()-n0
			case "blackbox":
				if r.blackbox, err = driveBlackbox(bb, o); err != nil {
					return err
				}
				r.targetB, r.servedB = proc.CPU(target.pid())-t0, target.served()-n0
			}
		}
		r.loadEnd = proc.LoadAvg()
		rounds = append(rounds, r)
		report(out, i+1, r)
	}
	if len(rounds) > 1 {
		summarize(out, rounds)
	}
	fmt.Fprintf(out, "machine: load average %s at end\n", proc.LoadAvg())
	fmt.Fprint(out, `
What each CPU figure includes:
  steward   the whole Steward process from scheduler start to the last result stored: scheduling,
            the HTTP checks (dial, request, response, phase timings), assertion, per-probe metrics,
            and writing every result with its details to SQLite in batches; Go runtime and GC.
  blackbox  the whole blackbox_exporter process over the same number of checks: answering each
            /probe request (on a kept-alive connection), the HTTP check, and the metrics exposition
            of its result. It stores nothing: Prometheus would, at a cost not counted here.
  driver    this program's open-loop driver sending the /probe requests and reading the answers
            (what Prometheus would spend scraping blackbox_exporter); not charged to blackbox above,
            but shown in the "incl. driver" ratio.
  target    the local HTTP server both sides check, in its own process; charged to neither.
`)
	return nil
}

func report(out io.Writer, n int, r round) {
	s, b := r.steward, r.blackbox
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	perS := float64(s.CPU) / float64(max(s.Runs, 1))
	bChecks := b.OK + b.Failed
	// Per check made: a /probe request given up by the driver may still
	// have reached the target, and one blackbox never got to did not.
	perB := float64(b.CPU) / float64(max(r.servedB, 1))
	perD := float64(b.DriverCPU) / float64(max(r.servedB, 1))
	fmt.Fprintf(out, "\nround %d (%s first; load average %s → %s)\n", n, r.first, r.loadStart, r.loadEnd)
	fmt.Fprintf(out, "  steward   %d checks in %.1fs = %.0f checks/s (%d up, %d not up), %d missed\n",
		s.Runs, s.Wall.Seconds(), float64(s.Runs)/s.Wall.Seconds(), s.Up, s.NotUp, s.Missed)
	if s.FirstError != "" {
		fmt.Fprintf(out, "            first failure: %s\n", s.FirstError)
	}
	fmt.Fprintf(out, "            schedule lag p50 %s, p99 %s, max %s; check duration p50 %s, p99 %s\n",
		ms(s.P50), ms(s.P99), ms(s.Max), ms(s.RunP50), ms(s.RunP99))
	fmt.Fprintf(out, "            peak RSS %.1f MiB (VmHWM; %.1f MiB at the end), %d batches written\n",
		float64(s.PeakKiB)/1024, float64(s.RSSKiB)/1024, s.Batches)
	fmt.Fprintf(out, "            CPU %.2fs = %.1f µs per check\n", s.CPU.Seconds(), perS/1e3)
	fmt.Fprintf(out, "            the target served %d checks\n", r.servedS)
	fmt.Fprintf(out, "  blackbox  %d /probe requests in %.1fs = %.0f/s (%d ok, %d failed); the target served %d checks = %.0f checks/s\n",
		bChecks, b.Wall.Seconds(), float64(bChecks)/b.Wall.Seconds(), b.OK, b.Failed, r.servedB, float64(r.servedB)/b.Wall.Seconds())
	if b.Skipped > 0 {
		fmt.Fprintf(out, "            %d checks not sent: %d /probe requests were already outstanding (-backlog)\n", b.Skipped, b.Backlog)
	}
	if b.FirstError != "" {
		fmt.Fprintf(out, "            first failure: %s\n", b.FirstError)
	}
	fmt.Fprintf(out, "            response p50 %s, p99 %s; driver send lag p99 %s, max %s; peak RSS %.1f MiB\n",
		ms(b.P50), ms(b.P99), ms(b.SendP99), ms(b.SendMax), float64(b.PeakKiB)/1024)
	fmt.Fprintf(out, "            CPU %.2fs = %.1f µs per check served; driver %.2fs = %.1f µs per check (reported apart)\n",
		b.CPU.Seconds(), perB/1e3, b.DriverCPU.Seconds(), perD/1e3)
	if b.OK < (bChecks+b.Skipped)*99/100 {
		fmt.Fprintf(out, "            blackbox_exporter did not keep up at this rate on this machine: its CPU is divided by the checks that reached the target\n")
	}
	fmt.Fprintf(out, "  target    CPU per check: %.1f µs while Steward ran, %.1f µs while blackbox ran\n",
		float64(r.targetS)/float64(max(r.servedS, 1))/1e3, float64(r.targetB)/float64(max(r.servedB, 1))/1e3)
	ratio := perS / perB
	fmt.Fprintf(out, "  ratio steward/blackbox CPU per check: %.2f (incl. driver: %.2f)\n", ratio, perS/(perB+perD))
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	fmt.Fprintf(out, "  targets: p99 lag < %s %s; no missed runs %s; peak RSS < %d MiB %s; CPU ratio ≤ %.1f %s\n",
		targetP99Lag, verdict(s.P99 < targetP99Lag), verdict(s.Missed == 0),
		targetPeakMiB, verdict(s.PeakKiB < targetPeakMiB*1024), targetCPURatio, verdict(ratio <= targetCPURatio))
}

// summarize pools the rounds: CPU per check over all checks of each side,
// the worst p99 lag and peak RSS, all missed runs.
func summarize(out io.Writer, rounds []round) {
	var sCPU, bCPU, dCPU time.Duration
	var sRuns, bServed int64
	var missed, peak int
	var worst time.Duration
	for _, r := range rounds {
		sCPU += r.steward.CPU
		sRuns += int64(r.steward.Runs)
		bCPU += r.blackbox.CPU
		dCPU += r.blackbox.DriverCPU
		bServed += r.servedB
		missed += r.steward.Missed
		peak = max(peak, r.steward.PeakKiB)
		worst = max(worst, r.steward.P99)
	}
	perS := float64(sCPU) / float64(max(sRuns, 1))
	perB := float64(bCPU) / float64(max(bServed, 1))
	perD := float64(dCPU) / float64(max(bServed, 1))
	fmt.Fprintf(out, "\nall %d rounds: steward %.1f µs per check, blackbox %.1f µs (driver %.1f µs); ratio %.2f (incl. driver %.2f); worst p99 lag %.2f ms; %d missed; peak RSS %.1f MiB\n",
		len(rounds), perS/1e3, perB/1e3, perD/1e3, perS/perB, perS/(perB+perD), float64(worst)/1e6, missed, float64(peak)/1024)
}

// runSteward measures Steward in a process of its own, so its memory and
// CPU are its own.
func runSteward(self string, o options) (stewardResult, error) {
	cmd := exec.Command(self, "-role", "steward", "-target", o.target, "-probes", strconv.Itoa(o.probes),
		"-interval", o.interval.String(), "-duration", o.duration.String(), "-cpuprofile", o.profile, "-workers", strconv.Itoa(o.workers), "-memprofile", o.heap)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return stewardResult{}, fmt.Errorf("steward side: %w", err)
	}
	var r stewardResult
	if err := json.Unmarshal(b, &r); err != nil {
		return stewardResult{}, fmt.Errorf("steward side: %w", err)
	}
	return r, nil
}

// target is the HTTP server both sides check, in a process of its own.
type target struct {
	cmd   *exec.Cmd
	stdin io.Closer
	url   string
}

func startTarget(self string) (*target, error) {
	cmd := exec.Command(self, "-role", "target")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(outp).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("target server: %w", err)
	}
	return &target{cmd: cmd, stdin: in, url: strings.TrimSpace(line)}, nil
}

func (t *target) pid() int { return t.cmd.Process.Pid }

// served is how many checks the target has answered; -1 when it cannot
// tell.
func (t *target) served() int64 {
	resp, err := http.Get(t.url + countPath)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func (t *target) stop() {
	t.stdin.Close()
	_ = t.cmd.Wait()
}

// sample is the value of an unlabelled metric in a text exposition, or "?".
func sample(body []byte, name string) string {
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// cpuSelf is the user+sys CPU time of this process.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
