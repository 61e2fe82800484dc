package dbx

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// Engine names.
const (
	Postgres = "postgres"
	MySQL    = "mysql"
	SQLite   = "sqlite"
)

// DriverDSN turns a database URL from the config into the database/sql
// driver name and DSN: postgres:// URLs for pgx; mysql://user:pass@host:port/db
// or a go-sql-driver DSN (user:pass@tcp(host:port)/db) for mysql; a path or
// sqlite:///path for sqlite (readOnly opens it read-only).
func DriverDSN(engine, raw string, readOnly bool) (driver, dsn string, err error) {
	switch engine {
	case Postgres:
		if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
			return "", "", fmt.Errorf("postgres URL must start with postgres://")
		}
		return "pgx", raw, nil
	case MySQL:
		dsn := raw
		if strings.HasPrefix(raw, "mysql://") {
			u, err := url.Parse(raw)
			if err != nil {
				return "", "", fmt.Errorf("mysql URL: %w", err)
			}
			host := u.Host
			if !strings.Contains(host, ":") {
				host += ":3306"
			}
			dsn = fmt.Sprintf("%s@tcp(%s)%s", u.User.String(), host, u.Path)
			if u.RawQuery != "" {
				dsn += "?" + u.RawQuery
			}
		}
		if !strings.Contains(dsn, "parseTime=") {
			if strings.Contains(dsn, "?") {
				dsn += "&parseTime=true"
			} else {
				dsn += "?parseTime=true"
			}
		}
		return "mysql", dsn, nil
	case SQLite:
		path := strings.TrimPrefix(raw, "sqlite://")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if path == "" {
			return "", "", fmt.Errorf("sqlite URL has no path")
		}
		esc := strings.NewReplacer("%", "%25", "#", "%23", "?", "%3f").Replace(path)
		dsn := "file:" + esc + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
		if readOnly {
			dsn += "&mode=ro"
		}
		return "sqlite", dsn, nil
	default:
		return "", "", fmt.Errorf("%w %q", ErrUnknownEngine, engine)
	}
}

// Open opens and pings the database at raw with the engine's driver. The
// error never contains the URL (it may hold a password).
func Open(ctx context.Context, engine, raw string, readOnly bool) (*sql.DB, error) {
	driver, dsn, err := DriverDSN(engine, raw, readOnly)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", engine, err)
	}
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", engine, err)
	}
	return db, nil
}

// Placeholder returns the n-th (1-based) bind placeholder of the engine.
func Placeholder(engine string, n int) string {
	if engine == Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// QuoteIdent quotes an identifier (table or column, optionally
// schema-qualified with a dot) for the engine.
func QuoteIdent(engine, ident string) string {
	q := `"`
	if engine == MySQL {
		q = "`"
	}
	parts := strings.Split(ident, ".")
	for i, p := range parts {
		parts[i] = q + strings.ReplaceAll(p, q, q+q) + q
	}
	return strings.Join(parts, ".")
}
