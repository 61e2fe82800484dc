package mysql_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/dbxtest"
	"github.com/stewardhq/steward/internal/dbx/mysql"
	"github.com/stewardhq/steward/internal/testenv"
)

func source(t *testing.T) string { return testenv.MySQLDSN(t) }

func TestConformanceServer(t *testing.T) {
	t.Parallel()
	dbxtest.Run(t, mysql.New(), source, dbx.ScratchOptions{Kind: "server", ServerURL: testenv.MySQLDSN(t), Label: "steward-dbxtest-my-"})
}

func TestConformanceEphemeral(t *testing.T) {
	t.Parallel()
	dbxtest.Run(t, mysql.New(), source, dbx.ScratchOptions{Kind: "ephemeral", Label: "steward-dbxtest-my-"})
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, user, pw, addr, db string }{
		{"root@tcp(127.0.0.1:3306)/shop?parseTime=true", "root", "", "127.0.0.1:3306", "shop"},
		{"app:s3cr@t/x@tcp(db:3307)/shop", "app", "s3cr@t/x", "db:3307", "shop"},
		{"mysql://app:p%40ss@db.example.com/shop", "app", "p@ss", "db.example.com:3306", "shop"},
		{"mariadb://root@127.0.0.1:3310/shop?tls=false", "root", "", "127.0.0.1:3310", "shop"},
	} {
		cfg, err := mysql.ParseURL(c.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.in, err)
			continue
		}
		if cfg.User != c.user || cfg.Passwd != c.pw || cfg.Addr != c.addr || cfg.DBName != c.db {
			t.Errorf("ParseURL(%q) = %s:%s@%s/%s", c.in, cfg.User, cfg.Passwd, cfg.Addr, cfg.DBName)
		}
	}
	if _, err := mysql.ParseURL("postgres://x@y/z"); err == nil || strings.Contains(err.Error(), "s3cr") {
		t.Errorf("ParseURL of a postgres url: %v", err)
	}
}

// A dump cut mid-statement that still ends with the trailer (say, a corrupt
// copy) gets past the trailer check; the client must then fail the restore.
func TestRestoreStopsAtTheFirstError(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := mysql.New()
	src := source(t)
	dbxtest.Seed(t, e, src)
	dir := t.TempDir()
	d, err := e.Dump(ctx, src, dir, dbx.DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, d.Files[0])
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	forged := append(b[:len(b)/2:len(b)/2], "\n-- Dump completed on 2024-01-01\n"...)
	if err := os.WriteFile(p, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	target := testenv.MySQLDSN(t)
	if _, err := e.Restore(ctx, d, dir, target, dbx.RestoreOptions{}); err == nil {
		t.Fatal("restore of a dump cut in half succeeded")
	} else {
		t.Logf("restore of a dump cut mid-statement: %v", err)
	}
}
