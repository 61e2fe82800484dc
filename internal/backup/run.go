package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// Notifier queues alerts; *notify.Outbox is one.
type Notifier interface {
	Enqueue(ctx context.Context, m notify.Message) ([]int64, error)
}

// Events and audit actions of backups.
const (
	EventFailed = "backup.failed" // alert: a backup run failed
	AuditRun    = "backup.run"
	AuditDelete = "backup.retention"
)

// Deps is what Run needs from the rest of Steward.
type Deps struct {
	Store    *store.Store
	Engines  *dbx.Registry
	Audit    auth.AuditFunc
	Notifier Notifier
	Logger   *slog.Logger
	// Progress, when set, receives throttled progress reports.
	Progress func(Progress)
	// TempDir is where dumps are written before upload; "" is os.TempDir.
	TempDir string
	// Now is the clock for recorded times; nil is time.Now.
	Now func() time.Time
}

func (d Deps) withDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// cleanupTimeout bounds the cleanup after a failed backup, which runs even
// when the run's context was cancelled.
const cleanupTimeout = 2 * time.Minute

// Runs reports whether Steward takes backups with this method itself.
func Runs(method string) bool {
	switch method {
	case "pg_dump", "mysqldump", "sqlite":
		return true
	}
	return false
}

// Run takes one backup: it dumps the database through its engine into a
// temporary directory, uploads every file (age-encrypted when recipients
// are configured) with its SHA-256, and writes the manifest last. It records
// a backup_runs row and a backup.run audit event whatever the outcome,
// alerts on failure (removing what was uploaded), and applies retention
// after a success. Retention problems are logged and audited; they do not
// fail the backup.
func Run(ctx context.Context, deps Deps, svc *config.Service, b *config.Backup, actor string) (Manifest, error) {
	deps = deps.withDefaults()
	if deps.Store == nil || deps.Engines == nil {
		return Manifest{}, errors.New("backup: store and engines are required")
	}
	log := deps.Logger.With("service", svc.Name, "backup", b.Name)
	started := deps.Now().UTC().Truncate(time.Microsecond)
	m := Manifest{
		ID: NewID(started), Service: svc.Name, Backup: b.Name, Database: b.Database, Method: b.Method,
		StartedAt: started, Encrypted: len(b.Encrypt.Recipients) > 0, Recipients: b.Encrypt.Recipients,
	}
	run, err := deps.Store.InsertBackupRun(ctx, store.BackupRun{
		Service: svc.Name, Backup: b.Name, BackupID: m.ID, Method: b.Method, State: store.BackupRunning, Actor: actor, StartedAt: started,
	})
	if err != nil {
		return Manifest{}, fmt.Errorf("backup %s/%s: %w", svc.Name, b.Name, err)
	}
	log = log.With("id", m.ID, "run", run.ID)
	log.InfoContext(ctx, "backup started", "method", b.Method, "repository", redactURL(b.Repository))

	m, runErr := take(ctx, deps, svc, b, m, log)
	if runErr != nil {
		runErr = fmt.Errorf("backup %s/%s: %w", svc.Name, b.Name, runErr)
		fail(ctx, deps, log, run, svc, b, m, actor, runErr)
		return m, runErr
	}

	manifest, _ := json.Marshal(m)
	run.State, run.SizeBytes, run.Manifest, run.FinishedAt = store.BackupSucceeded, m.Size, string(manifest), &m.FinishedAt
	if _, err := deps.Store.FinishBackupRun(ctx, run); err != nil {
		log.ErrorContext(ctx, "record backup run", "err", err)
		return m, fmt.Errorf("backup %s/%s: %s was stored, but recording it failed: %w", svc.Name, b.Name, m.ID, err)
	}
	log.InfoContext(ctx, "backup succeeded", "size", m.Size, "objects", len(m.Objects), "seconds", m.FinishedAt.Sub(m.StartedAt).Seconds())
	if err := audit(ctx, deps, actor, svc, b, "ok", map[string]any{
		"id": m.ID, "run": run.ID, "method": m.Method, "size": m.Size, "objects": len(m.Objects), "encrypted": m.Encrypted,
		"snapshot_time": m.SnapshotTime, "seconds": m.FinishedAt.Sub(m.StartedAt).Seconds(),
	}); err != nil {
		return m, err
	}
	if deps.Notifier != nil {
		if _, err := deps.Notifier.Enqueue(ctx, notify.Message{
			Event: EventFailed, Severity: notify.SeverityWarning, Service: svc.Name, Resolve: true,
			Title: fmt.Sprintf("Backup %s/%s succeeded again", svc.Name, b.Name),
			Text:  fmt.Sprintf("Backup %s (%d bytes) was stored.", m.ID, m.Size), DedupKey: dedupKey(EventFailed, svc, b),
		}); err != nil {
			log.WarnContext(ctx, "queue backup recovery notice", "err", err)
		}
	}
	if deleted, err := retention(ctx, deps, svc, b, actor, log); err != nil {
		log.ErrorContext(ctx, "apply retention", "err", err, "deleted", deleted)
	}
	return m, nil
}

func dedupKey(event string, svc *config.Service, b *config.Backup) string {
	return event + ":" + svc.Name + "/" + b.Name
}

func audit(ctx context.Context, deps Deps, actor string, svc *config.Service, b *config.Backup, outcome string, details map[string]any) error {
	if deps.Audit == nil {
		return nil
	}
	if err := deps.Audit(ctx, actor, AuditRun, "backup:"+svc.Name+"/"+b.Name, outcome, details); err != nil {
		return fmt.Errorf("audit backup %s/%s: %w", svc.Name, b.Name, err)
	}
	return nil
}

// fail records a failed run: partial objects removed, run row failed,
// audit event, alert. It runs on a context that outlives a cancelled run.
func fail(ctx context.Context, deps Deps, log *slog.Logger, run store.BackupRun, svc *config.Service, b *config.Backup, m Manifest, actor string, runErr error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	log.ErrorContext(cctx, "backup failed", "err", runErr)
	cleanup := ""
	if b.Repository != "" && m.ID != "" {
		if repo, err := OpenRepository(cctx, b.Repository); err == nil {
			if err := repo.removeFolder(cctx, m.Service, m.Backup, m.ID); err != nil {
				cleanup = err.Error()
				log.ErrorContext(cctx, "remove partial backup", "err", err)
			}
			repo.Close()
		}
	}
	now := deps.Now().UTC()
	run.State, run.Error, run.FinishedAt, run.SizeBytes = store.BackupFailed, runErr.Error(), &now, 0
	if _, err := deps.Store.FinishBackupRun(cctx, run); err != nil {
		log.ErrorContext(cctx, "record failed backup run", "err", err)
	}
	details := map[string]any{"id": m.ID, "run": run.ID, "method": b.Method, "error": runErr.Error()}
	if cleanup != "" {
		details["cleanup_error"] = cleanup
	}
	if err := audit(cctx, deps, actor, svc, b, "error", details); err != nil {
		log.ErrorContext(cctx, "audit failed backup", "err", err)
	}
	if deps.Notifier != nil {
		if _, err := deps.Notifier.Enqueue(cctx, notify.Message{
			Event: EventFailed, Severity: notify.SeverityWarning, Service: svc.Name,
			Title:    fmt.Sprintf("Backup %s/%s failed", svc.Name, b.Name),
			Text:     runErr.Error(),
			Fields:   map[string]string{"backup": b.Name, "database": b.Database, "method": b.Method, "run": fmt.Sprint(run.ID)},
			DedupKey: dedupKey(EventFailed, svc, b),
		}); err != nil {
			log.ErrorContext(cctx, "queue backup failure alert", "err", err)
		}
	}
}

// take does the work of Run and returns the completed manifest.
func take(ctx context.Context, deps Deps, svc *config.Service, b *config.Backup, m Manifest, log *slog.Logger) (Manifest, error) {
	if !Runs(b.Method) {
		return m, fmt.Errorf("%w: %s backups are taken by their own tool; Steward lists and restores them", ErrNotRun, b.Method)
	}
	db := svc.Database(b.Database)
	if db == nil {
		return m, fmt.Errorf("unknown database %q in service %s", b.Database, svc.Name)
	}
	engine, err := deps.Engines.Get(db.Engine)
	if err != nil {
		return m, err
	}
	m.Engine = engine.Name()
	src, err := db.URL.Resolve()
	if err != nil {
		return m, fmt.Errorf("database %s url: %w", db.Name, err)
	}
	recipients, err := parseRecipients(b.Encrypt.Recipients)
	if err != nil {
		return m, err
	}
	repo, err := OpenRepository(ctx, b.Repository)
	if err != nil {
		return m, err
	}
	defer repo.Close()

	tmp, err := os.MkdirTemp(deps.TempDir, "steward-backup-")
	if err != nil {
		return m, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "dump")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return m, fmt.Errorf("temporary directory: %w", err)
	}

	opts := dbx.DumpOptions{Jobs: b.Jobs, Freshness: b.Freshness}
	if b.Method == "pg_dump" {
		opts.Format = b.Format
	}
	dumpProgress := newTracker(deps.Progress, "dump", 0)
	opts.Progress = dumpProgress.set
	d, err := engine.Dump(ctx, src, dir, opts)
	if err != nil {
		return m, fmt.Errorf("dump database %s: %w", db.Name, err)
	}
	dumpProgress.done()
	m.Dump = *d
	m.Engine, m.ServerVersion, m.ToolVersion = orDefault(d.Engine, m.Engine), d.ServerVersion, d.ToolVersion
	m.SnapshotTime, m.RowCounts, m.Freshness, m.SameSnapshot = d.SnapshotTime.UTC(), d.RowCounts, d.Freshness, d.SameSnapshot
	m.Commands = d.Commands

	files, total, err := dumpFiles(dir, d.Files)
	if err != nil {
		return m, err
	}
	upload := newTracker(deps.Progress, "upload", total)
	for _, f := range files {
		obj, err := putFile(ctx, repo, m, dir, f, recipients, upload)
		if err != nil {
			return m, err
		}
		m.Objects = append(m.Objects, obj)
		m.Size += obj.Size
		log.DebugContext(ctx, "object stored", "object", obj.Name, "size", obj.Size)
	}
	upload.done()
	m.FinishedAt = deps.Now().UTC().Truncate(time.Microsecond)
	if err := ctx.Err(); err != nil {
		return m, err
	}
	if err := repo.WriteManifest(ctx, m); err != nil {
		return m, err
	}
	return m, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// dumpFiles expands the dump's file list (directories are walked) into
// slash-separated paths relative to dir, with their total size.
func dumpFiles(dir string, names []string) ([]string, int64, error) {
	if len(names) == 0 {
		return nil, 0, errors.New("the dump wrote no files")
	}
	var out []string
	var total int64
	seen := map[string]bool{}
	for _, n := range names {
		if !filepath.IsLocal(filepath.FromSlash(n)) {
			return nil, 0, fmt.Errorf("dump file %q is outside the dump directory", n)
		}
		root := filepath.Join(dir, filepath.FromSlash(n))
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				return nil
			}
			if !e.Type().IsRegular() {
				return fmt.Errorf("dump file %s is not a regular file", p)
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if !seen[rel] {
				seen[rel] = true
				out = append(out, rel)
				total += info.Size()
			}
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("read dump: %w", err)
		}
	}
	return out, total, nil
}

// putFile uploads one dump file, encrypting it on the way when recipients
// are given.
func putFile(ctx context.Context, repo *Repository, m Manifest, dir, name string, recipients []age.Recipient, t *tracker) (Object, error) {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return Object{}, fmt.Errorf("read dump: %w", err)
	}
	defer f.Close()
	var src io.Reader = countingReader{r: f, t: t}
	if len(recipients) > 0 {
		if src, err = age.EncryptReader(src, recipients...); err != nil {
			return Object{}, fmt.Errorf("encrypt %s: %w", name, err)
		}
		name += encryptedSuffix
	}
	return repo.Put(ctx, m, name, src)
}
