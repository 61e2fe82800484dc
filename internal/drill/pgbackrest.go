package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/dbx"
)

// Phases of a pgBackRest drill that Steward times itself.
const (
	// PhaseRestoreData is `pgbackrest restore` into the scratch data
	// directory (the engines' restores use the same name).
	PhaseRestoreData = "restore data"
	// PhaseRecovery starts PostgreSQL on the restored data directory and
	// waits until recovery (the replay of the archived WAL) has finished.
	PhaseRecovery = "recovery/start"
)

// clusterUser owns and runs the restored cluster when Steward runs as root
// (PostgreSQL refuses root), as the postgres engine's ephemeral clusters.
const clusterUser = "postgres"

// scratchLabelFile is the label file the database engines write into
// their scratch directories (internal/dbx/internal/scratchdir). The scratch
// data directory of a pgBackRest drill carries one in the same layout as
// an ephemeral PostgreSQL cluster (<label>-*/steward-scratch.json and
// data/), so that the postgres engine's Leftovers — the teardown here, and
// the cleanup after a crash — stops the server running in it and removes
// it.
const scratchLabelFile = "steward-scratch.json"

// scratchLabel is the content of scratchLabelFile.
type scratchLabelData struct {
	Label   string    `json:"label"`
	Engine  string    `json:"engine"`
	Parent  string    `json:"parent"`
	Created time.Time `json:"created"`
}

// pgData is the scratch data directory a pgBackRest backup is restored
// into, and the server started on it.
type pgData struct {
	dir  string              // the labelled scratch directory
	data string              // PGDATA: dir/data
	sock string              // dir/sock: the Unix socket, reachable by its owner only
	hba  string              // dir/pg_hba.conf
	log  string              // dir/server.log
	cred *syscall.Credential // the cluster's owner; nil: ourselves
	url  string              // set once the server runs
}

// pgbackrestSteps drills a backup of a pgBackRest stanza: pick it from
// `pgbackrest info`, restore it with `pgbackrest restore` into a scratch
// data directory, start PostgreSQL on it and let recovery replay the
// archived WAL, then verify the restored cluster and measure.
func (r *runner) pgbackrestSteps(ctx context.Context) (err error) {
	if kind := r.d.Scratch.Kind; kind != "" && kind != "ephemeral" {
		return notRunf("drill %s: pgBackRest restores a whole data directory on this machine: scratch kind must be ephemeral, not %s", r.drillName, kind)
	}
	m, err := r.pickPgBackRest(ctx)
	if err != nil {
		return err
	}

	var pg *pgData
	r.scratch = func(ctx context.Context, opts dbx.ScratchOptions) (*dbx.Scratch, error) {
		var sc *dbx.Scratch
		var err error
		pg, sc, err = r.scratchPGData(ctx, opts)
		return sc, err
	}
	_, teardown, err := r.provision(ctx)
	if teardown != nil {
		defer func() {
			if terr := teardown(); terr != nil && err == nil {
				err = failf("teardown: %v (the scratch resource stays recorded and is removed at the next start)", terr)
			}
		}()
	}
	if err != nil {
		return err
	}

	if err := r.phase(ctx, PhaseRestoreData, func(ctx context.Context) (int64, error) {
		argv := backup.PgBackRestRestoreCommand(r.b, m.ID, pg.data)
		r.rep.Commands = append(r.rep.Commands, shellJoin(argv))
		if v, err := runAs(ctx, pg.cred, argv[0], "version"); err == nil {
			r.rep.ToolVersions["restore"] = strings.TrimSpace(string(v))
		}
		if _, err := runAs(ctx, pg.cred, argv[0], argv[1:]...); err != nil {
			return 0, err
		}
		return m.Size, nil
	}); err != nil {
		var f *failure
		if errors.As(err, &f) {
			return err
		}
		return failf("restore backup %s: %v%s", m.ID, err, diskFull(pg.data))
	}

	if err := r.phase(ctx, PhaseRecovery, func(ctx context.Context) (int64, error) {
		return 0, r.startRestored(ctx, pg)
	}); err != nil {
		var f *failure
		if errors.As(err, &f) {
			return err
		}
		return failf("start the restored cluster: %v", err)
	}
	return r.verifyAndMeasure(ctx, pg.url, m)
}

// pickPgBackRest picks the backup from `pgbackrest info` and records it.
func (r *runner) pickPgBackRest(ctx context.Context) (backup.Manifest, error) {
	var m backup.Manifest
	if err := r.phase(ctx, PhasePick, func(ctx context.Context) (int64, error) {
		all, err := backup.ListPgBackRest(ctx, r.b)
		if err != nil {
			return 0, err
		}
		m, err = r.pickListed(all, "stanza "+r.b.Stanza)
		return 0, err
	}); err != nil {
		if errors.Is(err, backup.ErrNoBackup) {
			return m, failf("no backup to restore: %v", err)
		}
		var f *failure
		if errors.As(err, &f) {
			return m, err
		}
		return m, failf("list pgBackRest backups: %v", err)
	}
	where := "pgBackRest stanza " + r.b.Stanza
	if r.b.PgbackrestConfig != "" {
		where += " (" + r.b.PgbackrestConfig + ")"
	}
	r.useManifest(where, m)
	return m, nil
}

// pgbackrestRestore restores a backup of a pgBackRest stanza for real:
// `pgbackrest restore` into the empty data directory the target names
// (pgdata:/path), as the postgres OS user when Steward runs as root. It
// starts nothing — the new cluster's recovery replays the archived WAL and
// ends on a new timeline once it starts, which is the operator's call (the
// original may still run; the recovery target may need choosing) — so the
// verification is of the restored files, and the report's next steps say
// how to start it. The restored cluster keeps the backup's archive settings
// (--archive-mode=preserve): it is meant to become the primary, and a
// primary that does not archive has no point-in-time recovery.
func (r *runner) pgbackrestRestore(ctx context.Context) error {
	dir, ok := strings.CutPrefix(r.target, PgDataPrefix)
	if !ok || !filepath.IsAbs(dir) {
		return notRunf("backup %s is a pgBackRest backup: restore it into a data directory (--to %s/path/to/empty/dir)", r.b.Name, PgDataPrefix)
	}
	dir = filepath.Clean(dir)
	m, err := r.pickPgBackRest(ctx)
	if err != nil {
		return err
	}
	r.rep.Scratch = "target data directory " + dir
	cred, err := clusterCred()
	if err != nil {
		return notRunf("%v", err)
	}
	if err := prepareDataDir(ctx, dir, cred); err != nil {
		return err
	}
	if err := r.phase(ctx, PhaseRestoreData, func(ctx context.Context) (int64, error) {
		argv := backup.PgBackRestRestoreCommand(r.b, m.ID, dir)
		for i, a := range argv {
			if a == "--archive-mode=off" {
				argv[i] = "--archive-mode=preserve"
			}
		}
		r.rep.Commands = append(r.rep.Commands, shellJoin(argv))
		if v, err := runAs(ctx, cred, argv[0], "version"); err == nil {
			r.rep.ToolVersions["restore"] = strings.TrimSpace(string(v))
		}
		if _, err := runAs(ctx, cred, argv[0], argv[1:]...); err != nil {
			return 0, err
		}
		return m.Size, nil
	}); err != nil {
		// pgBackRest says "unable to write" without the cause: a full disk
		// is seen on the disk itself, before the partial restore is gone.
		full := diskFull(dir)
		// The directory was empty: what is in it now is the partial
		// restore, which would make the next attempt refuse it.
		cleared := "the partial restore was removed, " + dir + " is empty again"
		if cerr := clearDir(dir); cerr != nil {
			cleared = fmt.Sprintf("the partial restore is left in %s (%v): empty it before trying again", dir, cerr)
		}
		var f *failure
		if errors.As(err, &f) {
			return failf("%s%s (%s)", f.msg, full, cleared)
		}
		return failf("restore backup %s: %v%s (%s)", m.ID, err, full, cleared)
	}

	var major string
	if err := r.phase(ctx, PhaseVerify, func(ctx context.Context) (int64, error) {
		var v Verification
		major, v = checkDataDir(dir, m.ID)
		r.rep.Verifications = append(r.rep.Verifications, v, r.verifyRowCounts(ctx, "", m))
		// What needs the server is listed, the queries with it, for after
		// the start.
		const notStarted = "not run: the restored cluster is not started"
		for _, a := range r.d.Verify {
			r.rep.Verifications = append(r.rep.Verifications, Verification{Name: firstNonEmpty(a.Name, a.SQL), SQL: a.SQL, Expect: a.Expect,
				Status: "skipped", Detail: notStarted + "; run the query once it is"})
		}
		if r.d.Amcheck {
			r.rep.Verifications = append(r.rep.Verifications, Verification{Name: "amcheck", Status: "skipped", Detail: notStarted + "; run pg_amcheck --heapallindexed once it is"})
		}
		checks := 0
		for _, c := range r.svc.Checks {
			if c.Database == r.b.Database {
				checks++
			}
		}
		if checks > 0 {
			r.rep.Verifications = append(r.rep.Verifications, Verification{Name: "integrity checks", Status: "skipped",
				Detail: fmt.Sprintf("%s; the service's %d checks on %s run against it once it serves the database", notStarted, checks, r.b.Database)})
		}
		if v.Status != "passed" {
			return 0, failf("verification failed: %s: %s", v.Name, v.Detail)
		}
		return 0, nil
	}); err != nil {
		return err
	}
	r.rep.RTOSeconds = secondsPtr(r.deps.now().Sub(r.start))
	// Recovery will replay WAL archived after the backup: its stop time is
	// the oldest point the restore reaches, the bound the RPO can state.
	r.rep.Freshness, r.rep.RPOSource = m.Time().UTC().Format(time.RFC3339Nano), RPOSnapshotTime
	r.rep.RPOSeconds = secondsPtr(max(0, r.start.Sub(m.Time())))
	r.rep.NextSteps = r.startSteps(dir, major, cred)
	for _, s := range r.rep.NextSteps {
		r.progressf("next: %s", s)
	}
	return nil
}

// prepareDataDir makes sure dir can take a restore: an empty directory (or
// a new one under an existing parent), owned by the cluster's OS user with
// mode 0700, as PostgreSQL requires. A directory with anything in it is
// refused: a restore never overwrites.
func prepareDataDir(ctx context.Context, dir string, cred *syscall.Credential) (err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(dir, 0o700); err != nil {
			return failf("target data directory %s: %v; create it empty, or name a new directory in an existing one", dir, err)
		}
		defer func() {
			if err != nil {
				_ = os.Remove(dir) // made here, still empty
			}
		}()
	case err != nil:
		return failf("target data directory: %v", err)
	case !fi.IsDir():
		return failf("target data directory %s is not a directory", dir)
	default:
		entries, err := os.ReadDir(dir)
		if err != nil {
			return failf("target data directory: %v", err)
		}
		if len(entries) > 0 {
			names := make([]string, 0, 3)
			for _, e := range entries[:min(3, len(entries))] {
				names = append(names, e.Name())
			}
			return failf("target data directory %s is not empty (%d entries: %s…): a restore never overwrites; give an empty or new directory (nothing was changed)", dir, len(entries), strings.Join(names, ", "))
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return failf("target data directory: %v", err)
	}
	if cred == nil {
		return nil
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return failf("target data directory: give it to the %s OS user: %v", clusterUser, err)
	}
	if _, err := runAs(ctx, cred, "test", "-w", dir); err != nil {
		return failf("target data directory %s: the %s OS user cannot reach it: let it search every parent directory (chmod o+x), or choose another place", dir, clusterUser)
	}
	return nil
}

// describeDataDir says, for a restore's plan, what the target data
// directory is now.
func describeDataDir(dir string) string {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, perr := os.Stat(filepath.Dir(dir)); perr != nil {
			return fmt.Sprintf("target data directory %s does not exist, nor its parent: the restore will fail", dir)
		}
		return fmt.Sprintf("target data directory %s will be created", dir)
	case err != nil:
		return fmt.Sprintf("target data directory %s: %v", dir, err)
	case len(entries) > 0:
		return fmt.Sprintf("target data directory %s is not empty (%d entries): the restore will refuse it", dir, len(entries))
	}
	return fmt.Sprintf("target data directory %s is empty", dir)
}

// checkDataDir verifies what pgbackrest restored into dir: a PostgreSQL
// data directory (PG_VERSION, global/pg_control, backup_label) set to
// recover from the archive when started (recovery.signal and a
// restore_command; recovery.conf before PostgreSQL 12). It returns the
// major version.
func checkDataDir(dir, label string) (string, Verification) {
	v := Verification{Name: "data directory", Status: "failed"}
	raw, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		v.Detail = fmt.Sprintf("not a PostgreSQL data directory: %v", err)
		return "", v
	}
	major := strings.TrimSpace(string(raw))
	var missing []string
	for _, f := range []string{"global/pg_control", "backup_label"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			missing = append(missing, f)
		}
	}
	signal, conf := "recovery.signal", "postgresql.auto.conf"
	if n, err := strconv.Atoi(major); err == nil && n < 12 {
		signal, conf = "recovery.conf", "recovery.conf"
	}
	if _, err := os.Stat(filepath.Join(dir, signal)); err != nil {
		missing = append(missing, signal)
	}
	if c, _ := os.ReadFile(filepath.Join(dir, conf)); !bytes.Contains(c, []byte("restore_command")) {
		missing = append(missing, "restore_command in "+conf)
	}
	if len(missing) > 0 {
		v.Detail = fmt.Sprintf("PostgreSQL %s data directory without %s", major, strings.Join(missing, ", "))
		return major, v
	}
	v.Status, v.Detail = "passed", fmt.Sprintf("PostgreSQL %s data directory of backup %s, set to recover from the archive when started (%s, restore_command)", major, label, signal)
	return major, v
}

// startSteps say how to start the restored data directory.
func (r *runner) startSteps(dir, major string, cred *syscall.Credential) []string {
	pgCtl, err := r.pgBin(major, "pg_ctl")
	if err != nil {
		pgCtl = "pg_ctl"
	}
	start := shellJoin([]string{pgCtl, "--pgdata=" + dir, "--log=" + filepath.Join(dir, "startup.log"), "start"})
	if cred != nil {
		start = "runuser -u " + clusterUser + " -- " + start
	}
	steps := []string{"start it: " + start}
	if _, err := os.Stat(filepath.Join(dir, "postgresql.conf")); err != nil {
		steps = append(steps, "the backup has no postgresql.conf (the cluster kept its configuration elsewhere, e.g. /etc/postgresql): copy it into "+dir+" or add -o '-c config_file=PATH'")
	}
	steps = append(steps,
		"if the original cluster still runs on this host, give the copy another port (-o '-p PORT')",
		"at start, recovery replays the WAL archived in stanza "+r.b.Stanza+" after the backup, then promotes to a new timeline; the copy keeps the backup's archive settings (--archive-mode=preserve): once promoted, it archives as the original did")
	return steps
}

// diskFull returns, when the file system of dir has (almost) no space left
// for the cluster's owner, a note saying so to append to an error.
func diskFull(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return ""
	}
	free, size := int64(st.Bavail)*int64(st.Bsize), int64(st.Blocks)*int64(st.Bsize)
	if free >= 1<<20 {
		return ""
	}
	return fmt.Sprintf("; the disk of %s is full: no space left on device (%s free of %s)", dir, humanBytes(free), humanBytes(size))
}

// clearDir removes everything in dir, not dir itself.
func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

// scratchPGData creates the labelled scratch directory with an empty data
// directory owned by the cluster's user. Its Scratch has no URL (the
// server starts after the restore); destroying it stops the server and
// removes the directory through the postgres engine's Leftovers.
func (r *runner) scratchPGData(ctx context.Context, opts dbx.ScratchOptions) (*pgData, *dbx.Scratch, error) {
	if opts.Dir == "" {
		return nil, nil, errors.New("scratch data directory needs a parent directory")
	}
	cred, err := clusterCred()
	if err != nil {
		return nil, nil, err
	}
	base, err := scratchBase(ctx, cred, opts.Dir)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(base, opts.Label+"-")
	if err != nil {
		return nil, nil, fmt.Errorf("create scratch data directory: %w", err)
	}
	pg := &pgData{dir: dir, data: filepath.Join(dir, "data"), sock: filepath.Join(dir, "sock"),
		hba: filepath.Join(dir, "pg_hba.conf"), log: filepath.Join(dir, "server.log"), cred: cred}
	label, _ := json.MarshalIndent(scratchLabelData{Label: opts.Label, Engine: r.engine.Name(), Parent: opts.Dir, Created: r.deps.now()}, "", "  ")
	err = os.WriteFile(filepath.Join(dir, scratchLabelFile), append(label, '\n'), 0o644)
	for _, d := range []string{pg.data, pg.sock} {
		if err == nil {
			err = os.Mkdir(d, 0o700)
		}
	}
	if err == nil {
		err = pg.chown(dir, pg.data, pg.sock)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("create scratch data directory: %w", err)
	}
	desc := "scratch PostgreSQL data directory " + pg.data
	sc := dbx.NewScratch("", opts.Label, desc, func(ctx context.Context) error {
		if _, err := r.engine.Leftovers(ctx, dbx.ScratchOptions{Kind: opts.Kind, Dir: opts.Dir, Label: opts.Label}, nil); err != nil {
			return err
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("scratch data directory %s is still there after its removal", dir)
		}
		return nil
	})
	return pg, sc, nil
}

// chown gives paths to the cluster's owner.
func (pg *pgData) chown(paths ...string) error {
	if pg.cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// startRestored starts PostgreSQL on the restored data directory, on a
// free 127.0.0.1 port and a socket in the scratch directory, and waits
// until recovery has finished (promoting when recovery paused). Steward
// connects through the socket, whose directory only the cluster's owner
// can reach, with trust authentication: the restored cluster's own
// pg_hba.conf is not used, and TCP connections need the role's password.
func (r *runner) startRestored(ctx context.Context, pg *pgData) error {
	version, err := os.ReadFile(filepath.Join(pg.data, "PG_VERSION"))
	if err != nil {
		return fmt.Errorf("restored data directory: %w", err)
	}
	pgCtl, err := r.pgBin(strings.TrimSpace(string(version)), "pg_ctl")
	if err != nil {
		return err
	}
	// A cluster whose configuration lives outside the data directory
	// (Debian's /etc/postgresql) restores without postgresql.conf.
	conf := filepath.Join(pg.data, "postgresql.conf")
	if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(conf, []byte("# written by Steward: the backup has no postgresql.conf\n"), 0o600); err != nil {
			return err
		}
		if err := pg.chown(conf); err != nil {
			return err
		}
	}
	hba := "# Steward drill scratch: trust on the private socket, passwords over loopback TCP\n" +
		"local all all trust\nhost all all 127.0.0.1/32 md5\n"
	if err := os.WriteFile(pg.hba, []byte(hba), 0o600); err != nil {
		return err
	}
	if err := pg.chown(pg.hba); err != nil {
		return err
	}
	wait := 3600
	if dl, ok := ctx.Deadline(); ok {
		wait = max(1, int(time.Until(dl).Seconds()))
	}
	var port int
	for attempt := 0; ; attempt++ {
		if port, err = freePort(); err != nil {
			return err
		}
		o := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c hba_file=%s "+
			"-c ssl=off -c archive_mode=off -c logging_collector=off -c fsync=off -c synchronous_commit=off",
			port, shellQuote(pg.sock), shellQuote(pg.hba))
		argv := []string{pgCtl, "--pgdata=" + pg.data, "--log=" + pg.log, "--wait", "--timeout=" + strconv.Itoa(wait), "--options=" + o, "start"}
		if attempt == 0 {
			r.rep.Commands = append(r.rep.Commands, shellJoin(argv))
		}
		_, err = runAs(ctx, pg.cred, argv[0], argv[1:]...)
		if err == nil {
			break
		}
		log, _ := os.ReadFile(pg.log)
		// Another process may have taken the port between our check and
		// the server's bind: try another one.
		if attempt == 2 || !bytes.Contains(log, []byte("already in use")) {
			return fmt.Errorf("%w; server log: %s", err, logTail(log))
		}
	}
	return r.awaitRecovery(ctx, pg, port)
}

// recoveryState is "done" once recovery has finished and the cluster
// accepts writes.
const recoveryState = `SELECT CASE WHEN NOT pg_is_in_recovery() THEN 'done' WHEN pg_is_wal_replay_paused() THEN 'paused' ELSE 'recovering' END`

// awaitRecovery connects as a role the restored cluster has — the source
// URL's user, else postgres — to its source database, and waits until
// recovery has finished.
func (r *runner) awaitRecovery(ctx context.Context, pg *pgData, port int) error {
	users, db := r.restoredLogin()
	promoted := false
	var last error
	for {
		u := url.URL{Scheme: "postgres", User: url.User(users[0]), Path: "/" + db,
			RawQuery: url.Values{"host": {pg.sock}, "port": {strconv.Itoa(port)}, "sslmode": {"disable"}}.Encode()}
		pg.url = u.String()
		state, err := r.engine.QueryValue(ctx, pg.url, recoveryState)
		switch {
		case err == nil && state == "done":
			r.rep.Scratch = fmt.Sprintf("restored PostgreSQL %s in %s on 127.0.0.1:%d, database %s", r.rep.BackupID, pg.data, port, db)
			return nil
		case err == nil && state == "paused" && !promoted:
			// A recovery target in the restored configuration paused
			// replay: end recovery there, as a restore would.
			r.progressf("recovery paused: promoting")
			if _, err := r.engine.QueryValue(ctx, pg.url, "SELECT pg_promote(true, 60)"); err != nil {
				return fmt.Errorf("promote the restored cluster: %w", err)
			}
			promoted = true
			continue
		case err != nil && strings.Contains(err.Error(), "role \""+users[0]+"\" does not exist") && len(users) > 1:
			users = users[1:]
			continue
		case err != nil && strings.Contains(err.Error(), "does not exist"):
			return fmt.Errorf("connect to the restored cluster: %w", err)
		case err != nil:
			last = err
			if !pg.running() {
				log, _ := os.ReadFile(pg.log)
				return fmt.Errorf("the restored server stopped during recovery: %v; server log: %s", err, logTail(log))
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("recovery did not finish: %w (last: %v)", ctx.Err(), last)
			}
			return fmt.Errorf("recovery did not finish: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// restoredLogin returns the roles to try, best first, and the database to
// verify: the user and database of the source database's URL. When the
// URL cannot be resolved here, the postgres role and database.
func (r *runner) restoredLogin() ([]string, string) {
	users, db := []string{}, "postgres"
	if raw, err := r.db.URL.Resolve(); err == nil {
		if u, err := url.Parse(raw); err == nil {
			if u.User != nil && u.User.Username() != "" {
				users = append(users, u.User.Username())
			}
			if name := strings.TrimPrefix(u.Path, "/"); name != "" {
				db = name
			}
		}
	} else {
		r.log.Warn("source database url not resolvable; verifying database postgres of the restored cluster", "err", err)
	}
	if len(users) == 0 || users[0] != "postgres" {
		users = append(users, "postgres")
	}
	return users, db
}

// running reports whether the postmaster of the data directory is alive.
func (pg *pgData) running() bool {
	b, err := os.ReadFile(filepath.Join(pg.data, "postmaster.pid"))
	if err != nil {
		return false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 1 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// pgBin finds a PostgreSQL program of the restored cluster's major
// version (a server only starts data of its own major version), else the
// engine's.
func (r *runner) pgBin(major, name string) (string, error) {
	p := filepath.Join("/usr/lib/postgresql", major, "bin", name)
	if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
		return p, nil
	}
	if e, ok := r.engine.(interface{ Bin(string) (string, error) }); ok {
		return e.Bin(name)
	}
	return exec.LookPath(name)
}

// clusterCred is the credential the restored cluster runs as: nil when
// Steward is not root, else the postgres OS user's, with no supplementary
// groups.
func clusterCred() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(clusterUser)
	if err != nil {
		return nil, fmt.Errorf("steward runs as root, and PostgreSQL refuses root: need OS user %q to own the restored cluster: %w", clusterUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", clusterUser, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", clusterUser, u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// scratchBase returns where the scratch directory goes: dir, or — when the
// cluster's user cannot reach dir (a 0700 directory of root) — the
// fallback the postgres engine uses, $TMPDIR/steward-scratch, where its
// Leftovers also looks (the label file still names dir).
func scratchBase(ctx context.Context, cred *syscall.Credential, dir string) (string, error) {
	if cred == nil {
		return dir, nil
	}
	cmd := exec.CommandContext(ctx, "test", "-x", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if cmd.Run() == nil {
		return dir, nil
	}
	alt := filepath.Join(os.TempDir(), "steward-scratch")
	if err := os.Mkdir(alt, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("scratch data directory: %w", err)
	}
	fi, err := os.Lstat(alt)
	if err != nil {
		return "", fmt.Errorf("scratch data directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("scratch data directory: %s must be a directory owned by root and writable only by it; remove it or choose a work directory the %s user can reach", alt, clusterUser)
	}
	if err := os.Chmod(alt, 0o711); err != nil {
		return "", fmt.Errorf("scratch data directory: %w", err)
	}
	return alt, nil
}

// runAs runs a program as cred (nil: as ourselves) in its own process
// group, killed with its children when ctx ends, and returns its stdout;
// its error carries the end of its output.
func runAs(ctx context.Context, cred *syscall.Credential, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(name), ctx.Err())
		}
		out := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
		return nil, fmt.Errorf("%s: %w: %s", filepath.Base(name), err, logTail([]byte(out)))
	}
	return stdout.Bytes(), nil
}

// logTail is the end of a tool's output or a server log, for messages.
func logTail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 1500 {
		s = "…" + s[len(s)-1500:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
