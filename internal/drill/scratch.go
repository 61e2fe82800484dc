package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/store"
)

// LabelPrefix starts the label of every scratch resource a drill makes.
const LabelPrefix = "steward-drill-"

// location is what scratch_resources.location holds: enough to find and
// destroy the resource after a crash, without secrets (a server URL is
// looked up again in the config by service and drill).
type location struct {
	Service string `json:"service"`
	Drill   string `json:"drill"`
	Dir     string `json:"dir,omitempty"`     // ephemeral: parent directory
	URL     string `json:"url,omitempty"`     // command: what provision printed, password removed
	Desc    string `json:"desc,omitempty"`    // engine's description
	Destroy string `json:"destroy,omitempty"` // command: the destroy hook at the time
}

// provision gets the database the backup is restored into: scratch for a
// drill, recorded before it is created, or the target of a real restore.
// teardown is non-nil once something may need removing; it runs on a fresh
// context so that it also runs when the drill was cancelled.
func (r *runner) provision(ctx context.Context) (string, func() error, error) {
	if r.mode == "restore" {
		r.rep.Scratch = "target " + r.targetRef
		return r.target, nil, nil
	}
	label := scratchLabel(r.svc.Name, r.drillName, randomID())
	kind := r.d.Scratch.Kind
	if kind == "" {
		kind = "ephemeral"
	}
	loc := location{Service: r.svc.Name, Drill: r.drillName}
	opts := dbx.ScratchOptions{Kind: kind, Label: label}
	switch kind {
	case "ephemeral":
		opts.Dir, loc.Dir = r.deps.workDir(), r.deps.workDir()
	case "server":
		u, err := r.d.Scratch.URL.Resolve()
		if err != nil {
			return "", nil, notRunf("scratch.url: %v", err)
		}
		opts.ServerURL = u
	case "command":
		loc.Destroy = r.d.Scratch.Destroy
	}
	// Record first: the drill run names its scratch, then the resource is
	// recorded, then created. A crash at any point leaves a record.
	r.rep.ScratchLabel, r.row.ScratchLabel = label, label
	if err := r.deps.Store.UpdateDrillRun(ctx, r.row); err != nil {
		return "", nil, notRunf("record scratch: %v", err)
	}
	if err := r.deps.Store.InsertScratch(ctx, store.ScratchRow{Label: label, Engine: r.engine.Name(), Kind: kind, Location: loc.encode(), CreatedAt: r.deps.now()}); err != nil {
		return "", nil, notRunf("record scratch: %v", err)
	}
	var sc *dbx.Scratch
	var cmdURL string
	teardown := func() error {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		t0 := time.Now()
		var err error
		switch {
		case kind == "command":
			err = runDestroyHook(tctx, r.d.Scratch.Destroy, label, cmdURL, r.svc.Name, r.drillName)
		case sc != nil:
			err = sc.Destroy(tctx)
		default:
			// Provision failed or timed out part way: sweep what it may
			// have left under the label.
			_, err = r.engine.Leftovers(tctx, dbx.ScratchOptions{Kind: kind, ServerURL: opts.ServerURL, Dir: opts.Dir, Label: label}, nil)
		}
		p := newPhase(PhaseTeardown, time.Since(t0), 0)
		if err != nil {
			p.Error = err.Error()
		} else if merr := r.deps.Store.MarkScratchDestroyed(tctx, label, r.deps.now()); merr != nil {
			err = merr
		}
		r.addPhases(p)
		return err
	}
	err := r.phase(ctx, PhaseProvision, func(ctx context.Context) (int64, error) {
		if kind == "command" {
			u, err := runProvisionHook(ctx, r.d.Scratch.Provision, label, r.svc.Name, r.drillName, r.engine.Name())
			if err != nil {
				return 0, err
			}
			cmdURL = u
			loc.URL = redactURL(u)
			r.rep.Scratch = "command scratch " + loc.URL
			if err := r.deps.Store.UpdateScratchLocation(ctx, label, loc.encode()); err != nil {
				return 0, err
			}
			return 0, nil
		}
		create := r.engine.Scratch
		if r.scratch != nil {
			create = r.scratch
		}
		s, err := create(ctx, opts)
		if err != nil {
			return 0, err
		}
		sc = s
		r.rep.Scratch = s.Description
		loc.Desc = s.Description
		return 0, r.deps.Store.UpdateScratchLocation(ctx, label, loc.encode())
	})
	if err != nil {
		var f *failure
		if !errors.As(err, &f) {
			err = failf("provision scratch: %v", err)
		}
		return "", teardown, err
	}
	if kind == "command" {
		return cmdURL, teardown, nil
	}
	return sc.URL, teardown, nil
}

// maxLabel keeps labels usable as database names everywhere (PostgreSQL
// allows 63 bytes).
const maxLabel = 63

// scratchLabel is steward-drill-<service>-<drill>-<runid>, with the middle
// shortened when it would not fit a database name; the random run id keeps
// it unique and never a prefix of another label.
func scratchLabel(service, drillName, runID string) string {
	mid := service + "-" + drillName
	if room := maxLabel - len(LabelPrefix) - 1 - len(runID); len(mid) > room {
		mid = mid[:room]
	}
	return LabelPrefix + mid + "-" + runID
}

func (l location) encode() string {
	b, _ := json.Marshal(l)
	return string(b)
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw[:i], ":"); j >= 0 {
				return raw[:j] + ":xxxxx" + raw[i:]
			}
		}
		return raw
	}
	return u.Redacted()
}

// hookCmd runs a shell hook in its own process group, so a timeout kills
// the hook and everything it started.
func hookCmd(ctx context.Context, script string, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func runProvisionHook(ctx context.Context, script, label, service, drill, engine string) (string, error) {
	cmd := hookCmd(ctx, script, "STEWARD_SCRATCH_LABEL="+label, "STEWARD_SERVICE="+service, "STEWARD_DRILL="+drill, "STEWARD_ENGINE="+engine)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("provision hook: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	u := strings.TrimSpace(lines[len(lines)-1])
	if u == "" {
		return "", errors.New("provision hook printed no URL on stdout")
	}
	return u, nil
}

func runDestroyHook(ctx context.Context, script, label, scratchURL, service, drill string) error {
	cmd := hookCmd(ctx, script, "STEWARD_SCRATCH_LABEL="+label, "STEWARD_SCRATCH_URL="+scratchURL, "STEWARD_SERVICE="+service, "STEWARD_DRILL="+drill)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("destroy hook: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Interrupted is the error recorded on a drill Steward stopped in the
// middle of.
const Interrupted = "interrupted (Steward stopped mid-drill)"

// CleanupReport says what CleanLeftovers did.
type CleanupReport struct {
	Removed     []string `json:"removed"`     // scratch labels destroyed
	Failed      []string `json:"failed"`      // scratch labels that could not be destroyed (kept recorded)
	Interrupted []int64  `json:"interrupted"` // drill runs marked error
}

// CleanLeftovers finishes what a crash left behind: drill runs still
// "running" past their timeout are marked error ("interrupted"), and the
// scratch resources not marked destroyed — except those of a drill running
// now — are destroyed through their engine (or destroy hook) and marked.
// Run it at start, before scheduling drills.
func CleanLeftovers(ctx context.Context, deps Deps) (CleanupReport, error) {
	var rep CleanupReport
	log := deps.logger().With("component", "drill-cleanup")
	now := deps.now()
	var cfg *config.Config
	if deps.Config != nil {
		cfg = deps.Config()
	}
	running, err := deps.Store.ListDrillRuns(ctx, store.DrillRunFilter{States: []string{store.DrillRunning}, Limit: 1000})
	if err != nil {
		return rep, err
	}
	keep := map[string]bool{}
	var errs []error
	for _, run := range running {
		timeout := runTimeout(cfg, run.Service, run.Drill)
		if now.Sub(run.StartedAt) <= timeout {
			if run.ScratchLabel != "" {
				keep[run.ScratchLabel] = true
			}
			continue
		}
		ok, err := deps.Store.InterruptDrillRun(ctx, run.ID, store.DrillError, Interrupted, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			rep.Interrupted = append(rep.Interrupted, run.ID)
			log.Warn("drill run interrupted by a stop", "run", run.ID, "service", run.Service, "drill", run.Drill)
			if deps.Audit != nil {
				if err := deps.Audit(ctx, "system:steward", "drill.run", run.Service+"/"+run.Drill, StatusError, map[string]any{"run_id": run.ID, "error": Interrupted}); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	live, err := deps.Store.LiveScratch(ctx)
	if err != nil {
		return rep, errors.Join(append(errs, err)...)
	}
	for _, sr := range live {
		if keep[sr.Label] {
			continue
		}
		if err := destroyLeftover(ctx, deps, cfg, sr); err != nil {
			rep.Failed = append(rep.Failed, sr.Label)
			log.Error("remove leftover scratch", "label", sr.Label, "err", err)
			errs = append(errs, fmt.Errorf("scratch %s: %w", sr.Label, err))
			continue
		}
		if err := deps.Store.MarkScratchDestroyed(ctx, sr.Label, deps.now()); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Removed = append(rep.Removed, sr.Label)
		log.Info("removed leftover scratch", "label", sr.Label, "engine", sr.Engine, "kind", sr.Kind)
	}
	return rep, errors.Join(errs...)
}

func runTimeout(cfg *config.Config, service, drillName string) time.Duration {
	if cfg == nil {
		return DefaultTimeout
	}
	svc := cfg.Service(service)
	if svc == nil {
		return DefaultTimeout
	}
	d := svc.Drill(drillName)
	if d == nil || d.Timeout == "" {
		return DefaultTimeout
	}
	t, err := config.ParseDuration(d.Timeout)
	if err != nil {
		return DefaultTimeout
	}
	return t
}

func destroyLeftover(ctx context.Context, deps Deps, cfg *config.Config, sr store.ScratchRow) error {
	var loc location
	if err := json.Unmarshal([]byte(sr.Location), &loc); err != nil {
		return fmt.Errorf("unreadable location %q: %w", sr.Location, err)
	}
	var d *config.Drill
	if cfg != nil {
		if svc := cfg.Service(loc.Service); svc != nil {
			d = svc.Drill(loc.Drill)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, teardownTimeout)
	defer cancel()
	switch sr.Kind {
	case "command":
		script := loc.Destroy
		if d != nil && d.Scratch.Destroy != "" {
			script = d.Scratch.Destroy
		}
		if script == "" {
			return errors.New("no destroy hook known")
		}
		return runDestroyHook(ctx, script, sr.Label, loc.URL, loc.Service, loc.Drill)
	case "server", "ephemeral":
		engine, err := deps.Engines.Get(sr.Engine)
		if err != nil {
			return err
		}
		opts := dbx.ScratchOptions{Kind: sr.Kind, Label: sr.Label, Dir: loc.Dir}
		if sr.Kind == "server" {
			if d == nil || d.Scratch.URL == "" {
				return fmt.Errorf("drill %s/%s is no longer configured: cannot reach its scratch server; drop database %s by hand, then mark it destroyed", loc.Service, loc.Drill, sr.Label)
			}
			if opts.ServerURL, err = d.Scratch.URL.Resolve(); err != nil {
				return fmt.Errorf("scratch.url: %w", err)
			}
		}
		_, err = engine.Leftovers(ctx, opts, nil)
		return err
	}
	return fmt.Errorf("unknown scratch kind %q", sr.Kind)
}
