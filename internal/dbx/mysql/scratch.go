package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/internal/scratchdir"
	"github.com/stewardhq/steward/internal/dbx/internal/tool"
)

// maxLabel is MySQL's database name limit.
const maxLabel = 64

// Scratch implements dbx.Engine. Kind "server" creates a database named
// opts.Label on opts.ServerURL. Kind "ephemeral" initialises a MariaDB data
// directory (mariadb-install-db) in a new labelled directory under opts.Dir
// and starts mariadbd on a free 127.0.0.1 port with durability relaxed; its
// root accounts get a random password that only the returned URL carries.
// Ephemeral needs MariaDB's programs (not Oracle MySQL's).
func (e *Engine) Scratch(ctx context.Context, opts dbx.ScratchOptions) (*dbx.Scratch, error) {
	if err := scratchdir.ValidateLabel(opts.Label, maxLabel); err != nil {
		return nil, err
	}
	switch opts.Kind {
	case "server":
		return serverScratch(ctx, opts)
	case "ephemeral":
		return e.ephemeral(ctx, opts)
	default:
		return nil, fmt.Errorf("mysql scratch kind %q: want ephemeral or server", opts.Kind)
	}
}

func serverScratch(ctx context.Context, opts dbx.ScratchOptions) (*dbx.Scratch, error) {
	admin, err := ParseURL(opts.ServerURL)
	if err != nil {
		return nil, fmt.Errorf("scratch server: %w", err)
	}
	if err := createDatabase(ctx, opts.ServerURL, opts.Label); err != nil {
		return nil, err
	}
	c := admin.Clone()
	c.DBName = opts.Label
	label := opts.Label
	desc := fmt.Sprintf("scratch database %s on MySQL server %s", label, admin.Addr)
	return dbx.NewScratch(c.FormatDSN(), label, desc, func(ctx context.Context) error {
		return dropDatabase(ctx, opts.ServerURL, label)
	}), nil
}

func createDatabase(ctx context.Context, serverURL, name string) error {
	db, cfg, err := open(ctx, serverURL, false)
	if err != nil {
		return fmt.Errorf("scratch server: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)+" CHARACTER SET utf8mb4"); err != nil {
		return fmt.Errorf("create scratch database %s on %s: %w", name, cfg.Addr, err)
	}
	return nil
}

func dropDatabase(ctx context.Context, serverURL, name string) error {
	db, cfg, err := open(ctx, serverURL, false)
	if err != nil {
		return fmt.Errorf("drop scratch database %s: %w", name, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)); err != nil {
		return fmt.Errorf("drop scratch database %s on %s: %w", name, cfg.Addr, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// maxSocket keeps the Unix socket path under the kernel's 108-byte limit.
const maxSocket = 100

func (e *Engine) ephemeral(ctx context.Context, opts dbx.ScratchOptions) (_ *dbx.Scratch, err error) {
	if opts.Dir == "" {
		return nil, errors.New("ephemeral mysql scratch needs a directory (ScratchOptions.Dir)")
	}
	installDB, err := e.bin("mariadb-install-db")
	if err != nil {
		return nil, fmt.Errorf("ephemeral mysql needs MariaDB: %w", err)
	}
	server, err := e.bin("mariadbd")
	if err != nil {
		return nil, fmt.Errorf("ephemeral mysql needs MariaDB: %w", err)
	}
	dir, err := scratchdir.Create(opts.Dir, opts.Dir, e.Name(), opts.Label)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	socket := filepath.Join(dir, "mariadbd.sock")
	var proc *process
	defer func() {
		if err != nil {
			if proc != nil {
				_ = proc.kill(context.WithoutCancel(ctx))
			}
			_ = os.Remove(socket)
			_ = os.RemoveAll(dir)
		}
	}()
	if len(socket) > maxSocket {
		socket = filepath.Join(os.TempDir(), "steward-"+randomHex(8)+".sock")
		l := scratchdir.Label{Label: opts.Label, Engine: e.Name(), Parent: opts.Dir, Created: time.Now().UTC(), Extra: []string{socket}}
		if err := scratchdir.WriteLabel(dir, l); err != nil {
			return nil, err
		}
	}
	root := os.Geteuid() == 0
	// Each server keeps its temporary files in its own directory: servers
	// sharing /tmp collide on temp-table names during installation.
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("ephemeral mysql: %w", err)
	}
	args := []string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if root {
		args = append(args, "--user=root")
	}
	if _, err := (&tool.Cmd{Path: installDB, Args: args}).Run(ctx); err != nil {
		return nil, fmt.Errorf("ephemeral mysql: %w", err)
	}
	var port int
	for attempt := 0; ; attempt++ {
		if port, err = scratchdir.FreePort(); err != nil {
			return nil, err
		}
		proc, err = startServer(ctx, server, dir, data, socket, port, root)
		if err == nil {
			break
		}
		proc = nil
		if attempt == 2 || !strings.Contains(err.Error(), "in use") {
			return nil, fmt.Errorf("ephemeral mysql: %w", err)
		}
	}
	pw := randomHex(16)
	if err := secureRoot(ctx, port, pw); err != nil {
		return nil, fmt.Errorf("ephemeral mysql: %w", err)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = "root", pw, "tcp", "127.0.0.1:"+strconv.Itoa(port)
	adminURL := cfg.FormatDSN()
	if err := createDatabase(ctx, adminURL, opts.Label); err != nil {
		return nil, fmt.Errorf("ephemeral mysql: %w", err)
	}
	cfg.DBName = opts.Label
	e.serverLogs.Store(cfg.Addr, filepath.Join(dir, errLogName))
	desc := fmt.Sprintf("ephemeral MariaDB server in %s on 127.0.0.1:%d, database %s", dir, port, opts.Label)
	return dbx.NewScratch(cfg.FormatDSN(), opts.Label, desc, func(ctx context.Context) error {
		e.serverLogs.Delete(cfg.Addr)
		err := proc.kill(ctx)
		_ = os.Remove(socket)
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove ephemeral mysql %s: %w", dir, rmErr))
		}
		return err
	}), nil
}

// errLogName is the error log of an ephemeral server, in its directory.
const errLogName = "mariadbd.err"

// serverProblems returns, for an ephemeral server Steward runs at addr, the
// last few [ERROR] lines of its error log, formatted to append to an error:
// the client sees "The table 'events' is full" where the log says why
// ("failed with error 28"), and teardown removes the log.
func (e *Engine) serverProblems(addr string) string {
	v, ok := e.serverLogs.Load(addr)
	if !ok {
		return ""
	}
	data, err := os.ReadFile(v.(string))
	if err != nil {
		return ""
	}
	var lines []string
	for line := range strings.Lines(string(data)) {
		if strings.Contains(line, "[ERROR]") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return "; the scratch server's log says: " + strings.Join(lines, " | ")
}

// process is a server we started; its goroutine reaps it.
type process struct {
	pid  int
	done chan struct{}
}

func (p *process) kill(ctx context.Context) error {
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop ephemeral mysql: %w", err)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop ephemeral mysql: %w", ctx.Err())
	}
}

// startServer starts mariadbd and waits until it accepts connections. The
// server outlives ctx (it is stopped by the scratch's Destroy) and runs in
// its own process group, so a terminal's Ctrl-C does not kill it
// mid-restore; if Steward dies, Leftovers stops it through its pid file.
func startServer(ctx context.Context, server, dir, data, socket string, port int, root bool) (*process, error) {
	errLog := filepath.Join(dir, errLogName)
	args := []string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + filepath.Join(dir, "tmp"), "--socket=" + socket, "--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--pid-file=" + filepath.Join(dir, "mariadbd.pid"), "--log-error=" + errLog,
		"--skip-log-bin", "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
		"--innodb-buffer-pool-size=128M", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"}
	if root {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(server, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	p := &process{pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.Timeout = "root", "tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second
	conn, _ := mysql.NewConnector(cfg)
	db := sql.OpenDB(conn)
	defer db.Close()
	deadline := time.After(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(errLog)
			return nil, fmt.Errorf("mariadbd exited while starting: %s", tool.Tail(log, 1500))
		case <-deadline:
			_ = p.kill(context.Background())
			log, _ := os.ReadFile(errLog)
			return nil, fmt.Errorf("mariadbd did not accept connections within 60s: %s", tool.Tail(log, 1500))
		case <-ctx.Done():
			_ = p.kill(context.Background())
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// secureRoot gives root on loopback the password and removes every other
// account (anonymous ones, root@hostname): the server listens on loopback,
// where any local user could otherwise connect.
func secureRoot(ctx context.Context, port int, pw string) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "tcp", "127.0.0.1:"+strconv.Itoa(port)
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	for _, q := range []string{
		"DELETE FROM mysql.global_priv WHERE user <> 'mariadb.sys' AND NOT (user = 'root' AND host IN ('127.0.0.1', '::1', 'localhost'))",
		"FLUSH PRIVILEGES",
		"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '" + pw + "'",
		"ALTER USER 'root'@'::1' IDENTIFIED BY '" + pw + "'",
		"ALTER USER 'root'@'localhost' IDENTIFIED BY '" + pw + "'",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("secure accounts: %w", err)
		}
	}
	return nil
}

// Leftovers implements dbx.Engine. opts.Label is the prefix. It removes
// ephemeral servers under opts.Dir (killing a mariadbd still running in
// one) and, when opts.ServerURL is set, drops the databases whose names
// start with the prefix, except the labels in keep.
func (e *Engine) Leftovers(ctx context.Context, opts dbx.ScratchOptions, keep map[string]bool) ([]string, error) {
	if opts.Label == "" {
		return nil, errors.New("leftovers: empty label prefix would match every scratch resource")
	}
	var removed []string
	var errs []error
	if opts.Dir != "" {
		found, err := scratchdir.Find(opts.Dir, opts.Dir, e.Name(), opts.Label)
		if err != nil {
			errs = append(errs, err)
		}
		for _, f := range found {
			if keep[f.Label.Label] {
				continue
			}
			data := filepath.Join(f.Dir, "data")
			pid, err := scratchdir.ReadPID(filepath.Join(f.Dir, "mariadbd.pid"))
			if err == nil && pid > 0 && scratchdir.RunsIn(pid, data) {
				if err := scratchdir.Kill(ctx, pid, syscall.SIGKILL); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			if err := scratchdir.Remove(f); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", f.Dir, err))
				continue
			}
			removed = append(removed, fmt.Sprintf("ephemeral mysql %s (%s)", f.Label.Label, f.Dir))
		}
	}
	if opts.ServerURL != "" {
		r, err := dropLeftoverDatabases(ctx, opts.ServerURL, opts.Label, keep)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

func dropLeftoverDatabases(ctx context.Context, serverURL, prefix string, keep map[string]bool) ([]string, error) {
	db, cfg, err := open(ctx, serverURL, false)
	if err != nil {
		return nil, fmt.Errorf("leftovers: %w", err)
	}
	rows, err := db.QueryContext(ctx, "SELECT schema_name FROM information_schema.schemata ORDER BY 1")
	var names []string
	if err == nil {
		for rows.Next() {
			var n string
			if err = rows.Scan(&n); err != nil {
				break
			}
			names = append(names, n)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	db.Close()
	if err != nil {
		return nil, fmt.Errorf("leftovers: list databases on %s: %w", cfg.Addr, err)
	}
	var removed []string
	var errs []error
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) || keep[n] || n == cfg.DBName {
			continue
		}
		if err := dropDatabase(ctx, serverURL, n); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "scratch database "+n+" on "+cfg.Addr)
	}
	return removed, errors.Join(errs...)
}
