package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PgBackRest is a throwaway PostgreSQL cluster archiving into a real
// pgBackRest stanza "demo", all in a temporary directory Dir: the cluster
// in Dir/pgdata listening on the socket directory Dir/sock at Port (no
// TCP), the repository in Dir/repo, the config in Conf. initdb refuses
// root, so under root the cluster belongs to the postgres OS user and
// commands that touch its files run with the AsUser prefix.
type PgBackRest struct {
	Dir, Conf, Bin string // Bin: the PostgreSQL server binaries
	Port           int
	AsUser         []string
}

// StartPgBackRest sets up the cluster and the stanza; they are removed
// when t ends. Without pgbackrest or PostgreSQL's server binaries the test
// is skipped (failed under CI).
func StartPgBackRest(t testing.TB) *PgBackRest {
	t.Helper()
	if _, err := exec.LookPath("pgbackrest"); err != nil {
		Skip(t, "pgbackrest is not installed (Debian package pgbackrest)")
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		Skip(t, "PostgreSQL server binaries (initdb) are not installed")
	}
	p := &PgBackRest{Bin: filepath.Dir(matches[len(matches)-1])}
	dir, err := os.MkdirTemp("", "steward-pgbackrest-")
	if err != nil {
		t.Fatal(err)
	}
	p.Dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			Skip(t, "running as root and there is no postgres OS user to own the cluster")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		p.AsUser = []string{"runuser", "-u", "postgres", "--"}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	for _, d := range []string{"sock", "repo", "log", "lock", "spool"} {
		p.Run(t, "mkdir", "-p", filepath.Join(dir, d))
	}
	p.Conf = filepath.Join(dir, "pgbackrest.conf")
	conf := fmt.Sprintf(`[global]
repo1-path=%[1]s/repo
log-path=%[1]s/log
lock-path=%[1]s/lock
spool-path=%[1]s/spool
start-fast=y
compress-type=lz4

[demo]
pg1-path=%[1]s/pgdata
pg1-port=%[2]d
pg1-socket-path=%[1]s/sock
`, dir, p.Port)
	p.Run(t, "sh", "-c", "cat > "+p.Conf+" <<'EOF'\n"+conf+"EOF")
	p.Run(t, filepath.Join(p.Bin, "initdb"), "-D", filepath.Join(dir, "pgdata"), "-U", "postgres", "-A", "trust", "--no-sync")
	archive := fmt.Sprintf("pgbackrest --config=%s --stanza=demo archive-push %%p", p.Conf)
	p.Run(t, filepath.Join(p.Bin, "pg_ctl"), "-D", filepath.Join(dir, "pgdata"), "-l", filepath.Join(dir, "log", "pg.log"), "-w",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses='' -c fsync=off -c archive_mode=on -c wal_level=replica -c archive_command='%s'", p.Port, filepath.Join(dir, "sock"), archive), "start")
	t.Cleanup(func() {
		p.Stop(filepath.Join(dir, "pgdata"))
		os.RemoveAll(dir)
	})
	p.Run(t, "pgbackrest", "--config="+p.Conf, "--stanza=demo", "stanza-create")
	return p
}

// Run runs argv as the cluster's owner and returns its combined output;
// a failure (or two minutes) fails the test.
func (p *PgBackRest) Run(t testing.TB, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append(append([]string{}, p.AsUser...), argv...)
	out, err := exec.CommandContext(ctx, full[0], full[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// Stop stops the cluster in pgdata, if it runs.
func (p *PgBackRest) Stop(pgdata string) {
	full := append(append([]string{}, p.AsUser...), filepath.Join(p.Bin, "pg_ctl"), "-D", pgdata, "-m", "immediate", "stop")
	_ = exec.Command(full[0], full[1:]...).Run()
}

// PSQL runs sql in database db of the cluster on port (the stanza's, or a
// restored copy's) through the socket directory, and returns the output
// unaligned, without headers.
func (p *PgBackRest) PSQL(t testing.TB, port int, db, sql string) string {
	t.Helper()
	return strings.TrimSpace(p.Run(t, filepath.Join(p.Bin, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", filepath.Join(p.Dir, "sock"), "-p", strconv.Itoa(port), "-U", "postgres", "-d", db, "-c", sql))
}

// URL is the URL of database db of the stanza's cluster, through its socket.
func (p *PgBackRest) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + db,
		RawQuery: url.Values{"host": {filepath.Join(p.Dir, "sock")}, "port": {strconv.Itoa(p.Port)}}.Encode()}
	return u.String()
}
