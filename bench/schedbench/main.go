// Command schedbench measures the probe scheduler (internal/probe/sched):
// N no-op jobs at one interval for a while, reporting schedule lag
// percentiles, missed runs and resident memory. The baseline, measured in
// the same run, is the naive scheduler — one goroutine and time.Ticker per
// job, started on the same hashed offsets — which has no pools, no missed
// accounting and no batching. Each variant runs in its own process so its
// memory is its own.
//
//	go run ./bench/schedbench [-jobs 10000 -interval 10s -duration 20s]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/bench/internal/proc"
	"github.com/stewardhq/steward/internal/probe/sched"
)

type result struct {
	Variant  string
	Runs     int
	Missed   int
	P50, P99 time.Duration
	Max      time.Duration
	RSSKiB   int // VmRSS at the end
	PeakKiB  int // VmHWM
	Batches  int
	Duration time.Duration
}

func main() {
	jobs := flag.Int("jobs", 10000, "number of no-op jobs")
	interval := flag.Duration("interval", 10*time.Second, "interval of every job")
	duration := flag.Duration("duration", 20*time.Second, "how long to run each variant")
	variant := flag.String("variant", "", "run one variant in this process (sched or ticker) and print JSON")
	flag.Parse()
	if *variant != "" {
		r, err := measure(*variant, *jobs, *interval, *duration)
		if err == nil {
			err = json.NewEncoder(os.Stdout).Encode(r)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "schedbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*jobs, *interval, *duration, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "schedbench:", err)
		os.Exit(1)
	}
}

func run(jobs int, interval, duration time.Duration, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d no-op jobs, interval %s, %s per variant, load %s\n", jobs, interval, duration, proc.LoadAvg())
	var rs []result
	for _, v := range []string{"sched", "ticker"} {
		cmd := exec.Command(self, "-variant", v, "-jobs", strconv.Itoa(jobs), "-interval", interval.String(), "-duration", duration.String())
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("variant %s: %w", v, err)
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("variant %s: %w", v, err)
		}
		rs = append(rs, r)
	}
	fmt.Fprintf(out, "%-8s %8s %7s %10s %10s %10s %9s %9s %8s\n", "variant", "runs", "missed", "p50 lag", "p99 lag", "max lag", "RSS MiB", "peak MiB", "batches")
	for _, r := range rs {
		fmt.Fprintf(out, "%-8s %8d %7d %10s %10s %10s %9.1f %9.1f %8d\n", r.Variant, r.Runs, r.Missed,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond),
			float64(r.RSSKiB)/1024, float64(r.PeakKiB)/1024, r.Batches)
	}
	s, t := rs[0], rs[1]
	fmt.Fprintf(out, "ratio sched/ticker: p99 lag %.2f, peak RSS %.2f\n", float64(s.P99)/float64(max(t.P99, 1)), float64(s.PeakKiB)/float64(max(t.PeakKiB, 1)))
	return nil
}

// lagSink keeps the lag of every record.
type lagSink struct {
	mu      sync.Mutex
	lags    []time.Duration
	missed  int
	batches int
}

func (s *lagSink) WriteBatch(_ context.Context, recs []sched.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	for _, r := range recs {
		if r.Status == sched.StatusMissed {
			s.missed++
			continue
		}
		s.lags = append(s.lags, r.Lag)
	}
	return nil
}

func measure(variant string, n int, interval, duration time.Duration) (result, error) {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("service-%d/http", i)
	}
	sink := &lagSink{}
	switch variant {
	case "sched":
		s, err := sched.New(sched.Options{Sink: sink, Registerer: prometheus.NewRegistry()})
		if err != nil {
			return result{}, err
		}
		jobs := make([]sched.Job, n)
		noop := func(context.Context) sched.Outcome { return sched.Outcome{Status: sched.StatusUp} }
		for i, k := range keys {
			jobs[i] = sched.Job{Key: k, Interval: interval, Timeout: interval, Class: sched.ClassCheap, Hash: "1", Run: noop}
		}
		if _, err := s.Update(jobs); err != nil {
			return result{}, err
		}
		if err := s.Start(context.Background()); err != nil {
			return result{}, err
		}
		time.Sleep(duration)
		if err := s.Stop(context.Background()); err != nil {
			return result{}, err
		}
	case "ticker":
		tickerBaseline(keys, interval, duration, sink)
	default:
		return result{}, fmt.Errorf("unknown variant %q", variant)
	}
	rss, peak := proc.MemKiB("self")
	lags := sink.lags
	slices.Sort(lags)
	pct := func(p float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[min(len(lags)-1, int(p*float64(len(lags))))]
	}
	return result{Variant: variant, Runs: len(lags), Missed: sink.missed, P50: pct(0.50), P99: pct(0.99), Max: pct(1),
		RSSKiB: rss, PeakKiB: peak, Batches: sink.batches, Duration: duration}, nil
}

// tickerBaseline runs every job in its own goroutine with a time.Ticker
// started at the job's first slot on the same grid, recording the lag of
// each tick against its slot.
func tickerBaseline(keys []string, interval, duration time.Duration, sink *lagSink) {
	start := time.Now()
	end := start.Add(duration)
	var wg sync.WaitGroup
	lags := make([][]time.Duration, len(keys))
	for i, k := range keys {
		wg.Go(func() {
			off := sched.Offset(k, interval)
			r := (start.UnixNano() - int64(off)) % int64(interval)
			if r < 0 {
				r += int64(interval)
			}
			first := start.Add((interval - time.Duration(r)) % interval)
			time.Sleep(time.Until(first))
			if time.Now().After(end) {
				return
			}
			lags[i] = append(lags[i], time.Since(first))
			tk := time.NewTicker(interval)
			defer tk.Stop()
			for now := range tk.C {
				if now.After(end) {
					return
				}
				slot := first.Add(now.Sub(first).Round(interval))
				lags[i] = append(lags[i], now.Sub(slot))
			}
		})
	}
	wg.Wait()
	for _, l := range lags {
		sink.lags = append(sink.lags, l...)
	}
}
