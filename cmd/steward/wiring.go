package main

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/fix"
	"github.com/stewardhq/steward/internal/gate"
	"github.com/stewardhq/steward/internal/integrity"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/notify/all"
)

// builtinKinds registers every action kind Steward ships, in one place.
func builtinKinds(cfg func() *config.Config) *action.Registry {
	r := action.NewRegistry()
	r.Register(&gate.Gate{Config: cfg})
	return r
}

// outbox builds the notification channels and outbox once per app.
func (a *app) outbox(reg prometheus.Registerer) (*notify.Outbox, error) {
	if a.notify != nil {
		return a.notify, nil
	}
	chans, err := all.Build(a.cfg.Notify, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	a.notify = notify.NewOutbox(a.store, a.cfg.Notify, chans, notify.Options{Logger: a.log.With("component", "notify"), Registerer: reg})
	return a.notify, nil
}

// pipeline builds the action pipeline on the app's store, audit log and
// outbox.
func (a *app) pipeline() (*action.Pipeline, error) {
	if a.actions != nil {
		return a.actions, nil
	}
	ob, err := a.outbox(nil)
	if err != nil {
		return nil, err
	}
	// Kinds read the pipeline's current config, which follows reloads.
	var p *action.Pipeline
	current := func() *config.Config { return p.Config() }
	cfg := a.cfg
	kinds := builtinKinds(current)
	deps, err := a.drillDeps(nil)
	if err != nil {
		return nil, err
	}
	deps.Config = current
	kinds.Register(drill.NewRestoreKind(current, deps))
	crypt, err := fix.CryptFromEnv()
	if err != nil {
		return nil, usagef("%v", err)
	}
	cdeps, err := a.checkDeps()
	if err != nil {
		return nil, err
	}
	// A fix proposed for a check's violations re-runs the check once
	// applied, whoever executes it (CLI, server, API).
	a.fix = &fix.Deps{Config: current, Store: a.store, Logger: a.log.With("component", "fix"), Crypt: crypt,
		Applied: integrity.AfterFix(cdeps, current)}
	kinds.Register(fix.NewApplyKind(a.fix))
	kinds.Register(fix.NewUndoKind(a.fix))
	kinds.Register(fix.NewSQLKind(a.fix))
	kinds.Register(access.NewGrantKind(a.accessDeps(current)))
	p, err = action.New(action.Options{
		Store: a.store, Kinds: kinds, Config: cfg, Audit: a.auditFunc(),
		Notifier: ob, Logger: a.log.With("component", "actions"), BaseURL: "http://" + cfg.Steward.Listen,
	})
	if err != nil {
		return nil, err
	}
	a.actions = p
	return p, nil
}

// flushNotifications delivers what this CLI invocation queued, so a
// break-glass alert does not wait for the server's next delivery pass. What
// cannot be delivered now stays in the outbox for the server to retry.
func (a *app) flushNotifications() {
	if a.notify == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, failed, err := a.notify.Deliver(ctx); err != nil || failed > 0 {
		a.log.Warn("some notifications not delivered yet; the server will retry them", "failed", failed, "err", err)
	}
}
