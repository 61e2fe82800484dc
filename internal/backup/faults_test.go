package backup_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/testenv"
)

// TestSourceDownDuringPgDump takes a pg_dump backup of a database big enough
// that the dump streams for seconds, and terminates the dump's connections
// from another session while pg_dump is copying table data: the source goes
// away mid-backup. The run must fail naming the source, and leave nothing
// in the repository but the evidence: a failed run, an audit event, an alert.
func TestSourceDownDuringPgDump(t *testing.T) {
	t.Parallel()
	src := testenv.PostgresURL(t)
	b := setup(t)

	// The other session: it seeds the source, then pulls the plug.
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	// 300 000 rows of 384 bytes of random hex: about 130 MB in the table,
	// a dump that compresses poorly and takes seconds to stream.
	if _, err := admin.Exec(ctx, `CREATE TABLE events (id bigint PRIMARY KEY, payload text NOT NULL);
INSERT INTO events SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
  || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
  || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
FROM generate_series(1, 300000) g;
ANALYZE events;`); err != nil {
		t.Fatalf("seed: %v", err)
	}

	b.svc.Databases = append(b.svc.Databases, config.Database{Name: "pg", Engine: "postgres", URL: config.Secret(src)})
	bk := b.backup()
	bk.Database, bk.Method, bk.Format, bk.Freshness = "pg", "pg_dump", "custom", ""

	// Terminate every other connection to the source (pg_dump's and the one
	// holding its snapshot) once pg_dump is seen copying rows.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	terminated := make(chan int, 1)
	go func() {
		n := 0
		defer func() { terminated <- n }()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n == 0 {
			select {
			case <-watchCtx.Done():
				return
			case <-tick.C:
			}
			err := admin.QueryRow(watchCtx, `
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND EXISTS (SELECT 1 FROM pg_stat_activity d
              WHERE d.datname = current_database() AND d.application_name = 'pg_dump'
                AND d.state = 'active' AND d.query LIKE 'COPY %')`).Scan(&n)
			if err != nil && watchCtx.Err() == nil {
				t.Errorf("terminate the dump's connections: %v", err)
				return
			}
		}
	}()

	_, runErr := backup.Run(ctx, b.deps, b.svc, bk, "alice")
	stopWatch()
	if n := <-terminated; n == 0 {
		t.Fatalf("pg_dump was never seen copying, so the source was not taken down mid-dump (run error: %v); make the table bigger", runErr)
	} else {
		t.Logf("terminated %d connection(s) to the source while pg_dump was copying", n)
	}
	if runErr == nil {
		t.Fatal("backup succeeded although its source went away mid-dump")
	}
	t.Logf("run error: %v", runErr)

	// The reason names the backup, the source database and what the server
	// said; no password or snapshot internals are needed to understand it.
	u, err := url.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"backup shop/nightly", "dump database pg", u.Host + u.Path, "pg_dump"} {
		if !strings.Contains(runErr.Error(), want) {
			t.Errorf("run error %q does not name %q", runErr, want)
		}
	}
	if msg := runErr.Error(); !strings.Contains(msg, "terminating connection due to administrator command") &&
		!strings.Contains(msg, "server closed the connection unexpectedly") {
		t.Errorf("run error %q does not say the server ended the connection", msg)
	}
	// Nothing in the repository, a failed run row, audit event and alert.
	b.failed(t, runErr, "dump database pg")

	// The partial dump is gone from the temporary directory too.
	left, _ := filepath.Glob(filepath.Join(b.dir, "steward-backup-*"))
	if len(left) != 0 {
		t.Errorf("temporary dump left behind: %v", left)
	}
	if _, err := os.Stat(b.repoDir); err == nil {
		entries, _ := os.ReadDir(filepath.Join(b.repoDir, "shop", "nightly"))
		if len(entries) != 0 {
			t.Errorf("backup folder left in the repository: %v", entries)
		}
	}
}
