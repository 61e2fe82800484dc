package access_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

const configTmpl = `
roles:
  - {name: oncall, permissions: [operate, break_glass]}
users:
  - {name: alice, roles: [operator]}
  - {name: bob, roles: [approver]}
  - {name: carol, roles: [approver]}
  - {name: dave, roles: [viewer]}
  - {name: frank, roles: [oncall]}
services:
  - name: shop
    databases:
      - {name: main, engine: ENGINE, url: "URL"}
    access:
      - {database: main, profile: read-only, grants: [READ], max: 4h, break_glass: true, break_glass_max: 1h, connection_limit: 3}
      - {database: main, profile: read-write, grants: [WRITE], max: 2h}
      - {database: main, profile: broken, grants: [BROKEN], max: 2h}
policies:
  break_glass_reviewers: 2
  approvals:
    - name: access
      match: {action: [access.grant]}
      require: [{approvals: 2, from: ["role:approver"]}]
`

type captured struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (c *captured) Enqueue(_ context.Context, m notify.Message) ([]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return []int64{int64(len(c.msgs))}, nil
}

func (c *captured) find(event string) []notify.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []notify.Message
	for _, m := range c.msgs {
		if m.Event == event {
			out = append(out, m)
		}
	}
	return out
}

type auditEvent struct {
	actor, action, target, outcome string
	details                        map[string]any
}

// bundle is a pipeline with the access.grant kind on a real database.
type bundle struct {
	engine string
	appURL string // the application database, as Steward's config names it
	grants []string
	admin  *sql.DB
	cfg    atomic.Pointer[config.Config]
	good   *config.Config
	s      *store.Store
	p      *action.Pipeline
	d      *access.Deps
	notes  *captured
	users  map[string]auth.Principal
	mu     sync.Mutex
	audit  []auditEvent
}

func (b *bundle) events(action string) []auditEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []auditEvent
	for _, e := range b.audit {
		if e.action == action {
			out = append(out, e)
		}
	}
	return out
}

func (b *bundle) allAudit() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprint(b.audit)
}

func setupPostgres(t *testing.T) *bundle {
	t.Helper()
	u := testenv.PostgresURL(t)
	return setup(t, dbx.Postgres, u, "SELECT ON ALL TABLES IN SCHEMA public", "SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public",
		"SELECT ON TABLE public.no_such_table")
}

func setupMySQL(t *testing.T) *bundle {
	t.Helper()
	dsn := testenv.MySQLDSN(t)
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u := (&url.URL{Scheme: "mysql", User: url.User(c.User), Host: c.Addr, Path: "/" + c.DBName}).String()
	return setup(t, dbx.MySQL, u, "SELECT ON "+c.DBName+".*", "SELECT, INSERT, UPDATE, DELETE ON "+c.DBName+".*", "SELECT ON "+c.DBName+".no_such_table")
}

func setup(t *testing.T, engine, appURL, read, write, broken string) *bundle {
	t.Helper()
	ctx := context.Background()
	b := &bundle{engine: engine, appURL: appURL, notes: &captured{}, users: map[string]auth.Principal{}, grants: []string{read, write, broken}}
	b.good = b.parseConfig(t, appURL, read, write, broken)
	b.cfg.Store(b.good)
	var err error
	b.admin, err = dbx.Open(ctx, engine, appURL, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.admin.Close() })
	for _, q := range []string{
		"CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(20))",
		"INSERT INTO orders VALUES (1, 'pending'), (2, 'paid')",
	} {
		if _, err := b.admin.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	b.s, err = store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.s.Close() })
	auditFn := func(_ context.Context, actor, act, target, outcome string, details map[string]any) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.audit = append(b.audit, auditEvent{actor, act, target, outcome, details})
		return nil
	}
	custom := map[string][]auth.Permission{"oncall": {auth.PermOperate, auth.PermBreakGlass}}
	m := auth.NewManager(b.s, custom, auditFn)
	for _, u := range b.good.Users {
		su, err := b.s.CreateUser(ctx, store.User{Name: u.Name, Roles: u.Roles})
		if err != nil {
			t.Fatal(err)
		}
		b.users[u.Name] = m.Principal(su, 0, false)
	}
	b.d = &access.Deps{Config: func() *config.Config { return b.cfg.Load() }, Store: b.s, Audit: auditFn, Notifier: b.notes,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil)), SessionWait: 20 * time.Second, Lease: time.Minute}
	kinds := action.NewRegistry()
	kinds.Register(access.NewGrantKind(b.d))
	b.p, err = action.New(action.Options{Store: b.s, Kinds: kinds, Config: b.good, Audit: auditFn, Notifier: b.notes})
	if err != nil {
		t.Fatal(err)
	}
	// Roles are cluster-wide on PostgreSQL: drop whatever a failed test left.
	t.Cleanup(func() {
		gs, _ := b.s.ListGrants(context.Background(), store.GrantFilter{Limit: 1000})
		for _, g := range gs {
			if engine == dbx.Postgres {
				_, _ = b.admin.Exec(`DROP OWNED BY "` + g.RoleName + `"`)
				_, _ = b.admin.Exec(`DROP ROLE IF EXISTS "` + g.RoleName + `"`)
			} else {
				_, _ = b.admin.Exec("DROP USER IF EXISTS '" + g.RoleName + "'@'%'")
			}
		}
	})
	return b
}

func (b *bundle) parseConfig(t *testing.T, appURL, read, write, broken string) *config.Config {
	t.Helper()
	y := strings.NewReplacer("ENGINE", b.engine, "URL", appURL, "[READ]", fmt.Sprintf("[%q]", read), "[WRITE]", fmt.Sprintf("[%q]", write),
		"[BROKEN]", fmt.Sprintf("[%q]", broken)).Replace(configTmpl)
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "steward.yaml"), []byte(y), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// unreachable swaps in a config whose database URL points at a closed port.
func (b *bundle) unreachable(t *testing.T) {
	t.Helper()
	bad := "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"
	if b.engine == dbx.MySQL {
		bad = "mysql://root@127.0.0.1:1/x?timeout=2s"
	}
	b.cfg.Store(b.parseConfig(t, bad, b.grants[0], b.grants[1], b.grants[2]))
}

func (b *bundle) reachable() { b.cfg.Store(b.good) }

// request creates a grant action as user and has bob and carol approve it.
func (b *bundle) requestApproved(t *testing.T, user, profile, dur string) int64 {
	t.Helper()
	ctx := context.Background()
	a, err := b.p.Create(ctx, b.users[user], access.Request("shop", "main", profile, dur, "INC-42: look at stuck orders", "", false))
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	for _, who := range []string{"bob", "carol"} {
		if _, _, err := b.p.Approve(ctx, b.users[who], a.ID, action.Vote{Comment: "ok"}); err != nil {
			t.Fatalf("approve by %s: %v", who, err)
		}
	}
	return a.ID
}

// grant requests, approves and issues a grant, returning the credential.
func (b *bundle) grant(t *testing.T, user, profile, dur string) (store.GrantRow, access.Credential) {
	t.Helper()
	id := b.requestApproved(t, user, profile, dur)
	a, cred, err := access.Issue(context.Background(), b.p, b.users[user], id)
	if err != nil || cred == nil || a.State != action.Succeeded {
		t.Fatalf("issue: %v (cred %v)", err, cred != nil)
	}
	g, err := b.s.GetGrant(context.Background(), cred.GrantID)
	if err != nil {
		t.Fatal(err)
	}
	return g, *cred
}

// connect opens a session with the handed-out connection string.
func (b *bundle) connect(ctx context.Context, cred access.Credential) (*sql.Conn, *sql.DB, error) {
	driver, dsn, err := dbx.DriverDSN(b.engine, cred.DSN, false)
	if err != nil {
		return nil, nil, err
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, nil, err
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return conn, db, nil
}

// roleExists checks the database catalog.
func (b *bundle) roleExists(t *testing.T, role string) (exists, canLogin bool) {
	t.Helper()
	if b.engine == dbx.Postgres {
		err := b.admin.QueryRow("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role).Scan(&canLogin)
		if err == sql.ErrNoRows {
			return false, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true, canLogin
	}
	var locked sql.NullString
	err := b.admin.QueryRow("SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv WHERE User = ?", role).Scan(&locked)
	if err == sql.ErrNoRows {
		return false, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true, locked.String != "true" && locked.String != "1"
}

// tWriter routes logs to the test's log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func fmtAny(v any) string { return fmt.Sprintf("%+v", v) }
