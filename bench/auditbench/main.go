// Command auditbench measures the audit log: group-commit append throughput
// with concurrent writers on SQLite or PostgreSQL, and offline verification
// of the exported JSONL against sha256sum over the same file, in the same
// run.
//
//	go run ./bench/auditbench -store sqlite -events 200000 -writers 16
//	go run ./bench/auditbench -store postgres -events 100000 -writers 16
//
// PostgreSQL comes from STEWARD_TEST_POSTGRES, or
// postgres://postgres@127.0.0.1:5432/postgres; a scratch database is created
// and dropped.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/store"
)

func main() {
	kind := flag.String("store", "sqlite", "sqlite or postgres")
	events := flag.Int("events", 200000, "events to append")
	writers := flag.Int("writers", 16, "concurrent writers")
	dir := flag.String("dir", "", "work directory (default: a temp dir, removed after)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the export verification to this file")
	flag.Parse()
	profile = *cpuprofile
	ctx := context.Background()
	if err := run(ctx, *kind, *events, *writers, *dir, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "auditbench:", err)
		os.Exit(1)
	}
}

var profile string

func run(ctx context.Context, kind string, events, writers int, dir string, out io.Writer) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "auditbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var storeURL string
	switch kind {
	case "sqlite":
		storeURL = "sqlite://" + filepath.Join(dir, "steward.db")
	case "postgres":
		u, drop, err := scratchPostgres(ctx)
		if err != nil {
			return err
		}
		defer drop()
		storeURL = u
	default:
		return fmt.Errorf("unknown -store %q: use sqlite or postgres", kind)
	}
	s, err := store.Open(ctx, storeURL, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()

	// Append: writers goroutines share the events.
	l := audit.New(s, audit.Options{Logger: slog.New(slog.DiscardHandler)})
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l.Start(lctx)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(events) {
					return
				}
				_, err := l.Append(ctx, audit.Entry{
					Actor: fmt.Sprintf("user-%d", w), Action: "token.create", Target: fmt.Sprintf("service/shop/token-%d", i), Outcome: "ok",
					Details: map[string]any{"scopes": []string{"read", "write"}, "ttl_s": 3600, "ip": "10.0.0.7", "i": i},
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	appendDur := time.Since(start)
	if err := l.Close(); err != nil {
		return err
	}
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Fprintf(out, "store:             %s\n", kind)
	fmt.Fprintf(out, "append:            %d events, %d writers, %.2fs, %.0f events/s\n", events, writers, appendDur.Seconds(), float64(events)/appendDur.Seconds())

	// Verify the live store.
	start = time.Now()
	rep, err := audit.Verify(ctx, audit.StoreSource(s), nil)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("store does not verify: %s", rep.Problem)
	}
	d := time.Since(start)
	fmt.Fprintf(out, "verify store:      %d events, %.2fs, %.0f events/s\n", rep.Events, d.Seconds(), float64(rep.Events)/d.Seconds())

	// Export, then verify the file against sha256sum over the same bytes.
	path := filepath.Join(dir, "audit.jsonl")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := audit.Export(ctx, s, 1, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	mb := float64(fi.Size()) / 1e6
	// Warm the page cache so both read from memory.
	if err := readAll(path); err != nil {
		return err
	}
	if profile != "" {
		pf, err := os.Create(profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	verifyDur, err := best(3, func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		rep, err := audit.Verify(ctx, audit.JSONLSource(f), nil)
		if err != nil {
			return err
		}
		if !rep.OK || rep.Events != int64(events) {
			return fmt.Errorf("export does not verify: %+v", rep)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if profile != "" {
		pprof.StopCPUProfile()
	}
	shaDur, err := best(3, func() error {
		out, err := exec.CommandContext(ctx, "sha256sum", path).CombinedOutput()
		if err != nil {
			return fmt.Errorf("sha256sum: %v: %s", err, out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	vr, sr := mb/verifyDur.Seconds(), mb/shaDur.Seconds()
	fmt.Fprintf(out, "export:            %.1f MB (%d bytes/event)\n", mb, fi.Size()/int64(events))
	fmt.Fprintf(out, "verify export:     %.3fs, %.0f MB/s, %.0f events/s\n", verifyDur.Seconds(), vr, float64(events)/verifyDur.Seconds())
	fmt.Fprintf(out, "sha256sum export:  %.3fs, %.0f MB/s\n", shaDur.Seconds(), sr)
	fmt.Fprintf(out, "ratio:             verify/sha256sum = %.2f\n", vr/sr)
	return nil
}

// best runs fn n times and returns the fastest run.
func best(n int, fn func() error) (time.Duration, error) {
	var min time.Duration
	for i := range n {
		start := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		if d := time.Since(start); i == 0 || d < min {
			min = d
		}
	}
	return min, nil
}

func readAll(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

// scratchPostgres creates a database for the run and returns its URL and a
// function that drops it.
func scratchPostgres(ctx context.Context) (string, func(), error) {
	base := os.Getenv("STEWARD_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w (set STEWARD_TEST_POSTGRES)", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	name := "auditbench_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("postgres: create database: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			fmt.Fprintln(os.Stderr, "auditbench: drop scratch database:", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "auditbench: drop scratch database:", err)
		}
	}
	return u.String(), drop, nil
}
