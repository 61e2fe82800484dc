package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
)

// RestoreKindName is the action kind of a real restore.
const RestoreKindName = "restore.run"

// RestoreParams are the parameters of a restore.run action.
type RestoreParams struct {
	Service  string `json:"service,omitempty"` // defaults to the action's service
	Database string `json:"database"`
	BackupID string `json:"backup_id"`
	// To is the target database: a secret reference (env:NAME, file:PATH)
	// or a URL without a password. A pgBackRest backup restores a whole
	// cluster: its target is an empty data directory, pgdata:/path.
	To string `json:"to"`
}

// PgDataPrefix starts a restore target that is a PostgreSQL data directory
// (pgdata:/srv/pg/restored), the target of a pgBackRest backup.
const PgDataPrefix = "pgdata:"

// RestoreKind is the restore.run action: a real restore of a backup into a
// target database, through exactly the drill's code path (fetch, verify
// checksums, decrypt, restore, verify) without scratch or teardown.
type RestoreKind struct {
	config func() *config.Config
	deps   Deps
}

var _ action.Kind = (*RestoreKind)(nil)

// NewRestoreKind returns the restore.run kind; cfg returns the current
// config.
func NewRestoreKind(cfg func() *config.Config, deps Deps) *RestoreKind {
	return &RestoreKind{config: cfg, deps: deps}
}

// Name implements action.Kind.
func (k *RestoreKind) Name() string { return RestoreKindName }

// restoreTarget is a parsed, resolved restore.run action.
type restoreTarget struct {
	p      RestoreParams
	svc    *config.Service
	db     *config.Database
	b      *config.Backup
	d      *config.Drill // verification settings: the database's drill, if any
	m      backup.Manifest
	url    string // resolved target
	redact string // target for people
	pgdata string // the target data directory of a pgBackRest backup
}

func (k *RestoreKind) resolve(ctx context.Context, a *action.Action) (*restoreTarget, error) {
	var t restoreTarget
	if err := json.Unmarshal(a.Params, &t.p); err != nil {
		return nil, fmt.Errorf("%w: %v", action.ErrBadParams, err)
	}
	if t.p.Service == "" {
		t.p.Service = a.Service
	}
	if a.Service != "" && t.p.Service != a.Service {
		return nil, fmt.Errorf("%w: service %q in params differs from the action's %q", action.ErrBadParams, t.p.Service, a.Service)
	}
	if t.p.Database == "" || t.p.BackupID == "" || t.p.To == "" {
		return nil, fmt.Errorf("%w: restore.run needs database, backup_id and to", action.ErrBadParams)
	}
	cfg := k.config()
	if t.svc = cfg.Service(t.p.Service); t.svc == nil {
		return nil, fmt.Errorf("%w %q", action.ErrUnknownService, t.p.Service)
	}
	if t.db = t.svc.Database(t.p.Database); t.db == nil {
		return nil, fmt.Errorf("%w: service %s has no database %q", action.ErrBadParams, t.svc.Name, t.p.Database)
	}
	sec := config.Secret(t.p.To)
	switch {
	case sec.IsRef():
		t.redact = t.p.To
	case strings.HasPrefix(t.p.To, PgDataPrefix):
		t.redact = t.p.To
	default:
		if u, err := url.Parse(t.p.To); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				return nil, fmt.Errorf("%w: --to carries a password, which would be stored in the action; pass a secret reference such as env:RESTORE_URL", action.ErrBadParams)
			}
		}
		if user, _, ok := strings.Cut(t.p.To, "@"); ok && !strings.Contains(t.p.To, "://") && strings.Contains(user, ":") {
			return nil, fmt.Errorf("%w: --to carries a password, which would be stored in the action; pass a secret reference such as env:RESTORE_URL", action.ErrBadParams)
		}
		t.redact = redactURL(t.p.To)
	}
	v, err := sec.Resolve()
	if err != nil {
		return nil, fmt.Errorf("%w: to: %v", action.ErrBadParams, err)
	}
	t.url = v
	// The backup: the one among the database's backups that holds the id.
	var errs []error
	unreachable := false // a backup's store could not be read
	for i := range t.svc.Backups {
		b := &t.svc.Backups[i]
		if b.Database != t.db.Name {
			continue
		}
		m, err := findBackup(ctx, b, t.svc.Name, t.p.BackupID)
		if err != nil {
			unreachable = unreachable || !errors.Is(err, backup.ErrNoBackup)
			errs = append(errs, err)
			continue
		}
		t.b, t.m = b, m
		break
	}
	if t.b == nil && unreachable {
		return nil, fmt.Errorf("find backup %s of %s/%s: %w", t.p.BackupID, t.svc.Name, t.db.Name, errors.Join(errs...))
	}
	if t.b == nil {
		return nil, fmt.Errorf("%w: %w %s among the backups of %s/%s (%v)", action.ErrBadParams, backup.ErrNoBackup, t.p.BackupID, t.svc.Name, t.db.Name, errors.Join(errs...))
	}
	// A pgBackRest backup is a whole cluster: it restores into a data
	// directory, and only it does.
	dir, isDir := strings.CutPrefix(t.url, PgDataPrefix)
	switch {
	case t.b.Method == "pgbackrest" && !isDir:
		return nil, fmt.Errorf("%w: backup %s is a pgBackRest backup of the whole cluster: it restores into a data directory, not a database; give an empty directory as --to %s/path/to/dir (Steward restores it there and starts nothing)", action.ErrBadParams, t.m.Ref(), PgDataPrefix)
	case isDir && t.b.Method != "pgbackrest":
		return nil, fmt.Errorf("%w: --to %s is a data directory, for pgBackRest backups; backup %s (method %s) restores into a database: give its URL", action.ErrBadParams, t.redact, t.m.Ref(), t.b.Method)
	case isDir && !filepath.IsAbs(dir):
		return nil, fmt.Errorf("%w: --to %s: the data directory must be an absolute path", action.ErrBadParams, t.redact)
	case isDir:
		t.pgdata = filepath.Clean(dir)
	}
	for i := range t.svc.Drills {
		if t.svc.Drills[i].Backup == t.b.Name {
			t.d = &t.svc.Drills[i]
			break
		}
	}
	if t.d == nil {
		t.d = &config.Drill{Name: "restore", Backup: t.b.Name, RowCounts: "exact", Timeout: DefaultTimeout.String()}
	}
	return &t, nil
}

// findBackup looks backup id (ID or SERVICE/BACKUP/ID) up where backup b
// keeps its backups: the repository's manifests, the pgBackRest stanza, or
// what the list command prints. An id that is not there wraps
// backup.ErrNoBackup.
func findBackup(ctx context.Context, b *config.Backup, service, id string) (backup.Manifest, error) {
	var list func(context.Context, *config.Backup) ([]backup.Manifest, error)
	switch b.Method {
	case "pgbackrest":
		list = backup.ListPgBackRest
	case "command":
		list = backup.ListCommand
	default:
		if b.Repository == "" {
			return backup.Manifest{}, fmt.Errorf("%w in %s/%s: it has no repository", backup.ErrNoBackup, service, b.Name)
		}
		return getManifest(ctx, b, service, id)
	}
	if strings.Contains(id, "/") {
		rest, ok := strings.CutPrefix(id, service+"/"+b.Name+"/")
		if !ok {
			return backup.Manifest{}, fmt.Errorf("%w %s in %s/%s", backup.ErrNoBackup, id, service, b.Name)
		}
		id = rest
	}
	all, err := list(ctx, b)
	if err != nil {
		return backup.Manifest{}, err
	}
	for _, m := range all {
		if m.ID == id {
			m.Service = service
			return m, nil
		}
	}
	return backup.Manifest{}, fmt.Errorf("%w %s in %s/%s: it lists %s", backup.ErrNoBackup, id, service, b.Name, listedIDs(all))
}

func getManifest(ctx context.Context, b *config.Backup, service, id string) (backup.Manifest, error) {
	repo, err := backup.OpenRepository(ctx, b.Repository)
	if err != nil {
		return backup.Manifest{}, err
	}
	defer repo.Close()
	ref := id
	if !strings.Contains(ref, "/") {
		ref = service + "/" + b.Name + "/" + id
	}
	m, err := repo.Get(ctx, ref)
	if err == nil && (m.Service != service || m.Backup != b.Name) {
		return m, fmt.Errorf("%w %s in %s/%s", backup.ErrNoBackup, id, service, b.Name)
	}
	return m, err
}

// Plan says what will be overwritten, from which backup, how long it is
// expected to take (from the last passed drill) and that it is critical.
// The target's size is rounded so that ordinary writes do not change the
// plan (which would void approvals).
func (k *RestoreKind) Plan(ctx context.Context, a *action.Action) (action.Plan, error) {
	t, err := k.resolve(ctx, a)
	if err != nil {
		return action.Plan{}, err
	}
	details := map[string]any{
		"service": t.svc.Name, "database": t.db.Name, "engine": t.db.Engine, "target": t.redact,
		"backup": t.m.Ref(), "backup_time": t.m.Time().UTC().Format(time.RFC3339), "backup_bytes": t.m.Size,
		"encrypted": t.m.Encrypted, "verify_with_drill": t.d.Name,
	}
	facts := map[string]any{"engine": t.db.Engine, "backup_age_hours": int(t.m.Age(time.Now()).Hours())}
	target := "target unreachable"
	if t.pgdata != "" {
		target = describeDataDir(t.pgdata)
		details["target_data_directory"] = target
	} else if eng, err := k.deps.Engines.Get(t.db.Engine); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		counts, err := eng.RowCounts(cctx, t.url)
		cancel()
		if err == nil {
			var rows int64
			tables := make([]string, 0, len(counts))
			for name, n := range counts {
				rows += n
				tables = append(tables, name)
			}
			sort.Strings(tables)
			details["target_tables"] = tables
			details["target_rows_approx"] = roundSig(rows)
			facts["target_tables"] = len(tables)
			target = fmt.Sprintf("target has %d tables, about %d rows, that will be overwritten", len(tables), roundSig(rows))
			if len(tables) == 0 {
				target = "target is empty"
			}
		} else {
			details["target_error"] = firstLine(err.Error())
		}
	}
	expect := "no passed drill to estimate the duration from"
	if k.deps.Store != nil {
		for _, d := range t.svc.Drills {
			if d.Backup != t.b.Name {
				continue
			}
			runs, err := History(ctx, k.deps.Store, t.svc.Name, d.Name, 20)
			if err != nil {
				continue
			}
			if last := LastPassed(runs); last != nil && last.RTOSeconds != nil {
				mins := max(1, int((*last.RTOSeconds+59)/60))
				details["expected_minutes"], details["expected_from"] = mins, fmt.Sprintf("drill %s run %d on %s", d.Name, last.ID, last.StartedAt.UTC().Format("2006-01-02"))
				expect = fmt.Sprintf("about %d min (drill %s run %d)", mins, d.Name, last.ID)
				break
			}
		}
	}
	return action.Plan{
		Summary: fmt.Sprintf("restore %s (%s) into %s of %s/%s — %s; expected %s", t.m.Ref(), humanBytes(t.m.Size), t.redact, t.svc.Name, t.db.Name, target, expect),
		Details: details,
		Facts:   facts,
		Risk:    action.RiskCritical,
	}, nil
}

// Execute restores for real, through the drill's code path into the
// target. The target must be an empty database (create it, restore, then
// switch the application over); the verifications of the database's drill
// run on the result. A pgBackRest backup is restored into an empty data
// directory and not started: the result says how to start it.
func (k *RestoreKind) Execute(ctx context.Context, a *action.Action) (action.Result, error) {
	t, err := k.resolve(ctx, a)
	if err != nil {
		return action.Result{}, err
	}
	r := &runner{deps: k.deps, svc: t.svc, d: t.d, b: t.b, mode: "restore", drillName: "restore:" + t.db.Name,
		backupID: t.m.Ref(), actor: "action:" + fmt.Sprint(a.ID) + ":" + a.Requester, target: t.url, targetRef: t.redact}
	rep, err := r.run(ctx)
	res := action.Result{Summary: fmt.Sprintf("restore %s into %s", t.m.Ref(), t.redact)}
	if rep != nil {
		res.Details = map[string]any{"run_id": rep.RunID, "status": rep.Status, "verifications": rep.Verifications, "phases": rep.Phases}
		switch {
		case rep.RTOSeconds != nil && t.pgdata != "":
			res.Details["rto_seconds"] = *rep.RTOSeconds
			res.Details["next_steps"] = rep.NextSteps
			res.Summary += fmt.Sprintf(": data directory restored in %s (run %d), not started; %s", fmtSeconds(*rep.RTOSeconds), rep.RunID, strings.Join(rep.NextSteps, "; "))
		case rep.RTOSeconds != nil:
			res.Details["rto_seconds"] = *rep.RTOSeconds
			res.Summary += fmt.Sprintf(": restored and verified in %s (run %d)", fmtSeconds(*rep.RTOSeconds), rep.RunID)
		default:
			res.Summary += fmt.Sprintf(": %s (run %d)", rep.Status, rep.RunID)
		}
	}
	return res, err
}

// Verify checks the recorded run passed.
func (k *RestoreKind) Verify(ctx context.Context, _ *action.Action, r action.Result) error {
	id, ok := r.Details["run_id"].(int64)
	if !ok {
		if f, fok := r.Details["run_id"].(float64); fok {
			id, ok = int64(f), true
		}
	}
	if !ok || k.deps.Store == nil {
		return errors.New("restore result names no run")
	}
	row, err := k.deps.Store.GetDrillRun(ctx, id)
	if err != nil {
		return err
	}
	if row.State != StatusPassed {
		return fmt.Errorf("restore run %d is %s: %s", id, row.State, row.Error)
	}
	return nil
}

// roundSig rounds n to two significant digits.
func roundSig(n int64) int64 {
	if n < 100 {
		return n
	}
	p := int64(1)
	for n/p >= 100 {
		p *= 10
	}
	return (n + p/2) / p * p
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
