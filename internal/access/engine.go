package access

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
)

// target is where a grant's role lives: the admin connection Steward uses
// and the application URL the handed-out credentials are built on.
type target struct {
	service, database string
	engine            string
	adminURL          string // resolved; may hold a password: never log it
	appURL            string // resolved; ditto
	reassignTo        string
}

func (d *Deps) target(service, database string) (*target, error) {
	svc := d.Config().Service(service)
	if svc == nil {
		return nil, fmt.Errorf("service %q is not configured", service)
	}
	db := svc.Database(database)
	if db == nil {
		return nil, fmt.Errorf("service %s has no database %q", service, database)
	}
	return newTarget(service, db)
}

func newTarget(service string, db *config.Database) (*target, error) {
	app, err := db.URL.Resolve()
	if err != nil {
		return nil, fmt.Errorf("database %s/%s url: %w", service, db.Name, err)
	}
	admin := app
	if db.AdminURL != "" {
		if admin, err = db.AdminURL.Resolve(); err != nil {
			return nil, fmt.Errorf("database %s/%s admin_url: %w", service, db.Name, err)
		}
	}
	return &target{service: service, database: db.Name, engine: db.Engine, adminURL: admin, appURL: app, reassignTo: db.ReassignTo}, nil
}

func (t *target) key() string { return t.service + "/" + t.database }

// openAdmin opens the admin pool. Its errors never contain the URL.
func (t *target) openAdmin(ctx context.Context, conns int) (*sql.DB, error) {
	db, err := dbx.Open(ctx, t.engine, t.adminURL, false)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", t.key(), err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
}

// Credential is what the requester receives, once: it is never stored,
// logged, audited or part of an action result.
type Credential struct {
	GrantID   int64     `json:"grant_id"`
	Role      string    `json:"role"`
	Password  string    `json:"password"`
	DSN       string    `json:"dsn"`
	Host      string    `json:"host"`
	Port      string    `json:"port"`
	Database  string    `json:"database"`
	Engine    string    `json:"engine"`
	ExpiresAt time.Time `json:"expires_at"`
}

// loginParams returns host, port and database name of the application URL.
func (t *target) loginParams() (host, port, dbname string, err error) {
	switch t.engine {
	case dbx.Postgres:
		u, err := url.Parse(t.appURL)
		if err != nil {
			return "", "", "", fmt.Errorf("database %s url: not a URL", t.key())
		}
		host, port = u.Hostname(), u.Port()
		if port == "" {
			port = "5432"
		}
		return host, port, strings.TrimPrefix(u.Path, "/"), nil
	default:
		cfg, err := t.mysqlConfig(t.appURL)
		if err != nil {
			return "", "", "", err
		}
		h, p, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return cfg.Addr, "3306", cfg.DBName, nil
		}
		return h, p, cfg.DBName, nil
	}
}

func (t *target) mysqlConfig(raw string) (*mysql.Config, error) {
	_, dsn, err := dbx.DriverDSN(dbx.MySQL, raw, false)
	if err != nil {
		return nil, fmt.Errorf("database %s url: %w", t.key(), err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("database %s url: not a valid MySQL DSN", t.key())
	}
	return cfg, nil
}

// credential builds the connection string of role on the application URL.
func (t *target) credential(role, password string) (Credential, error) {
	host, port, dbname, err := t.loginParams()
	if err != nil {
		return Credential{}, err
	}
	c := Credential{Role: role, Password: password, Host: host, Port: port, Database: dbname, Engine: t.engine}
	switch t.engine {
	case dbx.Postgres:
		u, _ := url.Parse(t.appURL)
		u.User = url.UserPassword(role, password)
		c.DSN = u.String()
	default:
		u := url.URL{Scheme: "mysql", User: url.UserPassword(role, password), Host: net.JoinHostPort(host, port), Path: "/" + dbname}
		c.DSN = u.String()
	}
	return c, nil
}

// roleSpec is what to create.
type roleSpec struct {
	role, password string
	expires        time.Time
	connLimit      int
	network        string // MySQL host pattern
	privs          privileges
	comment        string
}

// engineOps are the engine-specific statements of a grant's life. Each
// revocation step is idempotent: run twice, or after a crash, it does the
// same as once.
type engineOps interface {
	// create makes the role with its privileges, all or nothing: on any
	// error it leaves no role behind, or reports (leftover=true) that it
	// could not make sure of that.
	create(ctx context.Context, admin *sql.DB, t *target, s roleSpec) (leftover bool, err error)
	block(ctx context.Context, admin *sql.DB, role string) (string, error)
	terminate(ctx context.Context, admin *sql.DB, role string) (int, error)
	sessions(ctx context.Context, admin *sql.DB, role string) (int, error)
	drop(ctx context.Context, admin *sql.DB, t *target, role string) (string, error)
	exists(ctx context.Context, admin *sql.DB, role string) (bool, error)
	// login tries to connect as role; refused reports an authentication
	// refusal by the server (the proof), err any other failure.
	login(ctx context.Context, t *target, role, password string) (refused bool, detail string, err error)
}

func opsFor(engine string) (engineOps, error) {
	switch engine {
	case dbx.Postgres:
		return postgresOps{}, nil
	case dbx.MySQL:
		return mysqlOps{}, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, engine)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// --- PostgreSQL ---

type postgresOps struct{}

func pgIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func (postgresOps) create(ctx context.Context, admin *sql.DB, t *target, s roleSpec) (bool, error) {
	_, _, dbname, err := t.loginParams()
	if err != nil {
		return false, err
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	// One transaction: the role and its privileges appear together or not at
	// all. The server receives only the SCRAM verifier, not the password.
	tx, err := admin.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck
	stmts := []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN NOINHERIT PASSWORD %s VALID UNTIL %s CONNECTION LIMIT %d",
			pgIdent(s.role), quoteLiteral(scramVerifier(s.password, salt, 4096)), quoteLiteral(s.expires.UTC().Format("2006-01-02 15:04:05.000000+00")), s.connLimit),
		fmt.Sprintf("COMMENT ON ROLE %s IS %s", pgIdent(s.role), quoteLiteral(s.comment)),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", pgIdent(dbname), pgIdent(s.role)),
	}
	for _, sc := range s.privs.Schemas {
		stmts = append(stmts, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", pgIdent(sc), pgIdent(s.role)))
	}
	for _, g := range s.privs.Statements {
		stmts = append(stmts, fmt.Sprintf("GRANT %s TO %s", g, pgIdent(s.role)))
	}
	for i, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return false, fmt.Errorf("%s: %w", describeStmt(stmts[i]), err)
		}
	}
	if err := tx.Commit(); err != nil {
		// A commit whose answer was lost may have happened: the caller must
		// make sure the role is gone.
		return true, fmt.Errorf("commit: %w", err)
	}
	return false, nil
}

// describeStmt names a statement without its password.
func describeStmt(q string) string {
	if i := strings.Index(q, " PASSWORD "); i > 0 {
		return q[:i] + " …"
	}
	if i := strings.Index(q, " IDENTIFIED "); i > 0 {
		return q[:i] + " …"
	}
	return q
}

func (postgresOps) block(ctx context.Context, admin *sql.DB, role string) (string, error) {
	ok, err := postgresOps{}.exists(ctx, admin, role)
	if err != nil || !ok {
		return "role already gone", err
	}
	if _, err := admin.ExecContext(ctx, "ALTER ROLE "+pgIdent(role)+" NOLOGIN"); err != nil {
		return "", fmt.Errorf("ALTER ROLE %s NOLOGIN: %w", role, err)
	}
	return "ALTER ROLE " + role + " NOLOGIN", nil
}

func (postgresOps) terminate(ctx context.Context, admin *sql.DB, role string) (int, error) {
	var n int
	err := admin.QueryRowContext(ctx, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", role).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pg_terminate_backend: %w", err)
	}
	return n, nil
}

func (postgresOps) sessions(ctx context.Context, admin *sql.DB, role string) (int, error) {
	var n int
	if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
		return 0, fmt.Errorf("pg_stat_activity: %w", err)
	}
	return n, nil
}

func (postgresOps) drop(ctx context.Context, admin *sql.DB, t *target, role string) (string, error) {
	ok, err := postgresOps{}.exists(ctx, admin, role)
	if err != nil || !ok {
		return "role already gone", err
	}
	to := "CURRENT_USER"
	if t.reassignTo != "" {
		to = pgIdent(t.reassignTo)
	}
	tx, err := admin.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck
	stmts := []string{"REASSIGN OWNED BY " + pgIdent(role) + " TO " + to, "DROP OWNED BY " + pgIdent(role), "DROP ROLE " + pgIdent(role)}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("%s: %w", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	return strings.Join(stmts, "; "), nil
}

func (postgresOps) exists(ctx context.Context, admin *sql.DB, role string) (bool, error) {
	var n int
	if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n); err != nil {
		return false, fmt.Errorf("pg_roles: %w", err)
	}
	return n > 0, nil
}

func (postgresOps) login(ctx context.Context, t *target, role, password string) (bool, string, error) {
	u, err := url.Parse(t.appURL)
	if err != nil {
		return false, "", fmt.Errorf("database %s url: not a URL", t.key())
	}
	u.User = url.UserPassword(role, password)
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return false, "", fmt.Errorf("database %s url: %w", t.key(), errors.New("cannot parse"))
	}
	cfg.ConnectTimeout = 10 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		_ = conn.Close(ctx)
		return false, "login succeeded", nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "28000" || pe.Code == "28P01") {
		return true, fmt.Sprintf("refused by the server: SQLSTATE %s: %s", pe.Code, pe.Message), nil
	}
	return false, "", fmt.Errorf("login attempt as %s: %w", role, err)
}

// --- MySQL / MariaDB ---

type mysqlOps struct{}

func mysqlAccount(user, host string) string { return quoteLiteral(user) + "@" + quoteLiteral(host) }

func (mysqlOps) create(ctx context.Context, admin *sql.DB, t *target, s roleSpec) (bool, error) {
	host := s.network
	if host == "" {
		host = "%"
	}
	var version string
	if err := admin.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return false, fmt.Errorf("server version: %w", err)
	}
	// MariaDB takes the mysql_native_password hash, so the password never
	// crosses the wire; MySQL hashes it server-side (and keeps it out of its
	// logs).
	ident := "IDENTIFIED BY " + quoteLiteral(s.password)
	if strings.Contains(strings.ToLower(version), "mariadb") {
		ident = "IDENTIFIED BY PASSWORD " + quoteLiteral(mysqlNativeHash(s.password))
	}
	days := int(time.Until(s.expires).Hours()/24) + 1
	acct := mysqlAccount(s.role, host)
	// DDL is not transactional here: what is created is dropped on failure.
	stmts := []string{fmt.Sprintf("CREATE USER %s %s WITH MAX_USER_CONNECTIONS %d PASSWORD EXPIRE INTERVAL %d DAY", acct, ident, s.connLimit, days)}
	for _, g := range s.privs.Statements {
		stmts = append(stmts, fmt.Sprintf("GRANT %s TO %s", g, acct))
	}
	for i, q := range stmts {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			err = fmt.Errorf("%s: %w", describeStmt(stmts[i]), err)
			if i == 0 && !isLostAnswer(err) {
				return false, err
			}
			// Drop what exists, with a fresh context: ctx may be what ended.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			if _, derr := admin.ExecContext(dctx, "DROP USER IF EXISTS "+acct); derr != nil {
				return true, errors.Join(err, fmt.Errorf("drop the half-created user: %w", derr))
			}
			return false, err
		}
	}
	return false, nil
}

// isLostAnswer reports an error after which a statement may have run.
func isLostAnswer(err error) bool {
	var me *mysql.MySQLError
	return !errors.As(err, &me)
}

func (mysqlOps) hosts(ctx context.Context, admin *sql.DB, user string) ([]string, error) {
	rows, err := admin.QueryContext(ctx, "SELECT host FROM mysql.user WHERE user = ?", user)
	if err != nil {
		return nil, fmt.Errorf("mysql.user: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func (o mysqlOps) block(ctx context.Context, admin *sql.DB, role string) (string, error) {
	hosts, err := o.hosts(ctx, admin, role)
	if err != nil || len(hosts) == 0 {
		return "user already gone", err
	}
	var done []string
	for _, h := range hosts {
		q := "ALTER USER " + mysqlAccount(role, h) + " ACCOUNT LOCK"
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("%s: %w", q, err)
		}
		done = append(done, q)
	}
	return strings.Join(done, "; "), nil
}

func (mysqlOps) ids(ctx context.Context, admin *sql.DB, role string) ([]int64, error) {
	rows, err := admin.QueryContext(ctx, "SELECT id FROM information_schema.processlist WHERE user = ?", role)
	if err != nil {
		return nil, fmt.Errorf("processlist: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func (o mysqlOps) terminate(ctx context.Context, admin *sql.DB, role string) (int, error) {
	ids, err := o.ids(ctx, admin, role)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		_, err := admin.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10))
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1094 { // unknown thread: already gone
			continue
		}
		if err != nil {
			return n, fmt.Errorf("KILL CONNECTION %d: %w", id, err)
		}
		n++
	}
	return n, nil
}

func (o mysqlOps) sessions(ctx context.Context, admin *sql.DB, role string) (int, error) {
	ids, err := o.ids(ctx, admin, role)
	return len(ids), err
}

func (o mysqlOps) drop(ctx context.Context, admin *sql.DB, _ *target, role string) (string, error) {
	hosts, err := o.hosts(ctx, admin, role)
	if err != nil || len(hosts) == 0 {
		return "user already gone", err
	}
	var done []string
	for _, h := range hosts {
		q := "DROP USER IF EXISTS " + mysqlAccount(role, h)
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("%s: %w", q, err)
		}
		done = append(done, q)
	}
	return strings.Join(done, "; "), nil
}

func (o mysqlOps) exists(ctx context.Context, admin *sql.DB, role string) (bool, error) {
	hosts, err := o.hosts(ctx, admin, role)
	return len(hosts) > 0, err
}

func (mysqlOps) login(ctx context.Context, t *target, role, password string) (bool, string, error) {
	cfg, err := t.mysqlConfig(t.appURL)
	if err != nil {
		return false, "", err
	}
	cfg.User, cfg.Passwd = role, password
	cfg.Timeout = 10 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return false, "", err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	err = db.PingContext(ctx)
	if err == nil {
		return false, "login succeeded", nil
	}
	var me *mysql.MySQLError
	// 1045 and 1698 access denied, 4151 account locked (MariaDB), 3118 (MySQL).
	if errors.As(err, &me) && (me.Number == 1045 || me.Number == 1698 || me.Number == 4151 || me.Number == 3118) {
		return true, fmt.Sprintf("refused by the server: error %d: %s", me.Number, me.Message), nil
	}
	return false, "", fmt.Errorf("login attempt as %s: %w", role, err)
}
