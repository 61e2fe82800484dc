package integrity_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/integrity"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

// engines is the matrix every check test runs on.
var engines = []struct {
	name string
	url  func(t *testing.T) string
}{
	{dbx.Postgres, func(t *testing.T) string { return testenv.PostgresURL(t) }},
	{dbx.MySQL, func(t *testing.T) string { return testenv.MySQLDSN(t) }},
	{dbx.SQLite, func(t *testing.T) string { return filepath.Join(t.TempDir(), "app.db") }},
}

func forEachEngine(t *testing.T, fn func(t *testing.T, b *bundle)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			fn(t, setup(t, e.name, e.url(t)))
		})
	}
}

// bundle is one application database seeded with data errors, a store,
// and the captured audit events, alerts and check queries.
type bundle struct {
	engine string
	url    string
	db     *sql.DB // writable, for seeding and changing data
	store  *store.Store
	dir    string

	mu      sync.Mutex
	alerts  []notify.Message
	audits  []string
	queries []string
	log     *slog.Logger
}

func (b *bundle) Enqueue(_ context.Context, m notify.Message) ([]int64, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.alerts = append(b.alerts, m)
	return []int64{int64(len(b.alerts))}, nil
}

func (b *bundle) deps(now time.Time) integrity.Deps {
	return integrity.Deps{Store: b.store, Notifier: b, Logger: b.log, Now: func() time.Time { return now },
		Audit: func(_ context.Context, actor, action, target, outcome string, _ map[string]any) error {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.audits = append(b.audits, fmt.Sprintf("%s %s %s %s", actor, action, target, outcome))
			return nil
		}}
}

func (b *bundle) takeQueries() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queries
	b.queries = nil
	return q
}

// queryCounter records the check queries the package logs at debug level.
type queryCounter struct {
	b *bundle
	t *testing.T
}

func (h queryCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h queryCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "check ") && strings.HasSuffix(r.Message, "query") {
		h.b.mu.Lock()
		h.b.queries = append(h.b.queries, r.Message)
		h.b.mu.Unlock()
	}
	if r.Level >= slog.LevelInfo {
		h.t.Log(r.Message)
	}
	return nil
}
func (h queryCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h queryCounter) WithGroup(string) slog.Handler      { return h }

var schema = map[string][]string{
	dbx.Postgres: {
		"CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR(100))",
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, status VARCHAR(20), amount NUMERIC(10,2), email VARCHAR(100), created_at TIMESTAMP)",
		"CREATE TABLE side_effects (n INTEGER)",
		"CREATE FUNCTION steward_write() RETURNS integer LANGUAGE sql AS 'INSERT INTO side_effects VALUES (1); SELECT 1'",
	},
	dbx.MySQL: {
		"CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR(100))",
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, status VARCHAR(20), amount DECIMAL(10,2), email VARCHAR(100), created_at DATETIME)",
		"CREATE TABLE side_effects (n INTEGER)",
		"CREATE FUNCTION steward_write() RETURNS INTEGER MODIFIES SQL DATA BEGIN INSERT INTO side_effects VALUES (1); RETURN 1; END",
	},
	dbx.SQLite: {
		"CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)",
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT, amount NUMERIC, email TEXT, created_at TEXT)",
		"CREATE TABLE side_effects (n INTEGER)",
	},
}

// seedNow is when the seeded rows were "created" relative to: the newest
// order is 10 minutes old.
var seedNow = time.Now().UTC().Truncate(time.Second)

func setup(t *testing.T, engine, url string) *bundle {
	t.Helper()
	ctx := context.Background()
	db, err := dbx.Open(ctx, engine, url, false)
	if err != nil {
		t.Fatalf("open %s: %v", engine, err)
	}
	t.Cleanup(func() { db.Close() })
	recent := seedNow.Add(-10 * time.Minute).Format("2006-01-02 15:04:05")
	old := seedNow.Add(-48 * time.Hour).Format("2006-01-02 15:04:05")
	stmts := append([]string(nil), schema[engine]...)
	stmts = append(stmts,
		"INSERT INTO customers (id, email) VALUES (1, 'ann@example.com'), (2, 'bob@example.com'), (3, 'cy@example.com')",
		// 3: status NULL; 4: orphan customer, bad status, negative amount;
		// 5: negative but a refund, no customer; 6: amount NULL; 7: duplicate email of 1.
		"INSERT INTO orders (id, customer_id, status, amount, email, created_at) VALUES "+
			"(1, 1, 'paid', 10.00, 'ann@example.com', '"+old+"'), "+
			"(2, 2, 'paid', 20.00, 'bob@example.com', '"+old+"'), "+
			"(3, 1, NULL, 5.00, NULL, '"+old+"'), "+
			"(4, 99, 'bogus', -3.00, NULL, '"+old+"'), "+
			"(5, NULL, 'refund', -7.00, NULL, '"+old+"'), "+
			"(6, 2, 'paid', NULL, NULL, '"+old+"'), "+
			"(7, 3, 'shipped', 15.00, 'ann@example.com', '"+recent+"')",
	)
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("seed %s: %s: %v", engine, s, err)
		}
	}
	dir := t.TempDir()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &bundle{engine: engine, url: url, db: db, store: st, dir: dir}
	b.log = slog.New(queryCounter{b: b, t: t})
	return b
}

// service loads a config with the database main and the given checks
// (YAML list items, indented by 6 spaces).
func (b *bundle) service(t *testing.T, checks string) *config.Service {
	t.Helper()
	urlFile := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(urlFile, []byte(b.url), 0o600); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf("services:\n  - name: shop\n    databases:\n      - {name: main, engine: %s, url: \"file:%s\"}\n    checks:\n%s", b.engine, urlFile, checks)
	return loadService(t, y)
}

func loadService(t *testing.T, y string) *config.Service {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "steward.yaml"), []byte(y), config.LoadOptions{})
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg.Service("shop")
}

func byName(rs []integrity.Result) map[string]integrity.Result {
	m := map[string]integrity.Result{}
	for _, r := range rs {
		m[r.Check] = r
	}
	return m
}

func ids(r integrity.Result) []any {
	var out []any
	for _, row := range r.Sample {
		out = append(out, fmt.Sprint(row["id"]))
	}
	return out
}
