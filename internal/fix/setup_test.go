package fix

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

// engines is the matrix every database test runs on.
var engines = []string{dbx.Postgres, dbx.MySQL, dbx.SQLite}

// bundle is a target database with an orders table, a Steward store and
// the fix dependencies.
type bundle struct {
	engine string
	url    string
	db     *sql.DB // direct access, as another session
	store  *store.Store
	deps   *Deps
	cfg    *config.Config
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func forEachEngine(t *testing.T, fn func(t *testing.T, b *bundle)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e, func(t *testing.T) {
			t.Parallel()
			fn(t, setup(t, e))
		})
	}
}

const ordersRows = 20

func setup(t *testing.T, engine string) *bundle {
	t.Helper()
	ctx := context.Background()
	b := &bundle{engine: engine}
	var ddl string
	switch engine {
	case dbx.Postgres:
		b.url = testenv.PostgresURL(t)
		ddl = `CREATE TABLE orders (id BIGINT PRIMARY KEY, customer TEXT NOT NULL, status TEXT NOT NULL, amount NUMERIC(10,2) NOT NULL, note TEXT, updated_at TIMESTAMPTZ NOT NULL)`
	case dbx.MySQL:
		b.url = testenv.MySQLDSN(t)
		ddl = "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(100) NOT NULL, status VARCHAR(20) NOT NULL, amount DECIMAL(10,2) NOT NULL, note TEXT, updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB"
	case dbx.SQLite:
		b.url = filepath.Join(t.TempDir(), "app.db")
		ddl = `CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, status TEXT NOT NULL, amount NUMERIC NOT NULL, note TEXT, updated_at DATETIME NOT NULL)`
	}
	var err error
	b.db, err = dbx.Open(ctx, engine, b.url, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.db.Close() })
	b.exec(t, ddl)
	for i := 1; i <= ordersRows; i++ {
		status := "paid"
		if i%2 == 0 {
			status = "pending"
		}
		b.exec(t, fmt.Sprintf("INSERT INTO orders VALUES (%d, 'cust%d', '%s', %d.50, NULL, '2024-05-01 10:00:00')", i, i%4, status, i))
	}
	b.store, err = store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.store.Close() })
	b.cfg = &config.Config{Services: []config.Service{{
		Name:      "shop",
		Databases: []config.Database{{Name: "main", Engine: engine, URL: config.Secret(b.url)}},
		Fixes: []config.Fix{
			{Name: "cancel-orders", Database: "main", Params: map[string]string{"ids": "[]int"}, MaxRows: 5, Mask: []string{"customer"},
				Select: "SELECT id, customer, status FROM orders WHERE id IN :ids AND status = 'pending' -- :not_a_param",
				Apply:  "UPDATE orders SET status = 'cancelled', note = 'fix: :ids' WHERE id IN :ids AND status = 'pending'"},
			{Name: "by-status", Database: "main", Params: map[string]string{"status": "string"}, MaxRows: 100,
				Select: "SELECT id FROM orders WHERE status = :status", Apply: "UPDATE orders SET note = 'x' WHERE status = :status"},
			{Name: "sloppy", Database: "main", Params: map[string]string{"id": "int", "customer": "string"}, MaxRows: 5,
				Select: "SELECT id FROM orders WHERE id = :id", Apply: "UPDATE orders SET note = 'sloppy' WHERE customer = :customer"},
			{Name: "purge", Database: "main", Params: map[string]string{"before": "timestamp", "id": "int"}, MaxRows: 5,
				Select: "SELECT id FROM orders WHERE id = :id AND updated_at < :before", Apply: "DELETE FROM orders WHERE id = :id AND updated_at < :before"},
		},
	}}}
	b.deps = &Deps{Config: func() *config.Config { return b.cfg }, Store: b.store,
		Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))}
	return b
}

func (b *bundle) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// snapshot is the whole orders table as text, to prove nothing changed.
func (b *bundle) snapshot(t *testing.T) string {
	t.Helper()
	rs, err := queryRows(context.Background(), b.db, b.engine, "SELECT * FROM orders ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for i := range rs.rows {
		sb.WriteString(mustJSON(rs.object(i)))
		sb.WriteByte('\n')
	}
	return sb.String()
}

func (b *bundle) status(t *testing.T, id int) string {
	t.Helper()
	var s string
	if err := b.db.QueryRow(fmt.Sprintf("SELECT status FROM orders WHERE id = %d", id)).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// newAction stores an action row (images reference it) and plans it.
func (b *bundle) newAction(t *testing.T, k action.Kind, params string) (*action.Action, error) {
	t.Helper()
	row, err := b.store.InsertAction(context.Background(), store.ActionRow{Kind: k.Name(), Service: "shop", Params: params, Requester: "alice",
		Reason: "test", State: "executing", PlanDetails: "{}", Requirement: "{}", Result: "{}"})
	if err != nil {
		t.Fatal(err)
	}
	a := &action.Action{ID: row.ID, Kind: k.Name(), Service: "shop", Params: []byte(params)}
	plan, err := k.Plan(context.Background(), a)
	if err != nil {
		return a, err
	}
	a.Plan = plan
	// What the pipeline stores, so that undo can read the plan back.
	row.PlanDetails = mustJSON(plan)
	if _, err := b.store.UpdateAction(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	return a, nil
}

// roundTrip gives the plan the JSON shape it has after the store.
func roundTrip(t *testing.T, a *action.Action) {
	t.Helper()
	if err := remarshal(a.Plan, &a.Plan); err != nil {
		t.Fatal(err)
	}
}
