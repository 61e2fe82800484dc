package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/internal/scratchdir"
	"github.com/stewardhq/steward/internal/dbx/internal/tool"
)

// maxLabel is PostgreSQL's identifier limit: a longer database name would
// be truncated silently.
const maxLabel = 63

// Scratch implements dbx.Engine. Kind "ephemeral" runs initdb into a new
// labelled directory under opts.Dir and starts a server on a free
// 127.0.0.1 port (no Unix socket, fsync off, password authentication with a
// random password that only the returned URL carries). Kind "server"
// creates a database named opts.Label on opts.ServerURL.
func (e *Engine) Scratch(ctx context.Context, opts dbx.ScratchOptions) (*dbx.Scratch, error) {
	if err := scratchdir.ValidateLabel(opts.Label, maxLabel); err != nil {
		return nil, err
	}
	switch opts.Kind {
	case "ephemeral":
		return e.ephemeral(ctx, opts)
	case "server":
		return serverScratch(ctx, opts)
	default:
		return nil, fmt.Errorf("postgres scratch kind %q: want ephemeral or server", opts.Kind)
	}
}

func serverScratch(ctx context.Context, opts dbx.ScratchOptions) (*dbx.Scratch, error) {
	admin, err := parseURL(opts.ServerURL)
	if err != nil {
		return nil, fmt.Errorf("scratch server: %w", err)
	}
	c, err := connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("scratch server: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{opts.Label}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create scratch database %s on %s: %w", opts.Label, admin.u.Host, err)
	}
	u := *admin.u
	u.Path = "/" + opts.Label
	u.RawPath = ""
	desc := fmt.Sprintf("scratch database %s on PostgreSQL server %s", opts.Label, admin.u.Host)
	label := opts.Label
	return dbx.NewScratch(u.String(), label, desc, func(ctx context.Context) error {
		return dropDatabase(ctx, admin, label)
	}), nil
}

func dropDatabase(ctx context.Context, admin target, name string) error {
	c, err := connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("drop scratch database %s: %w", name, err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop scratch database %s on %s: %w", name, admin.u.Host, err)
	}
	return nil
}

// cluster is how to run the programs of an ephemeral cluster.
type cluster struct {
	initdb, pgCtl string
	cred          *syscall.Credential // nil: run as ourselves
}

func (e *Engine) cluster() (cluster, error) {
	var cl cluster
	var err error
	if cl.initdb, err = e.bin("initdb"); err != nil {
		return cl, err
	}
	if cl.pgCtl, err = e.bin("pg_ctl"); err != nil {
		return cl, err
	}
	if os.Geteuid() == 0 {
		name := e.RunAs
		if name == "" {
			name = "postgres"
		}
		if cl.cred, err = tool.Credential(name); err != nil {
			return cl, fmt.Errorf("ephemeral postgres runs as root, and PostgreSQL refuses root: need OS user %q to run it: %w", name, err)
		}
	}
	return cl, nil
}

// base returns where the cluster directory goes. As root the server runs as
// another user who must be able to reach its data directory; when it cannot
// traverse opts.Dir (a 0700 directory owned by root, say) the cluster goes
// under $TMPDIR/steward-scratch instead, and its label file still names
// opts.Dir so Leftovers(opts.Dir) finds it.
func (cl cluster) base(ctx context.Context, dir string) (string, error) {
	if cl.cred == nil || reachable(ctx, cl.cred, dir) {
		return dir, nil
	}
	alt := fallbackBase()
	if err := os.Mkdir(alt, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("ephemeral postgres: %w", err)
	}
	fi, err := os.Lstat(alt)
	if err != nil {
		return "", fmt.Errorf("ephemeral postgres: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("ephemeral postgres: %s must be a directory owned by root and writable only by it; remove it or choose a scratch dir the postgres user can reach", alt)
	}
	if err := os.Chmod(alt, 0o711); err != nil {
		return "", fmt.Errorf("ephemeral postgres: %w", err)
	}
	return alt, nil
}

func fallbackBase() string { return filepath.Join(os.TempDir(), "steward-scratch") }

// reachable reports whether the user can search dir (and every parent).
func reachable(ctx context.Context, cred *syscall.Credential, dir string) bool {
	test, err := exec.LookPath("test")
	if err != nil {
		return false
	}
	cmd := exec.CommandContext(ctx, test, "-x", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd.Run() == nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (e *Engine) ephemeral(ctx context.Context, opts dbx.ScratchOptions) (_ *dbx.Scratch, err error) {
	if opts.Dir == "" {
		return nil, errors.New("ephemeral postgres scratch needs a directory (ScratchOptions.Dir)")
	}
	cl, err := e.cluster()
	if err != nil {
		return nil, err
	}
	base, err := cl.base(ctx, opts.Dir)
	if err != nil {
		return nil, err
	}
	dir, err := scratchdir.Create(base, opts.Dir, e.Name(), opts.Label)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	defer func() {
		if err != nil {
			_ = cl.stop(context.WithoutCancel(ctx), data)
			_ = os.RemoveAll(dir)
		}
	}()
	if cl.cred != nil {
		if err := os.Chown(dir, int(cl.cred.Uid), int(cl.cred.Gid)); err != nil {
			return nil, fmt.Errorf("ephemeral postgres: %w", err)
		}
	}
	pw := randomHex(16)
	pwFile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("ephemeral postgres: %w", err)
	}
	if cl.cred != nil {
		if err := os.Chown(pwFile, int(cl.cred.Uid), int(cl.cred.Gid)); err != nil {
			return nil, fmt.Errorf("ephemeral postgres: %w", err)
		}
	}
	// initdb narrates its progress on stdout; its errors (a full disk, say)
	// are on stderr, and only they belong in the error.
	initdb := &tool.Cmd{Path: cl.initdb, Cred: cl.cred, Stdout: io.Discard, Args: []string{"--pgdata=" + data, "--username=steward",
		"--auth=scram-sha-256", "--pwfile=" + pwFile, "--encoding=UTF8", "--locale=C", "--no-sync"}}
	_, err = initdb.Run(ctx)
	_ = os.Remove(pwFile)
	if err != nil {
		return nil, fmt.Errorf("ephemeral postgres: %w", err)
	}
	var port int
	for attempt := 0; ; attempt++ {
		if port, err = scratchdir.FreePort(); err != nil {
			return nil, err
		}
		err = cl.start(ctx, dir, data, port)
		if err == nil {
			break
		}
		// Another process may have taken the port between our check and the
		// server's bind; try another one.
		if attempt == 2 || !strings.Contains(err.Error(), "already in use") {
			return nil, fmt.Errorf("ephemeral postgres: %w", err)
		}
	}
	admin, err := parseURL(fmt.Sprintf("postgres://steward:%s@127.0.0.1:%d/postgres?sslmode=disable", pw, port))
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("ephemeral postgres: %w", err)
	}
	version, _ := serverVersion(ctx, c)
	_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{opts.Label}.Sanitize())
	c.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("ephemeral postgres: create database: %w", err)
	}
	u := *admin.u
	u.Path = "/" + opts.Label
	desc := fmt.Sprintf("ephemeral PostgreSQL %s cluster in %s on 127.0.0.1:%d, database %s", version, dir, port, opts.Label)
	e.serverLogs.Store(u.Host, filepath.Join(dir, "server.log"))
	return dbx.NewScratch(u.String(), opts.Label, desc, func(ctx context.Context) error {
		e.serverLogs.Delete(u.Host)
		err := cl.stop(ctx, data)
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove ephemeral postgres %s: %w", dir, rmErr))
		}
		return err
	}), nil
}

// serverProblems returns, for an ephemeral server Steward runs at t, the
// PANIC and FATAL lines of its log (at most the last few), formatted to
// append to an error: when the server dies under a client (a full disk
// makes it PANIC), the client only sees a closed connection, and the
// reason is in the log, which teardown removes.
func (e *Engine) serverProblems(t target) string {
	v, ok := e.serverLogs.Load(t.u.Host)
	if !ok {
		return ""
	}
	data, err := os.ReadFile(v.(string))
	if err != nil {
		return ""
	}
	var lines []string
	for line := range strings.Lines(string(data)) {
		if strings.Contains(line, "PANIC:") || strings.Contains(line, "FATAL:") && !strings.Contains(line, "the database system is") {
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

func (cl cluster) start(ctx context.Context, dir, data string, port int) error {
	logFile := filepath.Join(dir, "server.log")
	o := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "+
		"-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_wal_size=1GB", port)
	cmd := &tool.Cmd{Path: cl.pgCtl, Cred: cl.cred, Args: []string{"--pgdata=" + data, "--log=" + logFile,
		"--wait", "--timeout=60", "--options=" + o, "start"}}
	if _, err := cmd.Run(ctx); err != nil {
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("%w; server log: %s", err, tool.Tail(log, 1000))
	}
	return nil
}

// stop stops the cluster in data immediately if one runs there.
func (cl cluster) stop(ctx context.Context, data string) error {
	pid, err := scratchdir.ReadPID(filepath.Join(data, "postmaster.pid"))
	if err != nil || pid == 0 || !scratchdir.RunsIn(pid, data) {
		return nil
	}
	cmd := &tool.Cmd{Path: cl.pgCtl, Cred: cl.cred, Args: []string{"--pgdata=" + data, "--mode=immediate", "--wait", "stop"}}
	if _, err := cmd.Run(ctx); err != nil {
		// pg_ctl may be gone or refuse; SIGQUIT is what --mode=immediate sends.
		if kerr := scratchdir.Kill(ctx, pid, syscall.SIGQUIT); kerr != nil {
			return fmt.Errorf("stop ephemeral postgres: %w", errors.Join(err, kerr))
		}
	}
	return nil
}

// Leftovers implements dbx.Engine. opts.Label is the prefix. It removes
// ephemeral clusters under opts.Dir (stopping a server still running in
// one) and, when opts.ServerURL is set, drops the databases whose names
// start with the prefix, except the labels in keep.
func (e *Engine) Leftovers(ctx context.Context, opts dbx.ScratchOptions, keep map[string]bool) ([]string, error) {
	if opts.Label == "" {
		return nil, errors.New("leftovers: empty label prefix would match every scratch resource")
	}
	var removed []string
	var errs []error
	if opts.Dir != "" {
		bases := []string{opts.Dir}
		if os.Geteuid() == 0 {
			bases = append(bases, fallbackBase())
		}
		var cl cluster
		cl.pgCtl, _ = e.bin("pg_ctl")
		for _, base := range bases {
			found, err := scratchdir.Find(base, opts.Dir, e.Name(), opts.Label)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, f := range found {
				if keep[f.Label.Label] {
					continue
				}
				data := filepath.Join(f.Dir, "data")
				c := cl
				if os.Geteuid() == 0 {
					c.cred = ownerOf(data) // pg_ctl refuses root
				}
				if err := c.stop(ctx, data); err != nil {
					errs = append(errs, err)
					continue
				}
				if err := scratchdir.Remove(f); err != nil {
					errs = append(errs, fmt.Errorf("remove %s: %w", f.Dir, err))
					continue
				}
				removed = append(removed, fmt.Sprintf("ephemeral postgres %s (%s)", f.Label.Label, f.Dir))
			}
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

// ownerOf returns the credential of the owner of path; nil when unknown.
func ownerOf(path string) *syscall.Credential {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return &syscall.Credential{Uid: st.Uid, Gid: st.Gid, NoSetGroups: true}
}

func dropLeftoverDatabases(ctx context.Context, serverURL, prefix string, keep map[string]bool) ([]string, error) {
	admin, err := parseURL(serverURL)
	if err != nil {
		return nil, fmt.Errorf("leftovers: %w", err)
	}
	c, err := connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("leftovers: %w", err)
	}
	rows, err := c.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")
	var names []string
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	c.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("leftovers: list databases on %s: %w", admin.u.Host, err)
	}
	var removed []string
	var errs []error
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) || keep[n] || n == admin.db {
			continue
		}
		if err := dropDatabase(ctx, admin, n); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "scratch database "+n+" on "+admin.u.Host)
	}
	return removed, errors.Join(errs...)
}
