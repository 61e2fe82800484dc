package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // MariaDB driver for the helper
	"github.com/jackc/pgx/v5"
)

// InCI reports whether the tests run under CI, where skips are failures.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Skip skips the test with the reason, or fails it under CI.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("missing component under CI=true: %s", msg)
	}
	t.Skip(msg)
}

var (
	pgOnce sync.Once
	pgBase string
	pgErr  error
)

// PostgresURL returns the URL of a new, empty PostgreSQL database that is
// dropped when the test ends. It uses STEWARD_TEST_POSTGRES (a URL to a server
// where the user may create databases) when set, then 127.0.0.1:5432, and
// otherwise starts a throwaway cluster with initdb on a free port.
func PostgresURL(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() { pgBase, pgErr = findPostgres() })
	if pgErr != nil {
		Skip(t, "postgres: %v", pgErr)
	}
	name := "steward_test_" + randHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgBase)
	if err != nil {
		t.Fatalf("postgres: connect %s: %v", redact(pgBase), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("postgres: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pgBase)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, _ := url.Parse(pgBase)
	u.Path = "/" + name
	return u.String()
}

func findPostgres() (string, error) {
	if v := os.Getenv("STEWARD_TEST_POSTGRES"); v != "" {
		return v, ping(v)
	}
	for _, cand := range []string{
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"postgres://root@127.0.0.1:5432/postgres?sslmode=disable",
	} {
		if ping(cand) == nil {
			return cand, nil
		}
	}
	return startCluster()
}

func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// startCluster runs initdb and pg_ctl into a temporary directory. The cluster
// lives for the whole test binary; the OS temp cleaner removes it.
func startCluster() (string, error) {
	bin := pgBinDir()
	if bin == "" {
		return "", fmt.Errorf("no server at 127.0.0.1:5432 and no initdb found; set STEWARD_TEST_POSTGRES or install postgresql")
	}
	dir, err := os.MkdirTemp("", "steward-pg-")
	if err != nil {
		return "", err
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync")
	if os.Geteuid() == 0 {
		return "", fmt.Errorf("initdb cannot run as root; set STEWARD_TEST_POSTGRES or run the server at 127.0.0.1:5432")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v: %s", err, out)
	}
	cmd = exec.Command(filepath.Join(bin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "log"), "-w",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir), "start")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	u := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return u, ping(u)
}

func pgBinDir() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[len(matches)-1])
}

var (
	myOnce sync.Once
	myBase string
	myErr  error
)

// MySQLDSN returns a go-sql-driver DSN of a new, empty MariaDB/MySQL database
// that is dropped when the test ends. It uses STEWARD_TEST_MYSQL (a DSN such
// as root@tcp(127.0.0.1:3306)/) when set, otherwise 127.0.0.1:3306 as root.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	myOnce.Do(func() {
		myBase = os.Getenv("STEWARD_TEST_MYSQL")
		if myBase == "" {
			myBase = "root@tcp(127.0.0.1:3306)/"
		}
		db, err := sql.Open("mysql", myBase)
		if err != nil {
			myErr = err
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		myErr = db.PingContext(ctx)
	})
	if myErr != nil {
		Skip(t, "mysql: %v (set STEWARD_TEST_MYSQL)", myErr)
	}
	name := "steward_test_" + randHex(6)
	db, err := sql.Open("mysql", myBase)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("mysql: create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", myBase)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name)
	})
	base := strings.TrimSuffix(myBase, "/")
	if i := strings.Index(base, ")/"); i >= 0 {
		base = base[:i+1]
	}
	return base + "/" + name + "?parseTime=true"
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparseable url)"
	}
	return p.Redacted()
}

// SQLiteStoreURL returns the URL of a new SQLite store in t's temp dir.
func SQLiteStoreURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "steward.db")
}

// ForEachStore runs fn as parallel subtests "sqlite" and "postgres", each
// with the URL of a fresh store of that dialect (PostgresURL's rules apply).
func ForEachStore(t *testing.T, fn func(t *testing.T, url string)) {
	t.Helper()
	for _, s := range []struct {
		name string
		url  func(t testing.TB) string
	}{{"sqlite", SQLiteStoreURL}, {"postgres", PostgresURL}} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, s.url(t))
		})
	}
}
