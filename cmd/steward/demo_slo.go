package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/demo"
	"github.com/stewardhq/steward/internal/notify/webhook"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/probe/agent"
	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/store"
)

// demoSiteService is the demo service whose probes watch the demo itself.
const demoSiteService = "site"

// demoAgentLocation is the location of the demo's probe agent: the
// healthz probe runs from the server (local) and from it, quorum 2.
const demoAgentLocation = "edge"

// demoSLOInterval is how often the demo's server evaluates SLOs and alerts
// (30s in production), so that an alert opens and resolves in seconds.
const demoSLOInterval = time.Second

// demoSiteRig is what the probe part of the demo runs: a target it can
// break (a checkout endpoint) that also hands the UI journey its login
// token, as a secrets vault would.
type demoSiteRig struct {
	Config *config.Config // the demo config, with the site service
	srv    *http.Server
	url    string
	broken atomic.Bool
	token  string
	dir    string // the workspace

	stopAgent func()            // nil until the agent started
	agentDone chan agentOutcome // the agent's summary when it stopped
}

type agentOutcome struct {
	sum agent.Summary
	err error
}

// Close stops the agent and the target.
func (s *demoSiteRig) Close() {
	if s.stopAgent != nil {
		s.stopAgent()
		<-s.agentDone
		s.stopAgent = nil
	}
	_ = s.srv.Close()
}

// startAgent runs a probe agent in process, as `steward agent --server URL
// --token T --location edge` would on another machine. It runs until the
// rig is closed, so that the served demo keeps its second location.
func (s *demoSiteRig) startAgent(server string) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopAgent = cancel
	s.agentDone = make(chan agentOutcome, 1)
	go func() {
		sum, err := agent.Run(ctx, agent.Options{
			Server: server, Token: s.token, Location: demoAgentLocation,
			DataDir: filepath.Join(s.dir, "agent-"+demoAgentLocation), PollInterval: time.Second,
			Version: version, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Grace: time.Second,
		})
		s.agentDone <- agentOutcome{sum, err}
	}()
}

// demoListen returns the address listen binds to when it is free, else a
// free loopback port: the probes need the server's address before it
// starts.
func demoListen(listen string) (string, error) {
	if ln, err := net.Listen("tcp", listen); err == nil {
		defer ln.Close()
		return ln.Addr().String(), nil // the port, when listen asks for any (:0)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// demoSiteSetup writes services/site.yaml into the workspace: probes of
// the demo's own server (/healthz, and a journey that logs in to the web
// UI with a token and opens the Probes page) with SLOs, and a probe of a
// checkout endpoint the demo controls. It creates the journey's token, starts
// the target and returns the config reloaded with the site service.
func demoSiteSetup(ctx context.Context, g *globalOptions, ws *demo.Workspace, listen string, step func(string, ...any)) (*demoSiteRig, error) {
	a, err := g.openApp(ctx)
	if err != nil {
		return nil, err
	}
	if err := bootstrapUsers(ctx, a); err != nil {
		a.Close()
		return nil, err
	}
	token, _, err := a.auth.CreateToken(ctx, a.actor.Actor(), ws.AdminUser, "demo-probe", 0)
	a.Close()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rig := &demoSiteRig{url: "http://" + ln.Addr().String(), token: token, dir: ws.Dir}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkout", func(w http.ResponseWriter, _ *http.Request) {
		if rig.broken.Load() {
			http.Error(w, "checkout database unavailable", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "checkout ok")
	})
	mux.HandleFunc("GET /vault/ui-token", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, rig.token)
	})
	rig.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = rig.srv.Serve(ln) }()

	server := "http://" + listen
	yaml := fmt.Sprintf(`# Written by steward demo: probes of the demo itself, with SLOs.
services:
  - name: %[1]s
    description: The demo's own server and a checkout endpoint, watched from the outside.
    owners: [team-platform]
    probes:
      - name: healthz
        type: http
        url: %[2]s/healthz
        interval: 1s
        timeout: 1s
        assert: status == 200 && duration < 500ms
        locations: [local, %[4]s]
        slo: {availability: 99.9, latency: {threshold: 250ms, target: 99}}
      - name: ui
        type: journey
        interval: 2s
        timeout: 2s
        steps:
          - {name: get-token, url: "%[3]s/vault/ui-token", extract: {token: "regex:(\\S+)"}}
          - name: log-in
            url: %[2]s/login
            method: POST
            headers: {Content-Type: application/x-www-form-urlencoded}
            body: token=${token}&next=/probes/%[1]s/healthz
            assert: status == 200 && body contains "SLO and alerts"
          - {name: open-services, url: "%[2]s/services", assert: 'status == 200 && body contains "%[1]s"'}
        slo: {availability: 99}
      - {name: checkout, type: http, url: "%[3]s/checkout", interval: 1s, timeout: 1s, confirmations: 2}
`, demoSiteService, server, rig.url, demoAgentLocation)
	dir := filepath.Join(filepath.Dir(ws.ConfigPath), "services")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		rig.Close()
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, demoSiteService+".yaml"), []byte(yaml), 0o644); err != nil {
		rig.Close()
		return nil, err
	}
	if rig.Config, err = g.loadConfig(true); err != nil {
		rig.Close()
		return nil, fmt.Errorf("demo probe config does not validate (a bug, please report it): %w", err)
	}
	step("wrote services/%s.yaml: probes of the demo's /healthz (every 1s) and a UI journey (log in with a token, open a page), with SLOs, and of a checkout endpoint the demo can break", demoSiteService)
	return rig, nil
}

// demoSite shows the probes' SLO status, breaks the checkout endpoint until
// a down alert opens and reaches the webhook, then fixes it until the
// alert resolves.
func demoSite(ctx context.Context, r *running, rig *demoSiteRig, recv *demo.Receiver, step func(string, ...any)) error {
	a := r.App
	start := time.Now()
	waitFor := func(what string, limit time.Duration, done func() (bool, error)) error {
		deadline := time.Now().Add(limit)
		for {
			ok, err := done()
			if err != nil || ok {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not after %s", what, limit)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	report := func() (*slowatch.Status, error) {
		return slowatch.Report(ctx, a.store, rig.Config, demoSiteService, time.Now())
	}
	rig.startAgent(r.URL)
	var loc store.ProbeLocation
	err := waitFor("the probe agent's first heartbeat", 30*time.Second, func() (bool, error) {
		var err error
		loc, err = a.store.GetProbeLocation(ctx, demoAgentLocation)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil && loc.Healthy, err
	})
	if err != nil {
		return err
	}
	step("a probe agent at location %q (steward agent, in process here) registered and runs site/healthz too; the server runs it as location local", demoAgentLocation)
	var st *slowatch.Status
	err = waitFor("the site's probes up", 30*time.Second, func() (bool, error) {
		var err error
		if st, err = report(); err != nil {
			return false, err
		}
		for _, p := range st.Probes {
			if p.State != slowatch.StateUp {
				return false, nil
			}
		}
		return len(st.Probes) == 3, nil
	})
	if err != nil {
		return err
	}
	step("the evaluator (job probe.slo, every %s here) sees site/healthz, site/ui and site/checkout up", demoSLOInterval)
	latest, err := a.store.LatestProbeResults(ctx, demoSiteService)
	if err != nil {
		return err
	}
	var at []string
	var statuses []probe.Status
	for _, row := range latest {
		if row.Probe == "healthz" {
			at = append(at, row.Location+" "+row.Status)
			statuses = append(statuses, probe.Status(row.Status))
		}
	}
	v := probe.Quorum(statuses, 2)
	step("site/healthz latest per location: %s; quorum 2 of 2: %s", strings.Join(at, ", "), v.Status)
	for _, o := range st.Objectives {
		var rates []string
		for _, br := range o.BurnRates {
			rates = append(rates, fmt.Sprintf("%s=%.1f", br.Window, br.Rate))
		}
		step("SLO %s/%s %s %.4g%% over %s: SLI %.2f%% over %d checks, budget left %.1f%% (%s of %s), burn rates %s",
			o.Service, o.Probe, o.Objective, o.Target, o.Window, o.SLI*100, o.Counted, o.BudgetRemaining*100,
			fmtBudget(o.BudgetRemainingSeconds), fmtBudget(o.BudgetTotalSeconds), strings.Join(rates, " "))
	}

	ob, err := a.outbox(nil)
	if err != nil {
		return err
	}
	deliver := func() error {
		for range 5 {
			n, failed, err := ob.Deliver(ctx)
			if err != nil || failed > 0 {
				return fmt.Errorf("deliver notifications: %d failed, %v", failed, err)
			}
			if n == 0 {
				return nil
			}
		}
		return nil
	}
	received := func(resolve bool) (webhook.Payload, bool) {
		for _, e := range recv.Events() {
			if e.Event == slowatch.EventProbeDown && e.Fields["probe"] == demoSiteService+"/checkout" && e.Resolve == resolve {
				return e, true
			}
		}
		return webhook.Payload{}, false
	}

	rig.broken.Store(true)
	broke := time.Now()
	step("broke the checkout endpoint: it now answers 500")
	var alert store.ProbeAlertRow
	err = waitFor("a down alert for site/checkout", 30*time.Second, func() (bool, error) {
		rows, err := a.store.ListProbeAlerts(ctx, demoSiteService, true, 10)
		for _, row := range rows {
			if row.Probe == "checkout" && row.Name == slowatch.StateDown {
				alert = row
				return true, nil
			}
		}
		return false, err
	})
	if err != nil {
		return err
	}
	step("after 2 consecutive failed checks, alert #%d opened %.1fs later: %s", alert.ID, time.Since(broke).Seconds(), alert.Title)
	var opened webhook.Payload
	if err := waitFor("the alert at the webhook", 10*time.Second, func() (bool, error) {
		if err := deliver(); err != nil {
			return false, err
		}
		var ok bool
		opened, ok = received(false)
		return ok, nil
	}); err != nil {
		return err
	}
	step("the outbox delivered it to the webhook: %s, severity %s, dedup key %s", opened.Event, opened.Severity, opened.DedupKey)

	rig.broken.Store(false)
	fixed := time.Now()
	step("fixed the checkout endpoint")
	var resolved webhook.Payload
	if err := waitFor("the resolve at the webhook", 30*time.Second, func() (bool, error) {
		if err := deliver(); err != nil {
			return false, err
		}
		var ok bool
		resolved, ok = received(true)
		return ok, nil
	}); err != nil {
		return err
	}
	if resolved.DedupKey != opened.DedupKey {
		return fmt.Errorf("the resolve has dedup key %q, the alert %q", resolved.DedupKey, opened.DedupKey)
	}
	step("after 2 good checks the alert resolved %.1fs later and the webhook got %q with the same dedup key", time.Since(fixed).Seconds(), resolved.Title)
	if st, err = report(); err != nil {
		return err
	}
	// Only checkout's alerts are the demo's doing; on a starved machine the
	// 1s healthz probe may honestly miss its latency objective and alert.
	var others []string
	for _, al := range st.Alerts {
		if al.Probe == "checkout" {
			return fmt.Errorf("alert %d on site/checkout still open after the fix: %s", al.ID, al.Title)
		}
		others = append(others, al.Title)
	}
	if len(others) > 0 {
		step("slo status: checkout has no open alert; other open alerts (this machine is slow): %s", strings.Join(others, "; "))
	} else {
		step("slo status: no open alerts")
	}
	step("the probe part of the demo took %.1fs (see steward slo status, and the SLO chart on /probes/site/healthz)", time.Since(start).Seconds())
	return nil
}
