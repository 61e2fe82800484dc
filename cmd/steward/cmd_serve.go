package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	dbxall "github.com/stewardhq/steward/internal/dbx/all"
	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/integrity"
	"github.com/stewardhq/steward/internal/jobs"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/probe/sched"
	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/server"
	"github.com/stewardhq/steward/internal/store"
)

type serveOptions struct {
	Listen string
	Grace  time.Duration
	// SLOInterval is how often the probe.slo job evaluates SLOs and
	// alerts; zero is slowatch.DefaultInterval (the demo uses less).
	SLOInterval time.Duration
}

func (o *serveOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Listen, "listen", "", "address to listen on, overrides steward.listen (e.g. 127.0.0.1:8080)")
	cmd.Flags().DurationVar(&o.Grace, "grace", 30*time.Second, "how long running jobs may take to finish at shutdown before they are cancelled and recorded as interrupted")
}

func newServeCmd(g *globalOptions) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API server, web UI, metrics and job workers until SIGINT/SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func runServe(ctx context.Context, g *globalOptions, o *serveOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	if g.Server != "" {
		return usagef("serve runs a server; unset --server/STEWARD_SERVER")
	}
	cfg, err := g.loadConfig(true)
	if err != nil {
		return err
	}
	return serve(ctx, g, cfg, o, func(_ context.Context, r *running) error {
		fmt.Fprintf(out, "steward %s serving on %s (store %s)\n", version, r.URL, r.App.store.URL())
		return nil
	})
}

// running is a started server, handed to the onReady callback.
type running struct {
	URL string
	App *app
}

// checkpointArgs is the periodic job that signs and publishes the audit head.
type checkpointArgs struct{}

func (checkpointArgs) Kind() string { return "audit.checkpoint" }

type checkpointWorker struct {
	river.WorkerDefaults[checkpointArgs]
	app *app
}

func (w *checkpointWorker) Work(ctx context.Context, _ *river.Job[checkpointArgs]) error {
	_, _, err := writeCheckpoint(ctx, w.app, nil, false)
	return err
}

// sweepArgs is the periodic job that expires stale approvals and re-alerts
// overdue break-glass reviews.
type sweepArgs struct{}

func (sweepArgs) Kind() string { return "action.sweep" }

type sweepWorker struct {
	river.WorkerDefaults[sweepArgs]
	pipeline *action.Pipeline
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[sweepArgs]) error {
	_, err := w.pipeline.Sweep(ctx, time.Hour)
	return err
}

// serve opens everything a server needs, starts jobs and HTTP, calls onReady
// once the listener is bound, and shuts down in order when ctx is done or
// onReady returns errStop.
func serve(ctx context.Context, g *globalOptions, cfg *config.Config, o *serveOptions, onReady func(context.Context, *running) error) error {
	log := g.logger()
	if err := os.MkdirAll(cfg.Steward.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", cfg.Steward.DataDir, err)
	}
	storeURL, err := g.storeURL(cfg)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, storeURL, store.Options{Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	alog := audit.New(st, audit.Options{Logger: log, Registerer: reg})
	// The audit writer outlives ctx so shutdown events are still recorded.
	auditCtx, stopAudit := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAudit()
	alog.Start(auditCtx)
	defer func() {
		if err := alog.Close(); err != nil {
			log.Error("flush audit log", "err", err)
		}
	}()
	a := &app{cfg: cfg, store: st, audit: alog, log: log}
	a.auth = auth.NewManager(st, customRoles(cfg), a.auditFunc())
	a.actor = a.auth.LocalAdmin(osUser())
	if _, _, err := signingKey(a); err != nil {
		return err
	}
	if err := bootstrapUsers(ctx, a); err != nil {
		return err
	}

	outbox, err := a.outbox(reg)
	if err != nil {
		return err
	}
	pipeline, err := a.pipeline()
	if err != nil {
		return err
	}

	jcfg := jobs.Config{
		Dialect:    st.Dialect(),
		DSN:        st.DriverDSN(),
		Logger:     log.With("component", "jobs"),
		Registerer: reg,
		Periodic: []jobs.Periodic{
			{Name: "audit-checkpoint", Cron: cfg.Steward.Audit.CheckpointSchedule, Args: checkpointArgs{}, RunOnStart: true},
			notify.Periodic(),
			{Name: "action-sweep", Cron: "@every 1m", Args: sweepArgs{}, RunOnStart: true},
		},
		OnInterrupted: func(ctx context.Context, j jobs.JobInfo, err error) {
			_, aerr := alog.Append(context.WithoutCancel(ctx), audit.Entry{Actor: auth.System("jobs"), Action: "job.interrupted",
				Target: fmt.Sprintf("job:%d", j.ID), Outcome: "interrupted",
				Details: map[string]any{"kind": j.Kind, "attempt": j.Attempt, "error": fmt.Sprint(err)}})
			if aerr != nil {
				log.Error("record interrupted job", "job", j.ID, "err", aerr)
			}
		},
	}
	// Scheduled backups, the RPO check and drills (schedules are read at start).
	jcfg.Periodic = append(jcfg.Periodic, backup.Periodic(cfg)...)
	jcfg.Periodic = append(jcfg.Periodic, drill.Periodic(cfg)...)
	jcfg.Periodic = append(jcfg.Periodic, integrity.Periodic(cfg)...)
	jcfg.Periodic = append(jcfg.Periodic, access.Periodic())
	jcfg.Periodic = append(jcfg.Periodic, access.ScanPeriodic(cfg)...)
	jcfg.Periodic = append(jcfg.Periodic, probe.RollupPeriodic())
	jcfg.Periodic = append(jcfg.Periodic, slowatch.Periodic(o.SLOInterval))
	jcfg.Periodic = append(jcfg.Periodic, readiness.Periodic(cfg))
	accessDeps := a.accessDeps(pipeline.Config)
	// Grants that expired while Steward was down are revoked before the
	// server answers anything.
	if res, err := access.Sweep(ctx, accessDeps, time.Now()); err != nil {
		log.Error("revoke expired grants at start", "err", err, "result", res)
	}
	checkDeps, err := a.checkDeps()
	if err != nil {
		return err
	}
	drillDeps, err := a.drillDeps(nil)
	if err != nil {
		return err
	}
	drillDeps.Config = pipeline.Config
	// Scratch left by a crash is removed, and drills it interrupted are
	// recorded as such, before anything new starts.
	if rep, err := drill.CleanLeftovers(ctx, drillDeps); err != nil {
		log.Error("clean drill leftovers", "err", err, "report", rep)
	}
	if err := jobs.Migrate(ctx, jcfg); err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	jreg := jobs.NewRegistry()
	jobs.Register(jreg, &checkpointWorker{app: a})
	jobs.Register(jreg, &sweepWorker{pipeline: pipeline})
	notify.RegisterWorkers(jreg, outbox)
	drill.RegisterWorkers(jreg, drillDeps)
	integrity.RegisterWorkers(jreg, checkDeps, pipeline.Config)
	access.RegisterWorkers(jreg, accessDeps)
	access.RegisterScanWorkers(jreg, access.ScanDeps{Store: st, Audit: a.auditFunc(), Notifier: outbox, Logger: log.With("component", "access-scan")}, pipeline.Config)
	backup.RegisterWorkers(jreg, backup.JobDeps{
		Deps:   backup.Deps{Store: st, Engines: dbxall.Registry(), Audit: a.auditFunc(), Notifier: outbox, Logger: log.With("component", "backup"), TempDir: cfg.Steward.DataDir},
		Config: pipeline.Config,
	})
	probe.RegisterRollupWorker(jreg, st)
	sloMetrics, err := slowatch.NewMetrics(reg)
	if err != nil {
		return err
	}
	slowatch.RegisterWorker(jreg, slowatch.New(slowatch.Deps{Store: st, Notifier: outbox, Audit: a.auditFunc(), Logger: log, Metrics: sloMetrics}), pipeline.Config)
	scorer := newEvaluator(a, pipeline.Config)
	readiness.RegisterWorker(jreg, scorer)
	runner, err := jobs.New(ctx, jcfg, jreg)
	if err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	defer runner.Close()
	if err := runner.Start(ctx); err != nil {
		return fmt.Errorf("job queue: start: %w", err)
	}
	probes, err := startProbes(ctx, cfg, st, reg, log, o.Grace)
	if err != nil {
		return err
	}
	defer probes.stop()

	srv, err := server.New(server.Options{
		Config: cfg, Store: st, Auth: a.auth, Audit: a.auditFunc(), Logger: log.With("component", "server"),
		Registry: reg, Version: version, Actions: pipeline, Scorecard: scorer.Evaluate,
	})
	if err != nil {
		return err
	}
	listen := cfg.Steward.Listen
	if o.Listen != "" {
		listen = o.Listen
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w; choose another address with --listen or steward.listen", listen, err)
	}
	serveCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go reloadConfig(serveCtx, g, srv, pipeline, probes, log, configWatchInterval)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(serveCtx, ln) }()
	r := &running{URL: "http://" + ln.Addr().String(), App: a}
	if onReady != nil {
		if err := onReady(serveCtx, r); err != nil {
			cancel()
			serr := <-errc
			stopRunner(runner, o.Grace, log)
			if errors.Is(err, errStop) {
				return serr
			}
			return err
		}
	}
	serr := <-errc
	stopRunner(runner, o.Grace, log)
	return serr
}

// errStop asks serve to shut down cleanly (demo --once).
var errStop = errors.New("stop")

func stopRunner(r *jobs.Runner, grace time.Duration, log interface{ Error(string, ...any) }) {
	ctx, cancel := context.WithTimeout(context.Background(), grace+10*time.Second)
	defer cancel()
	if err := r.Stop(ctx, grace); err != nil {
		log.Error("stop jobs", "err", err)
	}
}

// probeRunner is the server's probe scheduler and what feeds it.
type probeRunner struct {
	sched    *sched.Scheduler
	recorder *probe.Recorder
	opts     probe.Options
	grace    time.Duration
	cancel   context.CancelFunc
	log      *slog.Logger
}

// startProbes schedules the configured probes, with their results written
// to st and their metrics on reg. The scheduler outlives ctx: stop cancels
// it after letting runs in progress finish and flushing their results.
func startProbes(ctx context.Context, cfg *config.Config, st *store.Store, reg prometheus.Registerer, log *slog.Logger, grace time.Duration) (*probeRunner, error) {
	log = log.With("component", "probes")
	rec, err := probe.NewRecorder(st, reg)
	if err != nil {
		return nil, err
	}
	s, err := sched.New(sched.Options{Sink: rec, Registerer: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	// One bounded browser pool for all browser probes of the server.
	p := &probeRunner{sched: s, recorder: rec, opts: probe.Options{Logger: log, BrowserPool: probe.NewBrowserPool(0, "")}, grace: grace, log: log}
	if err := p.update(cfg); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	if err := s.Start(runCtx); err != nil {
		cancel()
		return nil, fmt.Errorf("probe scheduler: %w", err)
	}
	return p, nil
}

// update schedules the probes of cfg that run from the server itself
// (location local; agents run the others), keeping unchanged ones on their
// slots.
func (p *probeRunner) update(cfg *config.Config) error {
	if _, err := p.sched.Update(p.recorder.Jobs(probe.ForLocation(cfg, probe.Location), p.opts)); err != nil {
		return fmt.Errorf("probe schedule: %w", err)
	}
	return nil
}

func (p *probeRunner) stop() {
	defer p.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), p.grace+10*time.Second)
	defer cancel()
	if err := p.sched.Stop(ctx); err != nil {
		p.log.Error("stop probes", "err", err)
	}
}

// configWatchInterval is how often serve looks for a changed config file.
const configWatchInterval = 2 * time.Second

// reloadConfig reloads the config on SIGHUP and when one of its files
// (the main file or an include) changes on disk: a valid config replaces
// the running one — the pipeline, the server and the probe schedule,
// which restarts only the probes that changed — and an invalid one is
// logged and ignored. A new file that an include glob would match is
// picked up by the next SIGHUP or change of a known file.
func reloadConfig(ctx context.Context, g *globalOptions, srv *server.Server, p *action.Pipeline, probes *probeRunner, log interface {
	Info(string, ...any)
	Error(string, ...any)
}, every time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(every)
	defer tick.Stop()
	files := p.Config().Files
	seen := fingerprint(files)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			now := fingerprint(files)
			if now == seen {
				continue
			}
			seen = now
			log.Info("config file changed; reloading")
		case <-hup:
		}
		cfg, err := g.loadConfig(true)
		if err != nil {
			log.Error("config reload rejected; keeping the running config", "err", err)
			continue
		}
		if err := p.SetConfig(cfg); err != nil {
			log.Error("config reload rejected; keeping the running config", "err", err)
			continue
		}
		srv.SetConfig(cfg)
		if err := probes.update(cfg); err != nil {
			log.Error("config reloaded, but the probe schedule was not updated; the previous probes keep running", "err", err)
		}
		files = cfg.Files
		seen = fingerprint(files)
		log.Info("config reloaded", "services", len(cfg.Services))
	}
}

// fingerprint sums up the size and modification time of files; a file
// that cannot be read counts as its error, so that its return is a change.
func fingerprint(files []string) string {
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(&b, "%s:%v\n", f, err)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d\n", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// bootstrapUsers creates the users listed in config that do not exist yet
// and brings their roles in line with the config. Tokens are never created
// here: use `steward token create`.
func bootstrapUsers(ctx context.Context, a *app) error {
	actor := auth.System("bootstrap")
	for _, u := range a.cfg.Users {
		existing, err := a.store.GetUser(ctx, u.Name)
		if errors.Is(err, store.ErrNotFound) {
			if _, _, err := a.auth.AddUser(ctx, actor, u.Name, u.Email, u.Roles, false); err != nil {
				return fmt.Errorf("bootstrap user %s: %w", u.Name, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		if !sameSet(existing.Roles, u.Roles) {
			if err := a.store.SetUserRoles(ctx, u.Name, u.Roles); err != nil {
				return err
			}
			if _, err := a.audit.Append(ctx, audit.Entry{Actor: actor, Action: "user.roles", Target: "user:" + u.Name, Outcome: "ok",
				Details: map[string]any{"from": existing.Roles, "to": u.Roles}}); err != nil {
				return err
			}
		}
	}
	return nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}
