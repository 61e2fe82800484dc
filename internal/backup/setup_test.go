package backup_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	dbxall "github.com/stewardhq/steward/internal/dbx/all"
	"github.com/stewardhq/steward/internal/dbx/sqlite"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// bundle is a test's Steward: a SQLite state store with the audit log and
// a notification outbox, the real engines, a SQLite source database with
// data, and a file repository.
type bundle struct {
	ctx     context.Context
	dir     string
	store   *store.Store
	engines *dbx.Registry
	svc     *config.Service
	repoDir string
	deps    backup.Deps

	mu       sync.Mutex
	progress []backup.Progress
}

// testLogger routes logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := testLogger(t)
	al := audit.New(st, audit.Options{Logger: log})
	al.Start(ctx)
	t.Cleanup(func() { al.Close() })
	ncfg := config.Notify{Channels: []config.Channel{{Name: "ops", Type: "webhook", URL: "http://127.0.0.1:9/hook"}}}
	ob := notify.NewOutbox(st, ncfg, nil, notify.Options{Logger: log})

	src := filepath.Join(dir, "shop.db")
	eng := sqlite.New()
	if err := sqlite.Create(src); err != nil {
		t.Fatal(err)
	}
	if err := eng.Exec(ctx, src, `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), amount INTEGER, updated_at TEXT NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
INSERT INTO customers SELECT i, 'customer ' || i FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO orders SELECT i, 1 + i % 50, i * 7, printf('2026-01-01T%02d:%02d:00Z', (i / 60) % 24, i % 60) FROM n;
`); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(dir, "repo")
	b := &bundle{ctx: ctx, dir: dir, store: st, engines: dbxall.Registry(), repoDir: repoDir}
	b.svc = &config.Service{
		Name:       "shop",
		Objectives: config.Objectives{RTO: "30m", RPO: "1h"},
		Databases:  []config.Database{{Name: "main", Engine: "sqlite", URL: config.Secret(src)}},
		Backups: []config.Backup{{
			Name: "nightly", Database: "main", Method: "sqlite", Repository: "file://" + repoDir, Jobs: 1,
			Freshness: "SELECT max(updated_at) FROM orders", Retention: config.Retention{KeepLast: 7},
		}},
	}
	b.deps = backup.Deps{
		Store: st, Engines: b.engines, Notifier: ob, Logger: log, TempDir: filepath.Join(dir),
		Audit: func(ctx context.Context, actor, action, target, outcome string, details map[string]any) error {
			_, err := al.Append(ctx, audit.Entry{Actor: actor, Action: action, Target: target, Outcome: outcome, Details: details})
			return err
		},
		Progress: func(p backup.Progress) {
			b.mu.Lock()
			b.progress = append(b.progress, p)
			b.mu.Unlock()
		},
	}
	return b
}

func (b *bundle) backup() *config.Backup { return &b.svc.Backups[0] }

// run takes a backup of shop/nightly and fails the test on error.
func (b *bundle) run(t *testing.T) backup.Manifest {
	t.Helper()
	m, err := backup.Run(b.ctx, b.deps, b.svc, b.backup(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (b *bundle) repo(t *testing.T) *backup.Repository {
	t.Helper()
	r, err := backup.OpenRepository(b.ctx, b.backup().Repository)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// objectPath is where a file repository keeps object name of m.
func (b *bundle) objectPath(m backup.Manifest, name string) string {
	return filepath.Join(b.repoDir, m.Service, m.Backup, m.ID, filepath.FromSlash(name))
}

// audits returns the backup audit events, oldest first.
func (b *bundle) audits(t *testing.T) []store.AuditRecord {
	t.Helper()
	recs, err := b.store.ListAudit(b.ctx, store.AuditFilter{Action: "backup."})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	return recs
}

func (b *bundle) lastProgress(phase string) (backup.Progress, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.progress) - 1; i >= 0; i-- {
		if b.progress[i].Phase == phase {
			return b.progress[i], true
		}
	}
	return backup.Progress{}, false
}

func describe(recs []store.AuditRecord) string {
	var s []string
	for _, r := range recs {
		s = append(s, fmt.Sprintf("%s %s %s %s", r.Action, r.Target, r.Outcome, r.Details))
	}
	return strings.Join(s, "\n")
}
