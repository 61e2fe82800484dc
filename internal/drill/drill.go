package drill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// Sentinel errors callers branch on.
var (
	// ErrAlreadyRunning means the same drill is running now.
	ErrAlreadyRunning = errors.New("drill already running")
	// ErrFailed means the drill ran and failed: a verification, an
	// objective, or a step of the restore (a bad backup is a finding).
	ErrFailed = errors.New("drill failed")
	// ErrNotRun means the drill could not run to the end (Steward stopped,
	// a config or environment problem): status error.
	ErrNotRun = errors.New("drill could not run")
	// ErrUnsupported means the backup method cannot be drilled yet.
	ErrUnsupported = errors.New("not supported")
)

// EventFailed is the notification event of a failed drill.
const EventFailed = "drill.failed"

// DefaultTimeout bounds each phase when the drill sets no timeout.
const DefaultTimeout = 2 * time.Hour

// teardownTimeout bounds the teardown, which runs on a fresh context.
const teardownTimeout = 2 * time.Minute

// Notifier queues a notification; the outbox delivers it (notify.Outbox).
type Notifier interface {
	Enqueue(ctx context.Context, m notify.Message) ([]int64, error)
}

// amchecker is implemented by engines that can check index and heap
// integrity (PostgreSQL's pg_amcheck).
type amchecker interface {
	Amcheck(ctx context.Context, url string) (string, error)
}

// Deps are what drills use.
type Deps struct {
	Store    *store.Store
	Engines  *dbx.Registry
	Audit    auth.AuditFunc // required
	Notifier Notifier       // optional
	Logger   *slog.Logger
	// WorkDir holds fetched backups and ephemeral scratch servers; default
	// the OS temp directory.
	WorkDir string
	// Progress, when set, receives one line per phase as it starts and
	// ends (the CLI passes stderr).
	Progress io.Writer
	// Config returns the current config; CleanLeftovers reads drill
	// timeouts and scratch settings from it.
	Config func() *config.Config
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

func (d *Deps) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Deps) workDir() string {
	if d.WorkDir != "" {
		return d.WorkDir
	}
	return os.TempDir()
}

// RunOptions select what a drill restores and who asked.
type RunOptions struct {
	// BackupID restores this backup (ID or SERVICE/BACKUP/ID) instead of
	// the drill's pick.
	BackupID string
	// Actor is recorded as who ran the drill, e.g. user:alice or
	// system:schedule.
	Actor string
}

// Run runs drill d of svc now. It returns the report of a recorded run and
// nil when it passed; a failed drill returns its report and an error
// wrapping ErrFailed (or ErrNotRun when it could not run to the end).
// ErrAlreadyRunning is returned, with no report, when the same drill is
// running.
func Run(ctx context.Context, deps Deps, svc *config.Service, d *config.Drill, opts RunOptions) (*Report, error) {
	if d == nil {
		return nil, errors.New("run drill: no drill given")
	}
	b := svc.Backup(d.Backup)
	if b == nil {
		return nil, fmt.Errorf("drill %s/%s: unknown backup %q", svc.Name, d.Name, d.Backup)
	}
	r := &runner{deps: deps, svc: svc, d: d, b: b, mode: "drill", drillName: d.Name, backupID: opts.BackupID, actor: actorOr(opts.Actor)}
	return r.run(ctx)
}

func actorOr(a string) string {
	if a == "" {
		return "system:steward"
	}
	return a
}

// runner is one drill or real restore in progress.
type runner struct {
	deps      Deps
	svc       *config.Service
	d         *config.Drill
	b         *config.Backup
	mode      string // drill | restore
	drillName string // the drill_runs drill column
	backupID  string
	actor     string
	target    string // restore: the target URL (resolved); "" for scratch
	targetRef string // restore: the target as given, for the report

	log     *slog.Logger
	timeout time.Duration
	start   time.Time
	rep     *Report
	row     store.DrillRunRow
	engine  dbx.Engine
	db      *config.Database
	// scratch creates ephemeral scratch; nil means the engine's Scratch.
	scratch func(ctx context.Context, opts dbx.ScratchOptions) (*dbx.Scratch, error)

	mu sync.Mutex // guards rep.Phases while a phase runs
}

// failure is a drill outcome that is not a pass.
type failure struct {
	status string
	msg    string
}

func (f *failure) Error() string { return f.msg }

func failf(format string, args ...any) error {
	return &failure{status: StatusFailed, msg: fmt.Sprintf(format, args...)}
}

func notRunf(format string, args ...any) error {
	return &failure{status: StatusError, msg: fmt.Sprintf(format, args...)}
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	r.log = r.deps.logger().With("service", r.svc.Name, "drill", r.drillName, "mode", r.mode)
	r.start = r.deps.now()
	r.timeout = DefaultTimeout
	if r.d.Timeout != "" {
		t, err := config.ParseDuration(r.d.Timeout)
		if err != nil {
			return nil, fmt.Errorf("drill %s/%s: timeout: %w", r.svc.Name, r.drillName, err)
		}
		r.timeout = t
	}
	r.rep = &Report{
		Mode: r.mode, Service: r.svc.Name, Drill: r.drillName, Database: r.b.Database, Status: StatusRunning,
		StartedAt: r.start, Actor: r.actor, Phases: []Phase{}, Verifications: []Verification{}, Commands: []string{},
		ToolVersions: map[string]string{}, Objectives: objectives(r.svc),
	}
	row, err := r.deps.Store.StartDrillRun(ctx, store.DrillRunRow{
		Service: r.svc.Name, Drill: r.drillName, Actor: r.actor, StartedAt: r.start, Report: "{}",
	}, r.start.Add(-r.timeout))
	if errors.Is(err, store.ErrDrillRunning) {
		return nil, fmt.Errorf("%w: %w", ErrAlreadyRunning, err)
	}
	if err != nil {
		return nil, err
	}
	r.row = row
	r.rep.RunID = row.ID
	r.log = r.log.With("run", row.ID)

	runErr := r.steps(ctx)
	return r.finish(ctx, runErr)
}

// steps runs every phase; teardown happens in provision's deferred path.
func (r *runner) steps(ctx context.Context) (err error) {
	r.db = r.svc.Database(r.b.Database)
	if r.db == nil {
		return notRunf("backup %s names unknown database %q", r.b.Name, r.b.Database)
	}
	r.rep.Engine = r.db.Engine
	if r.engine, err = r.deps.Engines.Get(r.db.Engine); err != nil {
		return notRunf("%v", err)
	}
	switch r.b.Method {
	case "pg_dump", "mysqldump", "sqlite":
		return r.repositorySteps(ctx)
	case "command":
		return r.commandSteps(ctx)
	case "pgbackrest":
		if r.mode == "restore" {
			return r.pgbackrestRestore(ctx)
		}
		return r.pgbackrestSteps(ctx)
	}
	return notRunf("backup %s: drills of method %s are %v", r.b.Name, r.b.Method, ErrUnsupported)
}

// repositorySteps drills a backup Steward took: its manifest and objects
// are in the repository.
func (r *runner) repositorySteps(ctx context.Context) (err error) {
	// Pick the backup.
	var repo *backup.Repository
	var m backup.Manifest
	if err := r.phase(ctx, PhasePick, func(ctx context.Context) (int64, error) {
		var err error
		if repo, err = backup.OpenRepository(ctx, r.b.Repository); err != nil {
			return 0, err
		}
		m, err = r.pick(ctx, repo)
		return 0, err
	}); err != nil {
		if repo != nil {
			repo.Close()
		}
		if errors.Is(err, backup.ErrNoBackup) {
			return failf("no backup to restore: %v", err)
		}
		return err
	}
	defer repo.Close()
	r.useManifest(repo.URL(), m)

	work, err := r.workDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// Scratch (or the real target), torn down whatever happens next.
	url, teardown, err := r.provision(ctx)
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

	identity := ""
	if m.Encrypted {
		if identity, err = backup.Identity(r.b); err != nil {
			return failf("decrypt: %v", err)
		}
		if identity == "" {
			return failf("backup %s is encrypted but backup %s has no encrypt.identity to decrypt it", m.ID, r.b.Name)
		}
	}
	var files []string
	if err := r.phaseGroup(ctx, PhaseFetch, func(ctx context.Context) ([]dbx.Phase, error) {
		f, phases, err := backup.Fetch(ctx, repo, m, work, identity, nil)
		files = f
		return phases, err
	}); err != nil {
		return r.fetchFailure(err)
	}

	// Fetch returns local paths of the restorable files (decrypted names);
	// the dump lists them relative to its directory.
	dump := m.Dump
	if len(files) > 0 {
		if dump.Files, err = relFiles(work, files); err != nil {
			return err
		}
	}
	return r.restoreAndVerify(ctx, &dump, work, url, m)
}

// workDir makes the directory a drill fetches into; the caller removes it.
func (r *runner) workDir() (string, error) {
	if err := os.MkdirAll(r.deps.workDir(), 0o700); err != nil {
		return "", notRunf("work directory: %v", err)
	}
	work, err := os.MkdirTemp(r.deps.workDir(), "steward-fetch-")
	if err != nil {
		return "", notRunf("work directory: %v", err)
	}
	return work, nil
}

// relFiles turns fetched paths into paths relative to the work directory,
// as a dump lists them.
func relFiles(work string, files []string) ([]string, error) {
	rel := make([]string, len(files))
	for i, f := range files {
		p, err := filepath.Rel(work, f)
		if err != nil {
			return nil, notRunf("fetched file %s: %v", f, err)
		}
		rel[i] = filepath.ToSlash(p)
	}
	return rel, nil
}

// restoreAndVerify restores the fetched dump with the engine into url,
// then verifies and measures.
func (r *runner) restoreAndVerify(ctx context.Context, dump *dbx.Dump, work, url string, m backup.Manifest) error {
	if err := r.phaseGroup(ctx, PhaseRestore, func(ctx context.Context) ([]dbx.Phase, error) {
		rr, err := r.engine.Restore(ctx, dump, work, url, dbx.RestoreOptions{Jobs: max(1, r.b.Jobs)})
		if rr == nil {
			return nil, err
		}
		r.rep.Commands = append(r.rep.Commands, rr.Commands...)
		if rr.ToolVersion != "" {
			r.rep.ToolVersions["restore"] = rr.ToolVersion
		}
		return rr.Phases, err
	}); err != nil {
		var f *failure
		switch {
		case errors.As(err, &f):
			return err
		case errors.Is(err, dbx.ErrNotEmpty):
			return failf("restore: %v (nothing was changed)", err)
		}
		return failf("restore: %v", err)
	}
	return r.verifyAndMeasure(ctx, url, m)
}

// verifyAndMeasure verifies the restored copy at url, measures RTO (drill
// start to verification passed) and RPO, and compares them with the
// objectives.
func (r *runner) verifyAndMeasure(ctx context.Context, url string, m backup.Manifest) error {
	var verifyErr error
	if err := r.phase(ctx, PhaseVerify, func(ctx context.Context) (int64, error) {
		verifyErr = r.verify(ctx, url, m)
		return 0, nil
	}); err != nil {
		return err
	}
	if verifyErr != nil {
		return verifyErr
	}
	r.rep.RTOSeconds = secondsPtr(r.deps.now().Sub(r.start))
	if err := r.measureRPO(ctx, url, m); err != nil {
		return err
	}
	if v, err := r.engine.ServerVersion(ctx, url); err == nil && v != "" {
		r.rep.ToolVersions["scratch_server"] = v
	}
	return r.objectivesMet()
}

// useManifest records the picked backup; where is the repository, stanza
// or command it came from.
func (r *runner) useManifest(where string, m backup.Manifest) {
	t := m.Time()
	r.rep.BackupID, r.rep.BackupRef, r.rep.BackupTime, r.rep.BackupBytes = m.ID, m.Ref(), &t, m.Size
	r.rep.Repository, r.rep.Encrypted = where, m.Encrypted
	r.row.BackupID = m.ID
	r.rep.BackupCmds = append([]string{}, m.Dump.Commands...)
	if len(r.rep.BackupCmds) == 0 {
		r.rep.BackupCmds = append(r.rep.BackupCmds, m.Commands...)
	}
	if m.ToolVersion != "" {
		r.rep.ToolVersions["backup"] = m.ToolVersion
	} else if m.Dump.ToolVersion != "" {
		r.rep.ToolVersions["backup"] = m.Dump.ToolVersion
	}
	if v := firstNonEmpty(m.ServerVersion, m.Dump.ServerVersion); v != "" {
		r.rep.ToolVersions["source_server"] = v
	}
	r.progressf("backup %s (%s, %s, taken %s)", m.Ref(), m.Method, humanBytes(m.Size), t.Format(time.RFC3339))
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// pick chooses the backup: a given id, the latest, or a random one within
// the drill's window.
func (r *runner) pick(ctx context.Context, repo *backup.Repository) (backup.Manifest, error) {
	if r.backupID != "" {
		ref := r.backupID
		if !strings.Contains(ref, "/") {
			ref = r.svc.Name + "/" + r.b.Name + "/" + ref
		}
		m, err := repo.Get(ctx, ref)
		if err != nil {
			return m, err
		}
		if m.Service != r.svc.Name || m.Backup != r.b.Name {
			return m, fmt.Errorf("%w %s of %s/%s (it belongs to %s/%s)", backup.ErrNoBackup, r.backupID, r.svc.Name, r.b.Name, m.Service, m.Backup)
		}
		return m, nil
	}
	if r.d.Pick != "random" {
		return repo.Latest(ctx, r.svc.Name, r.b.Name)
	}
	within, err := r.within()
	if err != nil {
		return backup.Manifest{}, err
	}
	all, err := repo.List(ctx, r.svc.Name, r.b.Name)
	if err != nil {
		return backup.Manifest{}, err
	}
	return r.pickRandom(all, within)
}

// pickRandom chooses one of the backups taken within the window before the
// drill started.
func (r *runner) pickRandom(all []backup.Manifest, within time.Duration) (backup.Manifest, error) {
	var cands []backup.Manifest
	for _, m := range all {
		if r.start.Sub(m.Time()) <= within {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return backup.Manifest{}, fmt.Errorf("%w of %s/%s within %s (%d older ones)", backup.ErrNoBackup, r.svc.Name, r.b.Name, r.d.Within, len(all))
	}
	return cands[mrand.IntN(len(cands))], nil
}

// within is how far back a random pick may go.
func (r *runner) within() (time.Duration, error) {
	if r.d.Within == "" {
		return 7 * 24 * time.Hour, nil
	}
	w, err := config.ParseDuration(r.d.Within)
	if err != nil {
		return 0, notRunf("within: %v", err)
	}
	return w, nil
}

// pickListed chooses from the backups a tool lists (pgBackRest, a list
// command), oldest first: a given id, the latest, or a random one within
// the drill's window. what names the list in errors.
func (r *runner) pickListed(all []backup.Manifest, what string) (backup.Manifest, error) {
	for i := range all {
		all[i].Service = r.svc.Name
		if all[i].Engine == "" {
			all[i].Engine = r.db.Engine
		}
	}
	if r.backupID != "" {
		id := r.backupID
		if strings.Contains(id, "/") {
			rest, ok := strings.CutPrefix(id, r.svc.Name+"/"+r.b.Name+"/")
			if !ok {
				return backup.Manifest{}, fmt.Errorf("%w %s of %s/%s (it names another backup)", backup.ErrNoBackup, r.backupID, r.svc.Name, r.b.Name)
			}
			id = rest
		}
		for _, m := range all {
			if m.ID == id {
				return m, nil
			}
		}
		return backup.Manifest{}, fmt.Errorf("%w %s in %s/%s: %s lists %s", backup.ErrNoBackup, id, r.svc.Name, r.b.Name, what, listedIDs(all))
	}
	if len(all) == 0 {
		return backup.Manifest{}, fmt.Errorf("%w of %s/%s yet: %s lists none", backup.ErrNoBackup, r.svc.Name, r.b.Name, what)
	}
	if r.d.Pick != "random" {
		return all[len(all)-1], nil
	}
	within, err := r.within()
	if err != nil {
		return backup.Manifest{}, err
	}
	return r.pickRandom(all, within)
}

// listedIDs names the listed backups for an error, newest first.
func listedIDs(all []backup.Manifest) string {
	if len(all) == 0 {
		return "none"
	}
	var ids []string
	for i := len(all) - 1; i >= 0 && len(ids) < 5; i-- {
		ids = append(ids, all[i].ID)
	}
	s := strings.Join(ids, ", ")
	if len(all) > len(ids) {
		s += fmt.Sprintf(" and %d older", len(all)-len(ids))
	}
	return s
}

// fetchFailure words a fetch error by what went wrong.
func (r *runner) fetchFailure(err error) error {
	var f *failure
	switch {
	case errors.As(err, &f):
		return err
	case errors.Is(err, backup.ErrChecksum):
		return failf("backup is corrupted or truncated, take another: %v", err)
	case errors.Is(err, backup.ErrDecrypt):
		return failf("%v", err)
	case errors.Is(err, backup.ErrNoBackup):
		return failf("backup %s is incomplete: %v", r.rep.BackupID, err)
	}
	return failf("fetch backup %s: %v", r.rep.BackupID, err)
}

// phase times fn as one phase bounded by the per-phase timeout.
func (r *runner) phase(ctx context.Context, name string, fn func(ctx context.Context) (int64, error)) error {
	pctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	r.progressf("%s …", name)
	t0 := time.Now()
	n, err := fn(pctx)
	p := newPhase(name, time.Since(t0), n)
	err = r.phaseErr(ctx, pctx, name, err)
	if err != nil {
		p.Error = err.Error()
	}
	r.addPhases(p)
	return err
}

// phaseGroup times fn, which reports its own phases (fetch: fetch, verify
// checksum, decrypt; restore: restore data, build indexes, …). The whole
// group is bounded by the per-phase timeout.
func (r *runner) phaseGroup(ctx context.Context, name string, fn func(ctx context.Context) ([]dbx.Phase, error)) error {
	pctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	r.progressf("%s …", name)
	t0 := time.Now()
	sub, err := fn(pctx)
	took := time.Since(t0)
	err = r.phaseErr(ctx, pctx, name, err)
	var ps []Phase
	var sum time.Duration
	for _, s := range sub {
		ps = append(ps, phaseFrom(s))
		sum += s.Duration
	}
	if len(ps) == 0 {
		ps = append(ps, newPhase(name, took, 0))
	} else if err != nil && took-sum > 10*time.Millisecond {
		// The step that failed did not report itself.
		ps = append(ps, newPhase(name, took-sum, 0))
	}
	if err != nil {
		ps[len(ps)-1].Error = err.Error()
	}
	r.addPhases(ps...)
	return err
}

// phaseErr words a phase's error: a timeout names the phase and limit; a
// cancelled drill could not run.
func (r *runner) phaseErr(ctx, pctx context.Context, name string, err error) error {
	switch {
	case ctx.Err() != nil:
		return notRunf("%s: interrupted (%v)", name, context.Cause(ctx))
	case errors.Is(pctx.Err(), context.DeadlineExceeded):
		return failf("%s timed out after %s (the drill's per-phase timeout)", name, r.timeout)
	}
	return err
}

func (r *runner) addPhases(ps ...Phase) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Phases = append(r.rep.Phases, ps...)
	for _, p := range ps {
		line := fmt.Sprintf("%s: %.3fs", p.Name, p.Seconds)
		if p.Bytes > 0 {
			line += fmt.Sprintf(", %s, %.1f MB/s", humanBytes(p.Bytes), p.MBPerS)
		}
		if p.Error != "" {
			line += " — " + p.Error
		}
		r.progressf("%s", line)
	}
}

func (r *runner) progressf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.Debug(msg)
	if r.deps.Progress != nil {
		fmt.Fprintf(r.deps.Progress, "%s/%s: %s\n", r.svc.Name, r.drillName, msg)
	}
}

// verify checks the restored copy: row counts, SQL assertions, the
// service's integrity checks, amcheck.
func (r *runner) verify(ctx context.Context, url string, m backup.Manifest) error {
	var failed []string
	add := func(v Verification) {
		r.rep.Verifications = append(r.rep.Verifications, v)
		if v.Status != "passed" && v.Status != "skipped" {
			failed = append(failed, v.Name+": "+v.Detail)
		}
	}
	// Row counts scan every table; they run beside the SQL assertions
	// (which use their own connections), and this function waits for them.
	rowCounts := make(chan Verification, 1)
	go func() { rowCounts <- r.verifyRowCounts(ctx, url, m) }()
	asserts := r.verifyAssertions(ctx, url)
	add(<-rowCounts)
	for _, v := range asserts {
		add(v)
	}
	// The service's integrity checks, against the restored copy; only a
	// fail-severity check fails the drill.
	checks, checkFailures := r.verifyChecks(ctx, url)
	r.rep.Verifications = append(r.rep.Verifications, checks...)
	failed = append(failed, checkFailures...)
	if r.d.Amcheck {
		ac, ok := r.engine.(amchecker)
		switch {
		case !ok:
			add(Verification{Name: "amcheck", Status: "error", Detail: "amcheck is for PostgreSQL; engine " + r.engine.Name() + " has none"})
		default:
			out, err := ac.Amcheck(ctx, url)
			if err != nil {
				add(Verification{Name: "amcheck", Status: "failed", Detail: strings.TrimSpace(err.Error() + " " + out)})
			} else {
				add(Verification{Name: "amcheck", Status: "passed", Detail: firstNonEmpty(strings.TrimSpace(out), "no corruption found")})
			}
		}
	}
	for _, v := range r.rep.Verifications {
		r.progressf("verify %s: %s %s", v.Name, v.Status, v.Detail)
	}
	if len(failed) > 0 {
		return failf("verification failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// verifyAssertions runs the drill's SQL assertions in order.
func (r *runner) verifyAssertions(ctx context.Context, url string) []Verification {
	var res []Verification
	add := func(v Verification) { res = append(res, v) }
	for _, v := range r.d.Verify {
		name := v.Name
		if name == "" {
			name = v.SQL
		}
		out := Verification{Name: name, SQL: v.SQL, Expect: v.Expect}
		val, err := r.engine.QueryValue(ctx, url, v.SQL)
		if err != nil {
			out.Status, out.Detail = "error", err.Error()
			add(out)
			continue
		}
		ok, err := CheckExpect(v.Expect, val)
		switch {
		case err != nil:
			out.Status, out.Detail = "error", err.Error()
		case ok:
			out.Status, out.Detail = "passed", fmt.Sprintf("value %s %s", quoteValue(val), strings.TrimSpace(v.Expect))
		default:
			out.Status, out.Detail = "failed", fmt.Sprintf("value %s does not satisfy %s", quoteValue(val), strings.TrimSpace(v.Expect))
		}
		add(out)
	}
	return res
}

// verifyRowCounts compares the restored copy's row counts with the
// manifest's.
func (r *runner) verifyRowCounts(ctx context.Context, url string, m backup.Manifest) Verification {
	want := m.RowCounts
	if len(want) == 0 {
		want = m.Dump.RowCounts
	}
	mode := r.d.RowCounts
	switch {
	case r.b.Method == "pgbackrest" || r.b.Method == "command":
		// These tools record no row counts to compare with.
		return Verification{Name: "row counts", Status: "skipped", Detail: "not available for " + r.b.Method + " backups"}
	case mode == "off":
		return Verification{Name: "row counts", Status: "skipped", Detail: "row_counts: off"}
	case len(want) == 0:
		return Verification{Name: "row counts", Status: "skipped", Detail: "the manifest has no row counts"}
	case mode == "":
		mode = "exact"
	}
	got, err := r.engine.RowCounts(ctx, url)
	if err != nil {
		return Verification{Name: "row counts", Status: "error", Detail: err.Error()}
	}
	problems, summary, err := compareRowCounts(mode, want, got)
	switch {
	case err != nil:
		return Verification{Name: "row counts", Status: "error", Detail: err.Error()}
	case len(problems) > 0:
		return Verification{Name: "row counts", Status: "failed", Detail: strings.Join(problems, "; ")}
	}
	return Verification{Name: "row counts", Status: "passed", Detail: summary}
}

func quoteValue(v string) string {
	if v == "" {
		return "NULL"
	}
	if len(v) > 80 {
		v = v[:77] + "..."
	}
	return v
}

// measureRPO measures the data lost if the source failed at drill start:
// start minus the newest data point, read from the restored copy when a
// freshness query is configured, else the manifest's freshness value, else
// the snapshot time.
func (r *runner) measureRPO(ctx context.Context, url string, m backup.Manifest) error {
	var newest time.Time
	query := firstNonEmpty(r.d.Freshness, r.b.Freshness)
	if query != "" {
		val, err := r.engine.QueryValue(ctx, url, query)
		if err == nil {
			newest, err = parseFreshness(val)
		}
		if err != nil {
			r.rep.Verifications = append(r.rep.Verifications, Verification{Name: "freshness", Status: "error", SQL: query, Detail: err.Error()})
			return failf("freshness query on the restored copy: %v", err)
		}
		r.rep.RPOSource = RPORestoredData
	}
	if newest.IsZero() {
		if f := firstNonEmpty(m.Freshness, m.Dump.Freshness); f != "" {
			if t, err := parseFreshness(f); err == nil {
				newest, r.rep.RPOSource = t, RPOManifestFreshness
			}
		}
	}
	if newest.IsZero() {
		newest, r.rep.RPOSource = m.Time(), RPOSnapshotTime
	}
	r.rep.Freshness = newest.UTC().Format(time.RFC3339Nano)
	rpo := r.start.Sub(newest)
	if rpo < 0 {
		rpo = 0
	}
	r.rep.RPOSeconds = secondsPtr(rpo)
	r.progressf("RTO %.3fs, RPO %.3fs (from %s: newest data %s)", *r.rep.RTOSeconds, *r.rep.RPOSeconds, r.rep.RPOSource, r.rep.Freshness)
	return nil
}

// objectivesMet compares RTO and RPO with the service's objectives.
func (r *runner) objectivesMet() error {
	var miss []string
	check := func(name string, got, obj *float64) {
		if obj == nil || got == nil {
			return
		}
		v := Verification{Name: name + " objective", Status: "passed",
			Detail: fmt.Sprintf("%s %s within objective %s", name, fmtSeconds(*got), fmtSeconds(*obj))}
		if *got > *obj {
			v.Status, v.Detail = "failed", fmt.Sprintf("%s %s exceeds objective %s", name, fmtSeconds(*got), fmtSeconds(*obj))
			miss = append(miss, v.Detail)
		}
		r.rep.Verifications = append(r.rep.Verifications, v)
	}
	if r.mode != "drill" {
		return nil // a real restore is measured, not failed, against objectives
	}
	check("RTO", r.rep.RTOSeconds, r.rep.Objectives.RTOSeconds)
	check("RPO", r.rep.RPOSeconds, r.rep.Objectives.RPOSeconds)
	if len(miss) > 0 {
		return failf("objective missed: %s", strings.Join(miss, "; "))
	}
	return nil
}

func objectives(svc *config.Service) Objectives {
	var o Objectives
	if d, err := config.ParseDuration(svc.Objectives.RTO); svc.Objectives.RTO != "" && err == nil {
		o.RTOSeconds = secondsPtr(d)
	}
	if d, err := config.ParseDuration(svc.Objectives.RPO); svc.Objectives.RPO != "" && err == nil {
		o.RPOSeconds = secondsPtr(d)
	}
	return o
}

// finish records the outcome: the drill_runs row, the audit event and, on
// failure, an alert. It runs on a fresh context so that a cancelled drill
// is still recorded.
func (r *runner) finish(parent context.Context, runErr error) (*Report, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), teardownTimeout)
	defer cancel()
	now := r.deps.now()
	r.rep.FinishedAt = &now
	r.rep.Status = StatusPassed
	var retErr error
	if runErr != nil {
		var f *failure
		if !errors.As(runErr, &f) {
			f = &failure{status: StatusFailed, msg: runErr.Error()}
		}
		r.rep.Status, r.rep.Error = f.status, f.msg
		sentinel := ErrFailed
		if f.status == StatusError {
			sentinel = ErrNotRun
		}
		retErr = fmt.Errorf("%s %s/%s: %w: %s", r.mode, r.svc.Name, r.drillName, sentinel, f.msg)
	}
	raw, err := json.Marshal(r.rep)
	if err != nil {
		return r.rep, fmt.Errorf("encode drill report: %w", err)
	}
	r.row.State, r.row.FinishedAt, r.row.Error, r.row.Report = r.rep.Status, &now, r.rep.Error, string(raw)
	r.row.RTOSeconds, r.row.RPOSeconds, r.row.RPOSource, r.row.ScratchLabel = r.rep.RTOSeconds, r.rep.RPOSeconds, r.rep.RPOSource, r.rep.ScratchLabel
	var errs []error
	if err := r.deps.Store.UpdateDrillRun(ctx, r.row); err != nil {
		errs = append(errs, err)
	}
	event := "drill.run"
	if r.mode == "restore" {
		event = "restore.run"
	}
	details := map[string]any{"run_id": r.row.ID, "backup_id": r.rep.BackupID, "status": r.rep.Status}
	if r.rep.RTOSeconds != nil {
		details["rto_seconds"] = *r.rep.RTOSeconds
	}
	if r.rep.RPOSeconds != nil {
		details["rpo_seconds"], details["rpo_source"] = *r.rep.RPOSeconds, r.rep.RPOSource
	}
	if r.rep.Error != "" {
		details["error"] = r.rep.Error
	}
	if r.mode == "restore" {
		details["target"] = r.targetRef
	}
	if r.deps.Audit != nil {
		if err := r.deps.Audit(ctx, r.actor, event, r.svc.Name+"/"+r.drillName, r.rep.Status, details); err != nil {
			errs = append(errs, fmt.Errorf("audit %s: %w", event, err))
		}
	}
	if r.rep.Status != StatusPassed {
		r.log.Warn(r.mode+" failed", "status", r.rep.Status, "err", r.rep.Error)
		r.alert(ctx)
	} else {
		r.log.Info(r.mode+" passed", "rto_seconds", *r.rep.RTOSeconds, "rpo_seconds", *r.rep.RPOSeconds)
	}
	r.progressf("%s: %s", strings.ToUpper(r.rep.Status), firstNonEmpty(r.rep.Error, "verified"))
	if len(errs) > 0 {
		return r.rep, fmt.Errorf("record %s run %d: %w", r.mode, r.row.ID, errors.Join(errs...))
	}
	return r.rep, retErr
}

func (r *runner) alert(ctx context.Context) {
	if r.deps.Notifier == nil {
		return
	}
	what := "Drill"
	if r.mode == "restore" {
		what = "Restore"
	}
	fields := map[string]string{"status": r.rep.Status, "run": fmt.Sprint(r.row.ID)}
	if r.rep.BackupID != "" {
		fields["backup"] = r.rep.BackupID
	}
	if r.rep.Scratch != "" {
		fields["scratch"] = r.rep.Scratch
	}
	m := notify.Message{
		Event: EventFailed, Severity: notify.SeverityWarning, Service: r.svc.Name,
		Title:    fmt.Sprintf("%s %s/%s %s: %s", what, r.svc.Name, r.drillName, r.rep.Status, truncate(r.rep.Error, 160)),
		Text:     fmt.Sprintf("%s %s/%s started %s by %s ended %s.\nReason: %s\nScratch was removed. Details: steward drill history %s/%s", what, r.svc.Name, r.drillName, r.start.Format(time.RFC3339), r.actor, r.rep.Status, r.rep.Error, r.svc.Name, r.drillName),
		Fields:   fields,
		DedupKey: fmt.Sprintf("drill-run-%d", r.row.ID),
	}
	if r.mode == "restore" {
		m.Severity = notify.SeverityCritical
		m.Text = strings.Replace(m.Text, "Scratch was removed. ", "", 1)
	}
	if _, err := r.deps.Notifier.Enqueue(ctx, m); err != nil {
		r.log.Error("queue drill alert", "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func fmtSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
