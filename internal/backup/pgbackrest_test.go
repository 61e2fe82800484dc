package backup_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/testenv"
)

// pgbr is a throwaway PostgreSQL cluster archiving into a pgBackRest
// stanza in a temporary directory.
type pgbr struct {
	dir, conf, bin string
	port           int
	asUser         []string // prefix running a command as the cluster's owner
}

func (p *pgbr) run(t *testing.T, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append(append([]string{}, p.asUser...), argv...)
	out, err := exec.CommandContext(ctx, full[0], full[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// stop stops the cluster in pgdata, if it runs.
func (p *pgbr) stop(pgdata string) {
	full := append(append([]string{}, p.asUser...), filepath.Join(p.bin, "pg_ctl"), "-D", pgdata, "-m", "immediate", "stop")
	_ = exec.Command(full[0], full[1:]...).Run()
}

func (p *pgbr) psql(t *testing.T, port int, sql string) string {
	t.Helper()
	return strings.TrimSpace(p.run(t, filepath.Join(p.bin, "psql"), "-X", "-A", "-t", "-h", filepath.Join(p.dir, "sock"), "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres", "-c", sql))
}

// startPgBackRest sets up the cluster and the stanza. initdb refuses to run
// as root, so under root the cluster belongs to the postgres OS user.
func startPgBackRest(t *testing.T) *pgbr {
	t.Helper()
	if _, err := exec.LookPath("pgbackrest"); err != nil {
		testenv.Skip(t, "pgbackrest is not installed (Debian package pgbackrest)")
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		testenv.Skip(t, "PostgreSQL server binaries (initdb) are not installed")
	}
	p := &pgbr{bin: filepath.Dir(matches[len(matches)-1])}
	dir, err := os.MkdirTemp("", "steward-pgbackrest-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			testenv.Skip(t, "running as root and there is no postgres OS user to own the cluster")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		p.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()

	for _, d := range []string{"sock", "repo", "log", "lock", "spool"} {
		p.run(t, "mkdir", "-p", filepath.Join(dir, d))
	}
	p.conf = filepath.Join(dir, "pgbackrest.conf")
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
`, dir, p.port)
	p.run(t, "sh", "-c", "cat > "+p.conf+" <<'EOF'\n"+conf+"EOF")
	p.run(t, filepath.Join(p.bin, "initdb"), "-D", filepath.Join(dir, "pgdata"), "-U", "postgres", "-A", "trust", "--no-sync")
	archive := fmt.Sprintf("pgbackrest --config=%s --stanza=demo archive-push %%p", p.conf)
	p.run(t, filepath.Join(p.bin, "pg_ctl"), "-D", filepath.Join(dir, "pgdata"), "-l", filepath.Join(dir, "log", "pg.log"), "-w",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses='' -c fsync=off -c archive_mode=on -c wal_level=replica -c archive_command='%s'", p.port, filepath.Join(dir, "sock"), archive), "start")
	t.Cleanup(func() {
		p.stop(filepath.Join(dir, "pgdata"))
		os.RemoveAll(dir)
	})
	p.run(t, "pgbackrest", "--config="+p.conf, "--stanza=demo", "stanza-create")
	return p
}

func TestPgBackRestListAndRestore(t *testing.T) {
	t.Parallel()
	p := startPgBackRest(t)
	ctx := context.Background()
	b := &config.Backup{Name: "pitr", Database: "main", Method: "pgbackrest", Stanza: "demo", PgbackrestConfig: p.conf}

	ms, err := backup.ListPgBackRest(ctx, b)
	if err != nil || len(ms) != 0 {
		t.Fatalf("list of a stanza without backups = %+v, %v", ms, err)
	}
	p.psql(t, p.port, "CREATE TABLE orders (id int PRIMARY KEY, at timestamptz DEFAULT now()); INSERT INTO orders SELECT g FROM generate_series(1, 1000) g")
	before := time.Now().Add(-time.Second).Truncate(time.Second)
	p.run(t, "pgbackrest", "--config="+p.conf, "--stanza=demo", "--type=full", "backup")
	p.psql(t, p.port, "INSERT INTO orders SELECT g FROM generate_series(1001, 1500) g")
	p.run(t, "pgbackrest", "--config="+p.conf, "--stanza=demo", "--type=incr", "backup")
	after := time.Now().Add(time.Second)

	ms, err = backup.ListPgBackRest(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("listed %d backups, want 2: %+v", len(ms), ms)
	}
	full, incr := ms[0], ms[1]
	if !strings.HasSuffix(full.ID, "F") || !strings.Contains(incr.ID, "_") || !strings.HasSuffix(incr.ID, "I") {
		t.Errorf("labels = %s, %s; want a full then an incremental", full.ID, incr.ID)
	}
	for _, m := range ms {
		if m.Method != "pgbackrest" || m.Engine != "postgres" || m.Backup != "pitr" || m.Size <= 0 || len(m.Objects) != 0 ||
			!strings.HasPrefix(m.ServerVersion, "15") || !strings.HasPrefix(m.ToolVersion, "pgBackRest 2.") {
			t.Errorf("manifest = %+v", m)
		}
		if m.StartedAt.Before(before) || m.FinishedAt.After(after) || m.SnapshotTime != m.FinishedAt || m.FinishedAt.Before(m.StartedAt) {
			t.Errorf("times of %s: start %v stop %v, want within [%v, %v]", m.ID, m.StartedAt, m.FinishedAt, before, after)
		}
	}

	// Restore the full backup with the command Steward gives the drill,
	// start it on another port and read the data back.
	pgdata := filepath.Join(p.dir, "restored")
	p.run(t, "mkdir", "-m", "0700", pgdata)
	argv := backup.PgBackRestRestoreCommand(b, full.ID, pgdata)
	p.run(t, argv...)
	auto, err := os.ReadFile(filepath.Join(pgdata, "postgresql.auto.conf"))
	if err != nil || !strings.Contains(string(auto), "restore_command") {
		t.Fatalf("postgresql.auto.conf: %v\n%s", err, auto)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p.run(t, filepath.Join(p.bin, "pg_ctl"), "-D", pgdata, "-l", filepath.Join(p.dir, "log", "restored.log"), "-w", "-t", "120",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=''", port, filepath.Join(p.dir, "sock")), "start")
	defer p.stop(pgdata)
	// Recovery replays the archived WAL after the backup, as a real restore does.
	deadline := time.Now().Add(time.Minute)
	for p.psql(t, port, "SELECT pg_is_in_recovery()") != "f" {
		if time.Now().After(deadline) {
			t.Fatal("restored cluster still in recovery after a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := p.psql(t, port, "SELECT count(*) FROM orders"); n != "1500" {
		t.Errorf("restored rows = %s, want 1500 (backup plus archived WAL)", n)
	}
	if mode := p.psql(t, port, "SHOW archive_mode"); mode != "off" {
		t.Errorf("restored cluster archive_mode = %s, want off (it must not push into the production stanza)", mode)
	}
}

func TestPgBackRestUnknownStanza(t *testing.T) {
	t.Parallel()
	p := startPgBackRest(t)
	b := &config.Backup{Name: "pitr", Method: "pgbackrest", Stanza: "nosuch", PgbackrestConfig: p.conf}
	if _, err := backup.ListPgBackRest(context.Background(), b); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("unknown stanza: %v", err)
	}
}
