package backup_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/testenv"
)

func TestPgBackRestListAndRestore(t *testing.T) {
	t.Parallel()
	p := testenv.StartPgBackRest(t)
	ctx := context.Background()
	b := &config.Backup{Name: "pitr", Database: "main", Method: "pgbackrest", Stanza: "demo", PgbackrestConfig: p.Conf}

	ms, err := backup.ListPgBackRest(ctx, b)
	if err != nil || len(ms) != 0 {
		t.Fatalf("list of a stanza without backups = %+v, %v", ms, err)
	}
	p.PSQL(t, p.Port, "postgres", "CREATE TABLE orders (id int PRIMARY KEY, at timestamptz DEFAULT now()); INSERT INTO orders SELECT g FROM generate_series(1, 1000) g")
	before := time.Now().Add(-time.Second).Truncate(time.Second)
	p.Run(t, "pgbackrest", "--config="+p.Conf, "--stanza=demo", "--type=full", "backup")
	p.PSQL(t, p.Port, "postgres", "INSERT INTO orders SELECT g FROM generate_series(1001, 1500) g")
	p.Run(t, "pgbackrest", "--config="+p.Conf, "--stanza=demo", "--type=incr", "backup")
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
	pgdata := filepath.Join(p.Dir, "restored")
	p.Run(t, "mkdir", "-m", "0700", pgdata)
	argv := backup.PgBackRestRestoreCommand(b, full.ID, pgdata)
	p.Run(t, argv...)
	auto, err := os.ReadFile(filepath.Join(pgdata, "postgresql.auto.conf"))
	if err != nil || !strings.Contains(string(auto), "restore_command") {
		t.Fatalf("postgresql.auto.conf: %v\n%s", err, auto)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p.Run(t, filepath.Join(p.Bin, "pg_ctl"), "-D", pgdata, "-l", filepath.Join(p.Dir, "log", "restored.log"), "-w", "-t", "120",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=''", port, filepath.Join(p.Dir, "sock")), "start")
	defer p.Stop(pgdata)
	// Recovery replays the archived WAL after the backup, as a real restore does.
	deadline := time.Now().Add(time.Minute)
	for p.PSQL(t, port, "postgres", "SELECT pg_is_in_recovery()") != "f" {
		if time.Now().After(deadline) {
			t.Fatal("restored cluster still in recovery after a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := p.PSQL(t, port, "postgres", "SELECT count(*) FROM orders"); n != "1500" {
		t.Errorf("restored rows = %s, want 1500 (backup plus archived WAL)", n)
	}
	if mode := p.PSQL(t, port, "postgres", "SHOW archive_mode"); mode != "off" {
		t.Errorf("restored cluster archive_mode = %s, want off (it must not push into the production stanza)", mode)
	}
}

func TestPgBackRestUnknownStanza(t *testing.T) {
	t.Parallel()
	p := testenv.StartPgBackRest(t)
	b := &config.Backup{Name: "pitr", Method: "pgbackrest", Stanza: "nosuch", PgbackrestConfig: p.Conf}
	if _, err := backup.ListPgBackRest(context.Background(), b); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("unknown stanza: %v", err)
	}
}
