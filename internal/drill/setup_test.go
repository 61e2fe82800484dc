package drill_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	_ "github.com/go-sql-driver/mysql" // MariaDB seeding

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	dbxall "github.com/stewardhq/steward/internal/dbx/all"
	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/notify/all"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

// bundle is one test's Steward: a SQLite store, the real audit log, an
// outbox with a webhook channel on loopback, the registered engines, and a
// file:// backup repository.
type bundle struct {
	t       *testing.T
	ctx     context.Context
	dir     string
	store   *store.Store
	audit   *audit.Log
	outbox  *notify.Outbox
	engines *dbx.Registry
	cfg     *config.Config
	repo    string
}

// tlog routes slog to t.Log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// setup builds a bundle; cfgYAML is the services section with REPO
// replaced by the repository URL.
func setup(t *testing.T, services string) *bundle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	b := &bundle{t: t, ctx: ctx, dir: dir, repo: "file://" + filepath.Join(dir, "repo")}
	for _, sub := range []string{"repo", "work"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	b.store, err = store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.store.Close() })
	b.audit = audit.New(b.store, audit.Options{})
	b.audit.Start(ctx)
	t.Cleanup(func() { b.audit.Close() })
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(hook.Close)
	yaml := fmt.Sprintf("steward:\n  allow_inline_secrets: true\n  data_dir: %s\nnotify:\n  channels:\n    - {name: ops, type: webhook, url: %q}\n%s",
		filepath.Join(dir, "data"), hook.URL, strings.ReplaceAll(services, "REPO", b.repo))
	b.cfg, err = config.Parse(filepath.Join(dir, "steward.yaml"), []byte(yaml), config.LoadOptions{})
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	chans, err := all.Build(b.cfg.Notify, hook.Client())
	if err != nil {
		t.Fatal(err)
	}
	b.outbox = notify.NewOutbox(b.store, b.cfg.Notify, chans, notify.Options{})
	b.engines = dbxall.Registry()
	return b
}

func (b *bundle) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{b.t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (b *bundle) deps() drill.Deps {
	cfg := b.cfg
	return drill.Deps{
		Store: b.store, Engines: b.engines, Notifier: b.outbox, Logger: b.logger(),
		WorkDir: filepath.Join(b.dir, "work"), Progress: tlog{b.t}, Config: func() *config.Config { return cfg },
		Audit: func(ctx context.Context, actor, act, target, outcome string, details map[string]any) error {
			_, err := b.audit.Append(ctx, audit.Entry{Actor: actor, Action: act, Target: target, Outcome: outcome, Details: details})
			return err
		},
	}
}

func (b *bundle) service(name string) *config.Service {
	b.t.Helper()
	s := b.cfg.Service(name)
	if s == nil {
		b.t.Fatalf("no service %s", name)
	}
	return s
}

// takeBackup runs a real backup through internal/backup.
func (b *bundle) takeBackup(service, name string) backup.Manifest {
	b.t.Helper()
	svc := b.service(service)
	m, err := backup.Run(b.ctx, backup.Deps{Store: b.store, Engines: b.engines, Logger: b.logger(), TempDir: filepath.Join(b.dir, "work")}, svc, svc.Backup(name), "test")
	if err != nil {
		b.t.Fatalf("backup %s/%s: %v", service, name, err)
	}
	return m
}

// run runs drill service/name.
func (b *bundle) run(service, name string, opts drill.RunOptions) (*drill.Report, error) {
	b.t.Helper()
	svc := b.service(service)
	d := svc.Drill(name)
	if d == nil {
		b.t.Fatalf("no drill %s/%s", service, name)
	}
	if err := os.MkdirAll(filepath.Join(b.dir, "work"), 0o700); err != nil {
		b.t.Fatal(err)
	}
	if opts.Actor == "" {
		opts.Actor = "user:tester"
	}
	return drill.Run(b.ctx, b.deps(), svc, d, opts)
}

// restore creates a restore.run action of service with params and, when
// it was created, executes it through the action pipeline (the config must
// auto-approve restore.run). It returns the action as created (its plan),
// the error of Create or Execute, and the report of the run it recorded.
func (b *bundle) restore(service string, params drill.RestoreParams) (*action.Action, *drill.Report, error) {
	b.t.Helper()
	deps := b.deps()
	reg := action.NewRegistry()
	reg.Register(drill.NewRestoreKind(func() *config.Config { return b.cfg }, deps))
	p, err := action.New(action.Options{Store: b.store, Kinds: reg, Config: b.cfg, Audit: deps.Audit, Notifier: b.outbox})
	if err != nil {
		b.t.Fatal(err)
	}
	admin := auth.NewManager(b.store, nil, deps.Audit).LocalAdmin("tester")
	raw, _ := json.Marshal(params)
	created, err := p.Create(b.ctx, admin, action.Request{Kind: drill.RestoreKindName, Service: service, Target: params.Database, Params: raw, Reason: "INC-7: test restore"})
	if err != nil {
		return nil, nil, err
	}
	done, err := p.Execute(b.ctx, admin, created.ID)
	if done == nil || done.Result == nil {
		b.t.Fatalf("execute action %d: no result: %v", created.ID, err)
	}
	var rep drill.Report
	id, ok := done.Result.Details["run_id"].(int64)
	if f, isFloat := done.Result.Details["run_id"].(float64); isFloat {
		id, ok = int64(f), true
	}
	if ok {
		row, gerr := b.store.GetDrillRun(b.ctx, id)
		if gerr != nil {
			b.t.Fatal(gerr)
		}
		if jerr := json.Unmarshal([]byte(row.Report), &rep); jerr != nil {
			b.t.Fatal(jerr)
		}
	} else {
		b.t.Fatalf("result names no run: %+v", done.Result)
	}
	created.Result = done.Result
	return created, &rep, err
}

// alerts returns the events queued on the webhook channel.
func (b *bundle) alerts() []store.OutboxRow {
	b.t.Helper()
	rows, err := b.store.ListOutbox(b.ctx, "ops", "", 100)
	if err != nil {
		b.t.Fatal(err)
	}
	return rows
}

// auditOutcomes lists the outcomes of audit events action, oldest first.
func (b *bundle) auditOutcomes(action string) []string {
	b.t.Helper()
	recs, err := b.store.ListAudit(b.ctx, store.AuditFilter{Action: action})
	if err != nil {
		b.t.Fatal(err)
	}
	var out []string
	for i := len(recs) - 1; i >= 0; i-- {
		out = append(out, recs[i].Outcome)
	}
	return out
}

// checkFailed asserts a failed drill: status, reason, recorded run,
// scratch removed, an alert and an audit event.
func (b *bundle) checkFailed(rep *drill.Report, err error, status, reason string) {
	b.t.Helper()
	if rep == nil {
		b.t.Fatalf("no report: %v", err)
	}
	want := drill.ErrFailed
	if status == drill.StatusError {
		want = drill.ErrNotRun
	}
	if err == nil || !errorsIs(err, want) {
		b.t.Fatalf("error = %v, want %v", err, want)
	}
	if rep.Status != status || !strings.Contains(rep.Error, reason) {
		b.t.Fatalf("status %q, error %q; want %q containing %q", rep.Status, rep.Error, status, reason)
	}
	row, gerr := b.store.GetDrillRun(b.ctx, rep.RunID)
	if gerr != nil || row.State != status || row.Error != rep.Error || row.FinishedAt == nil {
		b.t.Fatalf("drill run row = %+v, %v", row, gerr)
	}
	var stored drill.Report
	if jerr := json.Unmarshal([]byte(row.Report), &stored); jerr != nil || stored.Status != status {
		b.t.Fatalf("stored report: %v %q", jerr, row.Report)
	}
	b.checkNoScratch()
	found := false
	for _, a := range b.alerts() {
		if a.Event == drill.EventFailed && a.Severity == notify.SeverityWarning {
			found = true
		}
	}
	if !found {
		b.t.Fatalf("no %s alert queued: %+v", drill.EventFailed, b.alerts())
	}
	if got := b.auditOutcomes("drill.run"); len(got) == 0 || got[len(got)-1] != status {
		b.t.Fatalf("audit drill.run outcomes %v, want last %s", got, status)
	}
}

// checkNoScratch asserts every recorded scratch resource was destroyed and
// nothing is left in the work directory.
func (b *bundle) checkNoScratch() {
	b.t.Helper()
	live, err := b.store.LiveScratch(b.ctx)
	if err != nil || len(live) != 0 {
		b.t.Fatalf("scratch left: %+v, %v", live, err)
	}
	entries, _ := os.ReadDir(filepath.Join(b.dir, "work"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), drill.LabelPrefix) || strings.HasPrefix(e.Name(), "steward-fetch-") {
			b.t.Fatalf("left in the work directory: %s", e.Name())
		}
	}
}

// --- sources ---

// seedSQLite creates a SQLite application database with orders and
// customers whose newest update is at newest.
func seedSQLite(t *testing.T, path string, newest time.Time) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := []string{
		"CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), status TEXT, amount REAL NOT NULL, updated_at TEXT NOT NULL)",
		"CREATE INDEX orders_customer ON orders(customer_id)",
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50) INSERT INTO customers SELECT i, 'customer ' || i FROM n",
		fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000) INSERT INTO orders SELECT i, 1 + i %% 50, 'paid', i * 1.5, '%s' FROM n",
			newest.Add(-time.Hour).UTC().Format(time.RFC3339)),
		fmt.Sprintf("UPDATE orders SET updated_at = '%s' WHERE id = 2000", newest.UTC().Format(time.RFC3339)),
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// seedPostgres fills a new PostgreSQL database.
func seedPostgres(t *testing.T, url string, newest time.Time) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	script := fmt.Sprintf(`CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), status text, amount numeric NOT NULL, updated_at timestamptz NOT NULL);
CREATE INDEX orders_customer ON orders(customer_id);
INSERT INTO customers SELECT i, 'customer ' || i FROM generate_series(1, 50) i;
INSERT INTO orders SELECT i, 1 + i %% 50, 'paid', i * 1.5, '%s'::timestamptz - interval '1 hour' FROM generate_series(1, 20000) i;
UPDATE orders SET updated_at = '%s' WHERE id = 20000;`, newest.UTC().Format(time.RFC3339), newest.UTC().Format(time.RFC3339))
	if _, err := db.Exec(script); err != nil {
		t.Fatalf("seed postgres: %v", err)
	}
}

// seedMySQL fills a new MariaDB database.
func seedMySQL(t *testing.T, dsn string, newest time.Time) {
	t.Helper()
	if !strings.Contains(dsn, "multiStatements") {
		if strings.Contains(dsn, "?") {
			dsn += "&multiStatements=true"
		} else {
			dsn += "?multiStatements=true"
		}
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ts := newest.UTC().Format("2006-01-02 15:04:05")
	script := fmt.Sprintf(`CREATE TABLE customers (id int PRIMARY KEY, name varchar(100) NOT NULL) ENGINE=InnoDB;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status varchar(20), amount decimal(10,2) NOT NULL, updated_at datetime(6) NOT NULL, KEY orders_customer (customer_id), FOREIGN KEY (customer_id) REFERENCES customers(id)) ENGINE=InnoDB;
INSERT INTO customers SELECT seq, CONCAT('customer ', seq) FROM seq_1_to_50;
INSERT INTO orders SELECT seq, 1 + seq %% 50, 'paid', seq * 1.5, TIMESTAMP '%s' - INTERVAL 1 HOUR FROM seq_1_to_3000;
UPDATE orders SET updated_at = '%s' WHERE id = 3000;`, ts, ts)
	if _, err := db.Exec(script); err != nil {
		t.Fatalf("seed mysql: %v", err)
	}
}

// ageKeys returns a fresh age recipient and identity.
func ageKeys(t *testing.T) (recipient, identity string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String(), id.String()
}

// pgAdminURL is a URL of the test PostgreSQL server a scratch database can
// be created from (any database on it, as a user who may CREATE DATABASE).
func pgAdminURL(t *testing.T) string {
	t.Helper()
	return testenv.PostgresURL(t)
}
