// Command drillbench compares a Steward restore drill with doing the same
// restore by hand, in the same run, on a pgbench database.
//
//	go run ./bench/drillbench               # pgbench scale 50, 3 runs each
//	go run ./bench/drillbench -scale 10 -runs 5
//
// It creates a pgbench database (`pgbench -i -s SCALE`) on the PostgreSQL
// server at STEWARD_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/postgres), takes a custom-format backup
// through internal/backup into a file:// repository, then alternates:
//
//	(a) steward: drill.Run — fetch and verify the checksum from the
//	    repository, create a scratch database on the server, pg_restore -j 2,
//	    row counts against the manifest, the verification queries, drop;
//	(b) by hand: createdb, pg_restore -j 2 of the same dump file, the same
//	    verification queries through psql (dropdb afterwards, untimed).
//
// It prints min and median of both, their ratio (target: at most 1.10), and
// the restore throughput beside the machine's sequential write speed
// (dd if=/dev/zero bs=1M count=1024 oflag=direct, or a Go write+fsync).
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
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	dbxall "github.com/stewardhq/steward/internal/dbx/all"
	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/store"
)

// The verification queries both sides run, with what they must return.
var checks = []struct{ name, sql, expect string }{
	{"branches", "SELECT count(*) FROM pgbench_branches", "== SCALE"},
	{"accounts", "SELECT count(*) FROM pgbench_accounts", "== SCALE00000"},
	{"balances", "SELECT sum(abalance) FROM pgbench_accounts", "== 0"},
	{"no history", "SELECT count(*) FROM pgbench_history", "== 0"},
}

func main() {
	scale := flag.Int("scale", 50, "pgbench scale factor")
	runs := flag.Int("runs", 3, "runs of each side, alternating")
	flag.IntVar(&warmup, "warmup", 1, "untimed runs of each side first (page cache, catalogs)")
	jobs := flag.Int("jobs", 2, "pg_restore jobs, both sides")
	dir := flag.String("dir", "", "work directory (default: a temp dir, removed after)")
	keep := flag.Bool("keep", false, "keep the source database and work directory")
	flag.BoolVar(&verbose, "v", false, "print the phases of every drill")
	flag.Parse()
	if err := run(context.Background(), *scale, *runs, *jobs, *dir, *keep, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "drillbench:", err)
		os.Exit(1)
	}
}

var (
	verbose bool
	warmup  int
)

func serverURL() string {
	if v := os.Getenv("STEWARD_TEST_POSTGRES"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func withDB(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + db
	return u.String()
}

func randHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sh(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func run(ctx context.Context, scale, runs, jobs int, dir string, keep bool, out io.Writer) error {
	for _, tool := range []string{"pgbench", "pg_restore", "createdb", "dropdb", "psql"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install the PostgreSQL client tools", tool)
		}
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "drillbench-")
		if err != nil {
			return err
		}
		dir = d
		if !keep {
			defer os.RemoveAll(dir)
		}
	}
	for _, sub := range []string{"repo", "work", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	server := serverURL()
	srcName := "steward_bench_" + randHex()
	src := withDB(server, srcName)
	fmt.Fprintf(out, "drillbench: pgbench scale %d, %d runs each, pg_restore -j %d, server %s\n", scale, runs, jobs, redact(server))

	t0 := time.Now()
	if err := sh(ctx, "createdb", "--maintenance-db="+server, srcName); err != nil {
		return err
	}
	if !keep {
		defer sh(context.Background(), "dropdb", "--maintenance-db="+server, "--force", "--if-exists", srcName) //nolint:errcheck
	}
	if err := sh(ctx, "pgbench", "-i", "-q", "-s", fmt.Sprint(scale), src); err != nil {
		return err
	}
	fmt.Fprintf(out, "source:  pgbench -i -s %d in %s\n", scale, time.Since(t0).Round(time.Millisecond))

	// Steward: config, store, audit log, engines.
	var verify strings.Builder
	for _, c := range checks {
		fmt.Fprintf(&verify, "          - {name: %q, sql: %q, expect: %q}\n", c.name, c.sql, expand(c.expect, scale))
	}
	yaml := fmt.Sprintf(`steward:
  allow_inline_secrets: true
  data_dir: %s
services:
  - name: bench
    objectives: {rto: 1h, rpo: 24h}
    databases:
      - {name: main, engine: postgres, url: %q}
    backups:
      - {name: dump, database: main, method: pg_dump, format: custom, jobs: %d, repository: %q}
    drills:
      - name: restore
        backup: dump
        scratch: {kind: server, url: %q}
        row_counts: exact
        verify:
%s`, filepath.Join(dir, "data"), src, jobs, "file://"+filepath.Join(dir, "repo"), server, verify.String())
	cfg, err := config.Parse(filepath.Join(dir, "steward.yaml"), []byte(yaml), config.LoadOptions{})
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	al := audit.New(st, audit.Options{})
	al.Start(ctx)
	defer al.Close()
	auditFn := auth.AuditFunc(func(ctx context.Context, actor, action, target, outcome string, details map[string]any) error {
		_, err := al.Append(ctx, audit.Entry{Actor: actor, Action: action, Target: target, Outcome: outcome, Details: details})
		return err
	})
	engines := dbxall.Registry()
	log := slog.New(slog.DiscardHandler)
	svc := cfg.Service("bench")

	t0 = time.Now()
	m, err := backup.Run(ctx, backup.Deps{Store: st, Engines: engines, Audit: auditFn, Logger: log, TempDir: filepath.Join(dir, "work")}, svc, svc.Backup("dump"), "bench")
	if err != nil {
		return err
	}
	dumpFile := ""
	for _, o := range m.Objects {
		dumpFile = filepath.Join(dir, "repo", m.Service, m.Backup, m.ID, o.Name)
	}
	if _, err := os.Stat(dumpFile); err != nil {
		return fmt.Errorf("dump file in the repository: %w", err)
	}
	fmt.Fprintf(out, "backup:  %s, %s in %s\n", m.ID, mb(m.Size), time.Since(t0).Round(time.Millisecond))

	deps := drill.Deps{Store: st, Engines: engines, Audit: auditFn, Logger: log, WorkDir: filepath.Join(dir, "work"), Config: func() *config.Config { return cfg }}
	var steward, manual, rto, restore []time.Duration
	var dbBytes int64
	// One side's run: its wall time and, for Steward, the report.
	stewardRun := func() (time.Duration, *drill.Report, error) {
		// Steward's drill: fetch, checksum, scratch database, restore, row
		// counts, the queries (RTO ends here), teardown.
		start := time.Now()
		rep, err := drill.Run(ctx, deps, svc, svc.Drill("restore"), drill.RunOptions{Actor: "bench"})
		return time.Since(start), rep, err
	}
	manualRun := func() (time.Duration, error) {
		// By hand: createdb, pg_restore, the same queries through psql.
		name := "steward_bench_manual_" + randHex()
		target := withDB(server, name)
		start := time.Now()
		err := sh(ctx, "createdb", "--maintenance-db="+server, name)
		if err == nil {
			err = sh(ctx, "pg_restore", fmt.Sprintf("--jobs=%d", jobs), "--no-owner", "--no-privileges", "--exit-on-error", "--dbname="+target, dumpFile)
		}
		if err == nil {
			err = psqlChecks(ctx, target, scale)
		}
		took := time.Since(start)
		if err == nil && dbBytes == 0 {
			dbBytes, err = databaseSize(ctx, target)
		}
		if derr := sh(context.Background(), "dropdb", "--maintenance-db="+server, "--force", "--if-exists", name); derr != nil && err == nil {
			err = derr
		}
		return took, err
	}
	// Both sides start from the same server state: a checkpoint flushes
	// what the previous restore left dirty, so neither pays for the other.
	checkpoint := func() error { return sh(ctx, "psql", "-X", "-q", "-d", server, "-c", "CHECKPOINT") }
	for i := range warmup + runs {
		timed := i >= warmup
		var st, mt time.Duration
		var rep *drill.Report
		// Alternate which side goes first (ABBA), so that drift in the
		// machine's state does not favour one.
		for _, side := range [][2]string{{"steward", "manual"}, {"manual", "steward"}}[i%2] {
			if err := checkpoint(); err != nil {
				return err
			}
			var err error
			if side == "steward" {
				st, rep, err = stewardRun()
			} else {
				mt, err = manualRun()
			}
			if err != nil {
				return fmt.Errorf("%s run %d: %w", side, i+1, err)
			}
		}
		var rs float64
		for _, p := range rep.Phases {
			if strings.HasPrefix(p.Name, "restore data") || strings.HasPrefix(p.Name, "build indexes") {
				rs += p.Seconds
			}
		}
		if verbose {
			for _, p := range rep.Phases {
				fmt.Fprintf(out, "         %-28s %7.3fs\n", p.Name, p.Seconds)
			}
		}
		if !timed {
			fmt.Fprintf(out, "warm-up: steward %7.3fs (RTO %7.3fs)   by hand %7.3fs (not counted)\n", st.Seconds(), *rep.RTOSeconds, mt.Seconds())
			continue
		}
		steward, manual = append(steward, st), append(manual, mt)
		rto, restore = append(rto, secs(*rep.RTOSeconds)), append(restore, secs(rs))
		fmt.Fprintf(out, "run %d:   steward %7.3fs (RTO %7.3fs)   by hand %7.3fs\n", len(manual), st.Seconds(), *rep.RTOSeconds, mt.Seconds())
	}

	smin, smed := stats(steward)
	mmin, mmed := stats(manual)
	rmin, rmed := stats(rto)
	fmt.Fprintf(out, "\n%-40s %10s %10s\n", "", "min", "median")
	fmt.Fprintf(out, "%-40s %9.3fs %9.3fs\n", "steward, start to verified (RTO)", rmin.Seconds(), rmed.Seconds())
	fmt.Fprintf(out, "%-40s %9.3fs %9.3fs\n", "steward, end to end (with teardown)", smin.Seconds(), smed.Seconds())
	fmt.Fprintf(out, "%-40s %9.3fs %9.3fs\n", "by hand: createdb+pg_restore+psql", mmin.Seconds(), mmed.Seconds())
	ratio := rmed.Seconds() / mmed.Seconds()
	verdict := "OK"
	if ratio > 1.10 {
		verdict = "ABOVE TARGET"
	}
	fmt.Fprintf(out, "ratio steward/by hand, same steps (RTO):  %.3f median, %.3f min; target <= 1.10: %s\n", ratio, rmin.Seconds()/mmin.Seconds(), verdict)
	fmt.Fprintf(out, "ratio steward/by hand, end to end:        %.3f median, %.3f min (steward also drops its scratch)\n", smed.Seconds()/mmed.Seconds(), smin.Seconds()/mmin.Seconds())

	_, restMed := stats(restore)
	thr := float64(dbBytes) / 1e6 / restMed.Seconds()
	fmt.Fprintf(out, "restore throughput: %.1f MB/s (restored database %s over restore data + indexes, median; dump %s)\n", thr, mb(dbBytes), mb(m.Size))
	wr, how, err := writeSpeed(ctx, filepath.Join(dir, "work"))
	if err != nil {
		fmt.Fprintf(out, "sequential write speed: %v\n", err)
		return nil
	}
	fmt.Fprintf(out, "sequential write:   %.1f MB/s (%s); restore reaches %.1f%% of it\n", wr, how, 100*thr/wr)
	return nil
}

// databaseSize is pg_database_size of the database at target.
func databaseSize(ctx context.Context, target string) (int64, error) {
	out, err := exec.CommandContext(ctx, "psql", "-X", "-A", "-t", "-d", target, "-c", "SELECT pg_database_size(current_database())").Output()
	if err != nil {
		return 0, fmt.Errorf("database size: %w", err)
	}
	var n int64
	_, err = fmt.Sscan(strings.TrimSpace(string(out)), &n)
	return n, err
}

func expand(expect string, scale int) string {
	return strings.ReplaceAll(expect, "SCALE", fmt.Sprint(scale))
}

// psqlChecks runs the verification queries through psql and checks the
// results as Steward does.
func psqlChecks(ctx context.Context, target string, scale int) error {
	for _, c := range checks {
		out, err := exec.CommandContext(ctx, "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", target, "-c", c.sql).Output()
		if err != nil {
			return fmt.Errorf("psql %s: %w", c.sql, err)
		}
		got := strings.TrimSpace(string(out))
		ok, err := drill.CheckExpect(expand(c.expect, scale), got)
		if err != nil || !ok {
			return fmt.Errorf("check %s: %q does not satisfy %s (%v)", c.name, got, expand(c.expect, scale), err)
		}
	}
	return nil
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func stats(ds []time.Duration) (minimum, median time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[0], s[len(s)/2]
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// writeSpeed measures sequential write speed of 1 GiB in dir: dd with
// O_DIRECT where it works, else a Go write of 1 MiB blocks and an fsync.
func writeSpeed(ctx context.Context, dir string) (float64, string, error) {
	path := filepath.Join(dir, "ddtest")
	defer os.Remove(path)
	const size = 1 << 30
	if _, err := exec.LookPath("dd"); err == nil {
		start := time.Now()
		err := exec.CommandContext(ctx, "dd", "if=/dev/zero", "of="+path, "bs=1M", "count=1024", "oflag=direct").Run()
		if err == nil {
			return size / 1e6 / time.Since(start).Seconds(), "dd bs=1M count=1024 oflag=direct", nil
		}
		os.Remove(path)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, "", err
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
	for range 1024 {
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return 0, "", err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, "", err
	}
	if err := f.Close(); err != nil {
		return 0, "", err
	}
	el := time.Since(start)
	if el <= 0 {
		return 0, "", errors.New("write took no time")
	}
	return size / 1e6 / el.Seconds(), "Go 1 MiB writes + fsync", nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}
