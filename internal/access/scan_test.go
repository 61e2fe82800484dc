package access_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

// scanBundle is a store plus the audit events and alerts a scan produced.
type scanBundle struct {
	store *store.Store
	mu    sync.Mutex
	// alerts and audits as recorded.
	alerts []notify.Message
	audits []string
}

func (b *scanBundle) Enqueue(_ context.Context, m notify.Message) ([]int64, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.alerts = append(b.alerts, m)
	return []int64{int64(len(b.alerts))}, nil
}

// takeAlerts returns the alerts about principals with prefix since the
// last call (other tests share the database server).
func (b *scanBundle) takeAlerts(prefix string) []notify.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []notify.Message
	for _, m := range b.alerts {
		if strings.HasPrefix(m.Fields["principal"], prefix) || m.Event == access.EventScanError {
			out = append(out, m)
		}
	}
	b.alerts = nil
	return out
}

func (b *scanBundle) deps(t *testing.T) access.ScanDeps {
	return access.ScanDeps{Store: b.store, Notifier: b, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Audit: func(_ context.Context, actor, action, target, outcome string, _ map[string]any) error {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.audits = append(b.audits, fmt.Sprintf("%s %s %s %s", actor, action, target, outcome))
			return nil
		}}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newScanBundle(t *testing.T) *scanBundle {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &scanBundle{store: st}
}

// scanService loads a config with service shop and its database main.
func scanService(t *testing.T, engine, dbURL string, standing []string) *config.Service {
	t.Helper()
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "url")
	if err := os.WriteFile(urlFile, []byte(dbURL), 0o600); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf("services:\n  - name: shop\n    databases:\n      - name: main\n        engine: %s\n        url: \"file:%s\"\n        standing_access: [%s]\n",
		engine, urlFile, strings.Join(standing, ", "))
	cfg, err := config.Parse(filepath.Join(dir, "steward.yaml"), []byte(y), config.LoadOptions{})
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg.Service("shop")
}

func randName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// plantGrant writes the grants row the grants code writes for an issued
// grant.
func plantGrant(t *testing.T, st *store.Store, service, database, role, state string) {
	t.Helper()
	now := store.FormatTime(time.Now())
	_, err := st.DB().Exec(`INSERT INTO grants (service, database, profile, engine, requester, reason, role_name, state, created_at, issued_at, expires_at)
VALUES (?, ?, 'read-write', 'postgres', 'alice', 'INC-42', ?, ?, ?, ?, ?)`, service, database, role, state, now, now, store.FormatTime(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
}

// ours returns the principals and findings whose name starts with prefix.
func ours(r access.ScanReport, prefix string) (map[string]access.Principal, map[string]access.Finding) {
	ps, fs := map[string]access.Principal{}, map[string]access.Finding{}
	for _, p := range r.Principals {
		if strings.HasPrefix(p.Name, prefix) {
			ps[p.Name] = p
		}
	}
	for _, f := range r.Findings {
		if strings.HasPrefix(f.Principal, prefix) {
			fs[f.Principal] = f
		}
	}
	return ps, fs
}

func execAll(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestScanPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testenv.PostgresURL(t)
	u, _ := url.Parse(dbURL)
	dbName := strings.TrimPrefix(u.Path, "/")
	admin, err := dbx.Open(ctx, dbx.Postgres, dbURL, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	px := randName("scan_")
	roles := []string{"super", "upd", "app", "reader", "mid", "inh", "granted", "conn", "owner"}
	t.Cleanup(func() {
		for _, r := range roles {
			_, _ = admin.Exec("DROP OWNED BY " + px + "_" + r)
		}
		for _, r := range slices.Backward(roles) {
			_, _ = admin.Exec("DROP ROLE IF EXISTS " + px + "_" + r)
		}
	})
	connect := func(r string) string { return "GRANT CONNECT ON DATABASE " + dbName + " TO " + px + "_" + r }
	execAll(t, admin,
		// Only who is granted CONNECT reaches this database: the roles
		// other tests create on the shared server stay out of it.
		"REVOKE ALL ON DATABASE "+dbName+" FROM PUBLIC",
		"CREATE TABLE orders (id integer)", "CREATE TABLE customers (id integer)",
		"CREATE ROLE "+px+"_super LOGIN SUPERUSER",
		"CREATE ROLE "+px+"_upd LOGIN", connect("upd"), "GRANT UPDATE ON orders TO "+px+"_upd",
		"CREATE ROLE "+px+"_app LOGIN", connect("app"), "GRANT SELECT, INSERT, UPDATE, DELETE ON orders, customers TO "+px+"_app",
		"CREATE ROLE "+px+"_reader NOLOGIN", "GRANT SELECT ON customers TO "+px+"_reader", connect("reader"),
		"CREATE ROLE "+px+"_mid NOLOGIN", "GRANT "+px+"_reader TO "+px+"_mid",
		"CREATE ROLE "+px+"_inh LOGIN", connect("inh"), "GRANT "+px+"_mid TO "+px+"_inh",
		"CREATE ROLE "+px+"_granted LOGIN VALID UNTIL '2999-01-01'", connect("granted"), "GRANT SELECT, UPDATE ON orders TO "+px+"_granted",
		"CREATE ROLE "+px+"_conn LOGIN", connect("conn"),
		"CREATE ROLE "+px+"_owner LOGIN", connect("owner"), "CREATE SCHEMA "+px+"_s AUTHORIZATION "+px+"_owner",
	)
	b := newScanBundle(t)
	plantGrant(t, b.store, "shop", "main", px+"_granted", access.StateActive)
	// The test's admin (postgres or root) is a superuser too: allow it.
	svc := scanService(t, dbx.Postgres, dbURL, []string{"postgres", "root", px + "_app"})

	reports, err := access.Scan(ctx, b.deps(t), svc, "alice")
	if err != nil || len(reports) != 1 {
		t.Fatalf("scan = %+v, %v", reports, err)
	}
	r := reports[0]
	if r.Status != access.ScanFindings || r.ScanID == 0 || r.Engine != dbx.Postgres {
		t.Fatalf("report = %+v", r)
	}
	ps, fs := ours(r, px)
	want := map[string]string{px + "_super": access.SeverityCritical, px + "_upd": access.SeverityHigh, px + "_inh": access.SeverityMedium, px + "_owner": access.SeverityHigh}
	if len(fs) != len(want) {
		t.Fatalf("findings = %+v, want %v", fs, want)
	}
	for name, sev := range want {
		if fs[name].Severity != sev {
			t.Errorf("finding %s = %+v, want severity %s", name, fs[name], sev)
		}
	}
	classes := map[string]string{px + "_app": access.ClassAllowed, px + "_granted": access.ClassGrant, px + "_conn": access.ClassConnectOnly,
		px + "_super": access.ClassFinding, px + "_inh": access.ClassFinding}
	for name, class := range classes {
		if ps[name].Class != class {
			t.Errorf("%s: class %q, want %q (%+v)", name, ps[name].Class, class, ps[name])
		}
	}
	for _, nologin := range []string{px + "_reader", px + "_mid"} {
		if _, ok := ps[nologin]; ok {
			t.Errorf("NOLOGIN role %s reported as a login", nologin)
		}
	}
	if len(ps) != 7 {
		t.Errorf("principals = %d, want 7: %v", len(ps), ps)
	}
	inh := ps[px+"_inh"]
	if !slices.Equal(inh.MemberOf, []string{px + "_mid", px + "_reader"}) || !slices.ContainsFunc(inh.Privileges, func(p access.Privilege) bool {
		return p.On == "table public.customers" && p.Via == px+"_reader" && slices.Equal(p.Privileges, []string{"SELECT"})
	}) || !strings.Contains(strings.Join(inh.Reasons, ";"), "SELECT on table public.customers (via "+px+"_reader)") {
		t.Errorf("inherited = %+v", inh)
	}
	if sup := ps[px+"_super"]; !slices.Contains(sup.Attributes, "SUPERUSER") {
		t.Errorf("superuser = %+v", sup)
	}
	if g := ps[px+"_granted"]; g.ValidUntil == nil || g.ValidUntil.Year() != 2999 || g.PasswordExpired || g.Severity != access.SeverityHigh {
		t.Errorf("granted = %+v", g)
	}
	if o := ps[px+"_owner"]; !slices.Contains(o.Owns, "schema "+px+"_s") {
		t.Errorf("owner = %+v", o)
	}
	alerts := b.takeAlerts(px)
	if len(alerts) != 4 {
		t.Fatalf("alerts = %+v, want one per finding", alerts)
	}
	for _, m := range alerts {
		p := m.Fields["principal"]
		if m.Event != access.EventFinding || m.DedupKey != access.FindingKey("shop", "main", p) || (p == px+"_super") != (m.Severity == notify.SeverityCritical) {
			t.Errorf("alert = %+v", m)
		}
	}
	if len(b.audits) != 1 || b.audits[0] != "alice access.scan shop/main findings" {
		t.Errorf("audits = %v", b.audits)
	}

	// Nothing changed: no new alert.
	if _, err := access.Scan(ctx, b.deps(t), svc, "alice"); err != nil {
		t.Fatal(err)
	}
	if a := b.takeAlerts(px); len(a) != 0 {
		t.Fatalf("repeat scan alerted again: %+v", a)
	}
	// The UPDATE is revoked and the superuser demoted: both resolve.
	execAll(t, admin, "REVOKE UPDATE ON orders FROM "+px+"_upd", "ALTER ROLE "+px+"_super NOSUPERUSER")
	reports, err = access.Scan(ctx, b.deps(t), svc, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, fs := ours(reports[0], px); len(fs) != 2 || !slices.Contains(reports[0].Resolved, px+"_upd") {
		t.Fatalf("after revoke: findings %+v resolved %v", fs, reports[0].Resolved)
	}
	alerts = b.takeAlerts(px)
	if len(alerts) != 2 {
		t.Fatalf("resolve alerts = %+v", alerts)
	}
	for _, m := range alerts {
		if !m.Resolve || m.Event != access.EventFindingResolved || (m.Fields["principal"] != px+"_upd" && m.Fields["principal"] != px+"_super") {
			t.Errorf("resolve alert = %+v", m)
		}
	}
	rows, err := b.store.ListAccessScans(ctx, store.AccessScanFilter{Service: "shop", Database: "main"})
	if err != nil || len(rows) != 3 || rows[0].Findings != len(reports[0].Findings) || !strings.Contains(rows[0].Report, px+"_inh") {
		t.Fatalf("stored scans = %+v, %v", rows, err)
	}
}

func TestScanMariaDB(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.MySQLDSN(t)
	admin, err := dbx.Open(ctx, dbx.MySQL, dsn, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var dbName string
	if err := admin.QueryRow("SELECT DATABASE()").Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	px := randName("sc")
	users := []string{"all", "app", "gopt", "locked", "viarole", "other"}
	t.Cleanup(func() {
		for _, u := range users {
			_, _ = admin.Exec("DROP USER IF EXISTS '" + px + "_" + u + "'@'%'")
		}
		_, _ = admin.Exec("DROP ROLE IF EXISTS " + px + "_writer")
	})
	user := func(u string) string { return "'" + px + "_" + u + "'@'%'" }
	execAll(t, admin,
		"CREATE TABLE orders (id integer)",
		"CREATE USER "+user("all")+" IDENTIFIED BY 'x'", "GRANT ALL PRIVILEGES ON *.* TO "+user("all"),
		"CREATE USER "+user("app")+" IDENTIFIED BY 'x'", "GRANT SELECT ON `"+dbName+"`.* TO "+user("app"),
		"CREATE USER "+user("gopt")+" IDENTIFIED BY 'x'", "GRANT SELECT ON `"+dbName+"`.`orders` TO "+user("gopt")+" WITH GRANT OPTION",
		"CREATE USER "+user("locked")+" IDENTIFIED BY 'x' ACCOUNT LOCK", "GRANT ALL ON `"+dbName+"`.* TO "+user("locked"),
		"CREATE ROLE "+px+"_writer", "GRANT INSERT, UPDATE ON `"+dbName+"`.* TO "+px+"_writer",
		"CREATE USER "+user("viarole")+" IDENTIFIED BY 'x'", "GRANT "+px+"_writer TO "+user("viarole"),
		"CREATE USER "+user("other")+" IDENTIFIED BY 'x'", "GRANT SELECT ON `"+dbName+"_elsewhere`.* TO "+user("other"),
	)
	b := newScanBundle(t)
	svc := scanService(t, dbx.MySQL, dsn, []string{"root", "mysql", px + "_app"})
	reports, err := access.Scan(ctx, b.deps(t), svc, "alice")
	if err != nil || len(reports) != 1 {
		t.Fatalf("scan = %+v, %v", reports, err)
	}
	r := reports[0]
	if r.Status != access.ScanFindings {
		t.Fatalf("report = %+v", r)
	}
	ps, fs := ours(r, px)
	want := map[string]string{px + "_all@%": access.SeverityCritical, px + "_gopt@%": access.SeverityHigh, px + "_viarole@%": access.SeverityHigh}
	if len(fs) != len(want) {
		t.Fatalf("findings = %+v, want %v", fs, want)
	}
	for name, sev := range want {
		if fs[name].Severity != sev {
			t.Errorf("finding %s = %+v, want %s", name, fs[name], sev)
		}
	}
	if p := ps[px+"_app@%"]; p.Class != access.ClassAllowed || p.Severity != access.SeverityMedium || p.User != px+"_app" || p.Host != "%" {
		t.Errorf("allow-listed = %+v", p)
	}
	for _, absent := range []string{px + "_locked@%", px + "_other@%"} {
		if _, ok := ps[absent]; ok {
			t.Errorf("%s reported: %+v", absent, ps[absent])
		}
	}
	if p := ps[px+"_all@%"]; !slices.Contains(p.Attributes, "ALL PRIVILEGES ON *.*") {
		t.Errorf("all = %+v", p)
	}
	if p := ps[px+"_gopt@%"]; !strings.Contains(strings.Join(p.Reasons, ";"), "GRANT OPTION ON "+dbName+".orders") {
		t.Errorf("grant option = %+v", p)
	}
	if p := ps[px+"_viarole@%"]; !slices.Equal(p.MemberOf, []string{px + "_writer"}) || len(p.Privileges) != 1 || p.Privileges[0].Via != px+"_writer" {
		t.Errorf("via role = %+v", p)
	}
	if a := b.takeAlerts(px); len(a) != 3 {
		t.Fatalf("alerts = %+v", a)
	}
	// A live grant of the same user is not a finding; dropping a user
	// resolves its finding.
	plantGrant(t, b.store, "shop", "main", px+"_gopt", access.StateRevoking)
	execAll(t, admin, "DROP USER "+user("all"))
	reports, err = access.Scan(ctx, b.deps(t), svc, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ps, fs = ours(reports[0], px)
	if len(fs) != 1 || ps[px+"_gopt@%"].Class != access.ClassGrant {
		t.Fatalf("second scan findings = %+v, gopt %+v", fs, ps[px+"_gopt@%"])
	}
	a := b.takeAlerts(px)
	if len(a) != 2 || !a[0].Resolve || !a[1].Resolve {
		t.Fatalf("resolve alerts = %+v", a)
	}
}

func TestScanSQLiteAndUnreachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newScanBundle(t)
	svc := scanService(t, dbx.SQLite, filepath.Join(t.TempDir(), "app.db"), nil)
	reports, err := access.Scan(ctx, b.deps(t), svc, "alice")
	if err != nil || len(reports) != 1 || reports[0].Status != access.ScanSkipped || !strings.Contains(reports[0].Note, "no logins") {
		t.Fatalf("sqlite = %+v, %v", reports, err)
	}
	if len(b.audits) != 1 || b.audits[0] != "alice access.scan shop/main ok" {
		t.Fatalf("audits = %v", b.audits)
	}
	// A database that refuses connections is an error, alerted once and
	// resolved when it scans again.
	down := scanService(t, dbx.Postgres, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", nil)
	for range 2 {
		reports, err = access.Scan(ctx, b.deps(t), down, "alice")
		if err != nil || reports[0].Status != access.ScanError || reports[0].Error == "" || strings.Contains(reports[0].Error, "nobody@") {
			t.Fatalf("unreachable = %+v, %v", reports, err)
		}
	}
	a := b.takeAlerts("")
	if len(a) != 1 || a[0].Event != access.EventScanError || a[0].Resolve {
		t.Fatalf("error alerts = %+v", a)
	}
	if _, err := access.Scan(ctx, b.deps(t), svc, "alice"); err != nil {
		t.Fatal(err)
	}
	a = b.takeAlerts("")
	if len(a) != 1 || a[0].Event != access.EventScanError || !a[0].Resolve {
		t.Fatalf("error resolved alerts = %+v", a)
	}
}

func TestScanPeriodic(t *testing.T) {
	t.Parallel()
	y := "services:\n  - name: shop\n    databases:\n      - {name: main, engine: sqlite, url: /tmp/x.db}\n  - name: empty\n"
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "steward.yaml"), []byte(y), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps := access.ScanPeriodic(cfg)
	if len(ps) != 1 || ps[0].Name != "access.scan:shop" || ps[0].Cron != "@every 6h0m0s" || ps[0].Args.(access.ScanArgs).Service != "shop" {
		t.Fatalf("periodic = %+v", ps)
	}
}
