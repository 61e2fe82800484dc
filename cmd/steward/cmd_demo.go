package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/backup"
	dbxall "github.com/stewardhq/steward/internal/dbx/all"
	"github.com/stewardhq/steward/internal/demo"
	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/fix"
	"github.com/stewardhq/steward/internal/integrity"
	"github.com/stewardhq/steward/internal/store"
)

type demoOptions struct {
	Dir    string
	Once   bool
	Listen string
}

func (o *demoOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Dir, "dir", "", "workspace directory (default: a new temporary directory)")
	cmd.Flags().BoolVar(&o.Once, "once", false, "set up, run the self-check and exit instead of serving")
	cmd.Flags().StringVar(&o.Listen, "listen", "127.0.0.1:8080", "address for the web UI and API; a free port is used when this one is taken")
}

func newDemoCmd(g *globalOptions) *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Set up a demo workspace on the embedded default, exercise every capability, and serve the web UI",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func runDemo(ctx context.Context, g *globalOptions, o *demoOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	if g.Server != "" || g.StoreURL != "" {
		return usagef("demo builds its own workspace; unset --server/--store (and STEWARD_SERVER/STEWARD_STORE)")
	}
	if !g.logLevelSet {
		g.LogLevel = "warn" // keep the demo's own report readable
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "steward-demo-")
		if err != nil {
			return fmt.Errorf("demo workspace: %w", err)
		}
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	step := func(format string, args ...any) { fmt.Fprintf(out, "  ✓ "+format+"\n", args...) }
	fmt.Fprintf(out, "Steward demo workspace: %s\n", dir)

	ws, err := demo.Setup(ctx, dir)
	if err != nil {
		return err
	}
	step("wrote %s (%d services) and seeded application databases: %s", ws.ConfigPath, len(ws.Services), strings.Join(ws.Seeded, ", "))

	recv, err := demo.StartReceiver(dir)
	if err != nil {
		return fmt.Errorf("demo webhook receiver: %w", err)
	}
	defer recv.Close()
	step("started a webhook receiver at %s standing in for the team's alerting", recv.URL)

	pg, err := demo.StartPostgres(ctx, dir)
	switch {
	case errors.Is(err, demo.ErrNoPostgres):
		step("PostgreSQL is not installed: skipping the PostgreSQL catalog service (%v)", err)
	case err != nil:
		return err
	default:
		defer pg.Close(context.WithoutCancel(ctx))
		step("started a throwaway PostgreSQL cluster for the catalog service (%s) and seeded 10,000 products", pg.Describe())
	}

	g.ConfigPath = ws.ConfigPath
	g.configExplicit = true
	cfg, err := g.loadConfig(true)
	if err != nil {
		return fmt.Errorf("demo config does not validate (a bug, please report it): %w", err)
	}
	step("validated the config: %d services, %d users", len(cfg.Services), len(cfg.Users))

	listen, err := demoListen(o.Listen)
	if err != nil {
		return err
	}
	site, err := demoSiteSetup(ctx, g, ws, listen, step)
	if err != nil {
		return fmt.Errorf("demo probes: %w", err)
	}
	defer site.Close()
	cfg = site.Config
	so := &serveOptions{Listen: listen, Grace: 10 * time.Second, SLOInterval: demoSLOInterval}
	return serve(ctx, g, cfg, so, func(ctx context.Context, r *running) error {
		a := r.App
		secret, _, err := a.auth.CreateToken(ctx, a.actor.Actor(), ws.AdminUser, "demo", 0)
		if err != nil {
			return err
		}
		step("started the store (%s), job queue, audit log and server on %s", a.store.Dialect(), r.URL)
		step("users from the config: %s", strings.Join(ws.Users, ", "))
		if err := demoSelfCheck(ctx, r, secret, ws, step); err != nil {
			return fmt.Errorf("demo self-check: %w", err)
		}
		if err := demoActions(ctx, r, recv, step); err != nil {
			return fmt.Errorf("demo actions: %w", err)
		}
		if err := demoIntegrity(ctx, r, step); err != nil {
			return fmt.Errorf("demo checks and fixes: %w", err)
		}
		if err := demoRecovery(ctx, r, ws, pg != nil, step); err != nil {
			return fmt.Errorf("demo backups and drills: %w", err)
		}
		if err := demoAccess(ctx, r, pg != nil, step); err != nil {
			return fmt.Errorf("demo access: %w", err)
		}
		if err := demoKit(ctx, g, ws, step); err != nil {
			return fmt.Errorf("demo emergency kit: %w", err)
		}
		if err := demoSite(ctx, r, site, recv, step); err != nil {
			return fmt.Errorf("demo probes and SLOs: %w", err)
		}
		if err := demoReport(ctx, r, ws, step); err != nil {
			return fmt.Errorf("demo evidence report: %w", err)
		}
		fmt.Fprintf(out, "\nWeb UI:  %s/login  (paste the token below; see Services, Approvals, Actions, Reviews, Audit)\n", r.URL)
		fmt.Fprintf(out, "API:     curl -H 'Authorization: Bearer %s' %s/api/v1/services\n", secret, r.URL)
		fmt.Fprintf(out, "Token for %s (admin): %s\n", ws.AdminUser, secret)
		fmt.Fprintf(out, "CLI:     go run ./cmd/steward -c %s audit verify\n", ws.ConfigPath)
		if err := demoScore(ctx, r, out); err != nil {
			return fmt.Errorf("demo scorecard: %w", err)
		}
		if o.Once {
			fmt.Fprintln(out, "\n--once: self-check passed, shutting down.")
			return errStop
		}
		fmt.Fprintln(out, "\nServing until interrupted (Ctrl-C).")
		return nil
	})
}

// demoSelfCheck exercises the running server the way a user would.
func demoSelfCheck(ctx context.Context, r *running, token string, ws *demo.Workspace, step func(string, ...any)) error {
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string, auth bool) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b), nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, err := get("/readyz", false)
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/readyz not ready after 10s: %d %s %v", code, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	step("/healthz and /readyz answer 200")
	code, body, err := get("/api/v1/services", true)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("GET /api/v1/services: %d %v", code, err)
	}
	for _, s := range ws.Services {
		if !strings.Contains(body, `"`+s+`"`) {
			return fmt.Errorf("GET /api/v1/services does not list %s", s)
		}
	}
	if strings.Contains(body, "sqlite://") {
		return errors.New("GET /api/v1/services leaked a database URL")
	}
	step("API lists services %s with the admin token; database URLs are not exposed", strings.Join(ws.Services, ", "))
	if code, _, err := get("/api/v1/services", false); err != nil || code != http.StatusUnauthorized {
		return fmt.Errorf("GET /api/v1/services without a token: %d %v, want 401", code, err)
	}
	step("API refuses a request without a token (401)")
	cp, published, err := writeCheckpoint(ctx, r.App, nil, false)
	if err != nil {
		return err
	}
	step("signed audit checkpoint at size %d, published to %s", cp.Size, strings.Join(published, ", "))
	rep, err := audit.Verify(ctx, audit.StoreSource(r.App.store), []audit.Checkpoint{cp})
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("audit verify: %s", rep.Problem)
	}
	step("audit log verifies: %d events, hash chain intact, consistent with the checkpoint", rep.Events)
	return nil
}

// demoActions walks through the one door for change: a deploy gate that
// needs two approvers, a refused self-approval, an auto-approved deploy, and
// a break-glass with its review, with every notification delivered to the
// receiver.
func demoActions(ctx context.Context, r *running, recv *demo.Receiver, step func(string, ...any)) error {
	a := r.App
	p, err := a.pipeline()
	if err != nil {
		return err
	}
	as := func(name string) (auth.Principal, error) { return a.principalOf(ctx, name) }
	erin, err := as("erin")
	if err != nil {
		return err
	}
	bob, _ := as("bob")
	carol, _ := as("carol")
	frank, _ := as("frank")

	act, err := p.Create(ctx, erin, action.Request{Kind: "deploy.gate", Service: "shop", Params: json.RawMessage(`{"version":"v1.4.2"}`), Reason: "release 1.4.2: faster checkout"})
	if err != nil {
		return err
	}
	d, err := p.Decision(ctx, act)
	if err != nil {
		return err
	}
	step("erin requested deploy.gate #%d (%s, risk %s); rule %s needs %s", act.ID, act.Plan.Summary, act.Risk, act.Rule, d.Missing)
	if _, _, err := p.Approve(ctx, erin, act.ID, action.Vote{Via: "demo"}); !errors.Is(err, action.ErrSelfApproval) {
		return fmt.Errorf("self-approval was not refused: %v", err)
	}
	step("erin's own approval was refused: %s", "requester cannot approve their own action")
	if _, _, err := p.Approve(ctx, bob, act.ID, action.Vote{Comment: "checked the changelog", Via: "demo"}); err != nil {
		return err
	}
	if act, _, err = p.Approve(ctx, carol, act.ID, action.Vote{Comment: "canary is green", Via: "demo"}); err != nil {
		return err
	}
	if act, err = p.Execute(ctx, erin, act.ID); err != nil {
		return err
	}
	step("bob and carol approved; the gate executed: %s (%s)", act.State, act.Result.Summary)

	auto, err := p.Create(ctx, erin, action.Request{Kind: "deploy.gate", Service: "billing", Params: json.RawMessage(`{"version":"v2.0.0"}`), Reason: "release 2.0.0"})
	if err != nil {
		return err
	}
	step("billing deploy #%d was %s by rule %s (low risk), still planned and audited", auto.ID, auto.State, auto.Rule)

	bg, review, err := p.BreakGlass(ctx, frank, action.Request{Kind: "deploy.gate", Service: "shop", Params: json.RawMessage(`{"version":"hotfix-1.4.3"}`), Reason: "INC-42: checkout returns 500"})
	if err != nil {
		return err
	}
	step("frank broke the glass: action #%d %s without approval; every channel notified; review %d opened (due %s)", bg.ID, bg.State, review.ID, review.Deadline.Format(time.RFC3339))
	if _, err := p.CompleteReview(ctx, frank, review.ID, "fine"); !errors.Is(err, action.ErrSelfReview) {
		return fmt.Errorf("self-review was not refused: %v", err)
	}
	if _, err := p.CompleteReview(ctx, bob, review.ID, "hotfix matches INC-42 timeline"); err != nil {
		return err
	}
	rv, err := p.CompleteReview(ctx, carol, review.ID, "agree; follow-up ticket OPS-7")
	if err != nil {
		return err
	}
	step("frank could not review his own break-glass; bob and carol did: review %d %s", rv.ID, rv.State)

	ob, err := a.outbox(nil)
	if err != nil {
		return err
	}
	// Resolve messages go out after what they resolve: deliver until done.
	sent := 0
	for range 5 {
		n, failed, err := ob.Deliver(ctx)
		if err != nil || failed > 0 {
			return fmt.Errorf("deliver notifications: %d failed, %v", failed, err)
		}
		if n == 0 {
			break
		}
		sent += n
	}
	events := map[string]int{}
	for _, e := range recv.Events() {
		events[e.Event]++
	}
	if events["break_glass.used"] != 1 || recv.Rejected() != 0 {
		return fmt.Errorf("receiver got %v (rejected %d), want one break_glass.used", events, recv.Rejected())
	}
	step("outbox delivered %d signed notifications to the webhook (%s)", sent, summarize(events))
	return nil
}

func summarize(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// demoRecovery takes encrypted backups and rehearses restoring them: the
// shop's SQLite database, and the catalog's PostgreSQL database when
// PostgreSQL is installed. The drills measure RTO and RPO and verify the
// restored data.
func demoRecovery(ctx context.Context, r *running, ws *demo.Workspace, withPG bool, step func(string, ...any)) error {
	a := r.App
	if err := demo.AppWrite(ctx, ws.Dir, time.Now()); err != nil {
		return fmt.Errorf("simulate an order: %w", err)
	}
	ob, err := a.outbox(nil)
	if err != nil {
		return err
	}
	bdeps := backup.Deps{Store: a.store, Engines: dbxall.Registry(), Audit: a.auditFunc(), Notifier: ob,
		Logger: a.log.With("component", "backup"), TempDir: a.cfg.Steward.DataDir}
	ddeps, err := a.drillDeps(nil)
	if err != nil {
		return err
	}
	targets := []string{"shop"}
	if withPG {
		targets = append(targets, "catalog")
	}
	for _, name := range targets {
		svc := a.cfg.Service(name)
		if svc == nil || len(svc.Backups) == 0 || len(svc.Drills) == 0 {
			step("%s has no backup and drill configured (workspace from an older demo?); skipping", name)
			continue
		}
		m, err := backup.Run(ctx, bdeps, svc, &svc.Backups[0], a.actor.Actor())
		if err != nil {
			return err
		}
		enc := "not encrypted"
		if m.Encrypted {
			enc = "encrypted with age"
		}
		step("backup %s/%s: %s, %s in %d object(s), SHA-256 of each in the manifest, %s", name, svc.Backups[0].Name, m.ID, fmtBytes(m.Size), len(m.Objects), enc)
		rep, err := drill.Run(ctx, ddeps, svc, &svc.Drills[0], drill.RunOptions{Actor: a.actor.Actor()})
		if err != nil {
			return err
		}
		var phases []string
		for _, p := range rep.Phases {
			phases = append(phases, fmt.Sprintf("%s %.2fs", p.Name, p.Seconds))
		}
		passed := 0
		for _, v := range rep.Verifications {
			if v.Status == "passed" {
				passed++
			}
		}
		step("drill %s/%s %s: RTO %.2fs (objective %s), RPO %s from %s (objective %s); %d of %d verifications passed; %s",
			name, svc.Drills[0].Name, strings.ToUpper(rep.Status), deref(rep.RTOSeconds), svc.Objectives.RTO,
			time.Duration(deref(rep.RPOSeconds)*float64(time.Second)).Round(time.Second), rep.RPOSource, svc.Objectives.RPO,
			passed, len(rep.Verifications), strings.Join(phases, ", "))
	}
	step("runbook from the last drill: go run ./cmd/steward -c %s drill runbook shop/weekly", ws.ConfigPath)
	return nil
}

func deref(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}

// demoIntegrity runs the shop's integrity checks, which find the seeded data
// errors, then repairs the negative amounts through a reviewed fix approved
// by two people, and shows the check turning green.
func demoIntegrity(ctx context.Context, r *running, step func(string, ...any)) error {
	a := r.App
	svc := a.cfg.Service("shop")
	if svc == nil || svc.Check("orders-amount") == nil || svc.Fix("fix-negative-amount") == nil {
		step("the shop has no checks or fixes configured (workspace from an older demo?); skipping")
		return nil
	}
	ob, err := a.outbox(nil)
	if err != nil {
		return err
	}
	cdeps := integrity.Deps{Store: a.store, Audit: a.auditFunc(), Notifier: ob, Logger: a.log.With("component", "checks")}
	results, err := integrity.Run(ctx, cdeps, svc, nil, a.actor.Actor())
	if err != nil {
		return err
	}
	var summary []string
	var negative []string
	for _, res := range results {
		summary = append(summary, fmt.Sprintf("%s %s (%d)", res.Check, strings.ToUpper(res.Status), res.Violations))
		if res.Check == "orders-amount" {
			for _, row := range res.Sample {
				negative = append(negative, fmt.Sprint(row["id"]))
			}
		}
	}
	step("integrity checks on shop: %s", strings.Join(summary, ", "))
	if len(negative) == 0 {
		step("no negative amounts left to fix (already fixed in this workspace)")
		return nil
	}
	p, err := a.pipeline()
	if err != nil {
		return err
	}
	as := func(name string) (auth.Principal, error) { return a.principalOf(ctx, name) }
	erin, err := as("erin")
	if err != nil {
		return err
	}
	bob, _ := as("bob")
	carol, _ := as("carol")
	params, _ := json.Marshal(fix.ApplyParams{Service: "shop", Fix: "fix-negative-amount", Params: map[string]string{"order_ids": strings.Join(negative, ",")}})
	act, err := p.Create(ctx, erin, action.Request{Kind: fix.ApplyKindName, Service: "shop", Target: "fix-negative-amount", Params: params,
		Reason: "orders-amount: paid orders with negative amounts (sign bug in release 1.4.1)"})
	if err != nil {
		return err
	}
	step("erin requested fix #%d: %s; rule %s needs two approvers", act.ID, act.Plan.Summary, act.Rule)
	if _, _, err := p.Approve(ctx, bob, act.ID, action.Vote{Comment: "matches the bug report", Via: "demo"}); err != nil {
		return err
	}
	if _, _, err := p.Approve(ctx, carol, act.ID, action.Vote{Comment: "finance agrees", Via: "demo"}); err != nil {
		return err
	}
	if act, err = p.Execute(ctx, erin, act.ID); err != nil {
		return err
	}
	n, _, err := a.store.CountFixImages(ctx, act.ID)
	if err != nil {
		return err
	}
	step("bob and carol approved; the fix ran in one transaction, rows locked and compared with the reviewed plan: %s (%d row images, undo with: steward fix undo %d)", act.Result.Summary, n, act.ID)
	again, err := integrity.Run(ctx, cdeps, svc, []string{"orders-amount"}, a.actor.Actor())
	if err != nil {
		return err
	}
	step("orders-amount re-checked: %s (%d violations); the other findings stay with their owners", strings.ToUpper(again[0].Status), again[0].Violations)
	return nil
}

// demoAccess grants a read-only role on the catalog's PostgreSQL database
// just in time, uses it, lets it expire and shows the revocation record; and
// scans every database for standing privileges.
func demoAccess(ctx context.Context, r *running, withPG bool, step func(string, ...any)) error {
	a := r.App
	ob, err := a.outbox(nil)
	if err != nil {
		return err
	}
	if withPG && a.cfg.Service("catalog") != nil && a.cfg.Service("catalog").AccessProfile("main", "read-only") != nil {
		p, err := a.pipeline()
		if err != nil {
			return err
		}
		k, err := p.Kinds().Get(access.KindName)
		if err != nil {
			return err
		}
		deps := k.(*access.GrantKind).Deps()
		as := func(name string) (auth.Principal, error) { return a.principalOf(ctx, name) }
		erin, err := as("erin")
		if err != nil {
			return err
		}
		bob, _ := as("bob")
		act, err := p.Create(ctx, erin, access.Request("catalog", "main", "read-only", "4s", "INC-51: check the price import", "", false))
		if err != nil {
			return err
		}
		if _, _, err := p.Approve(ctx, bob, act.ID, action.Vote{Comment: "ok for the incident", Via: "demo"}); err != nil {
			return err
		}
		_, cred, err := access.Issue(ctx, p, erin, act.ID)
		if err != nil {
			return err
		}
		if cred == nil {
			return errors.New("the grant was issued without handing over its credential")
		}
		step("erin asked for read-only access to catalog/main for 4s (INC-51); bob approved; Steward created role %s and handed erin its connection string once (never stored)", cred.Role)
		conn, err := pgx.Connect(ctx, cred.DSN)
		if err != nil {
			return fmt.Errorf("connect with the granted role: %w", err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM products").Scan(&n); err != nil {
			return err
		}
		_, uerr := conn.Exec(ctx, "UPDATE products SET price_cents = 0 WHERE id = 1")
		if uerr == nil {
			return errors.New("a read-only grant could UPDATE")
		}
		step("with it: SELECT counted %d products; UPDATE was denied (%s)", n, firstLine(uerr.Error()))
		time.Sleep(time.Until(cred.ExpiresAt) + 100*time.Millisecond)
		// The server's sweeper (every 5 s) may be revoking it already; sweep
		// here too and wait until the revocation is proven.
		var g store.GrantRow
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := access.Sweep(ctx, deps, time.Now()); err != nil {
				return err
			}
			if g, err = a.store.GetGrant(ctx, cred.GrantID); err != nil {
				return err
			}
			if g.State == "revoked" || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		rev := access.ParseRevocation(g.Revocation)
		var steps []string
		for _, s := range rev.Steps {
			steps = append(steps, fmt.Sprintf("%s %s", s.Name, s.FinishedAt.Sub(s.StartedAt).Round(time.Millisecond)))
		}
		if err := conn.Ping(ctx); err == nil {
			return errors.New("the granted session survived revocation")
		}
		if g.State != "revoked" {
			return fmt.Errorf("grant %d is %s 20 s after expiry: %s", g.ID, g.State, g.LastError)
		}
		step("at expiry the grant was revoked with proof: grant %d is %s; revocation record: %s; erin's open session was terminated", g.ID, g.State, strings.Join(steps, ", "))
	}
	for _, name := range []string{"catalog", "shop"} {
		svc := a.cfg.Service(name)
		if svc == nil {
			continue
		}
		reps, err := access.Scan(ctx, access.ScanDeps{Store: a.store, Audit: a.auditFunc(), Notifier: ob, Logger: a.log.With("component", "access-scan")}, svc, a.actor.Actor())
		if err != nil {
			return err
		}
		for _, rep := range reps {
			switch {
			case rep.Note != "":
				step("standing-privilege scan of %s/%s: %s", name, rep.Database, rep.Note)
			case len(rep.Findings) == 0:
				step("standing-privilege scan of %s/%s: %d login roles, no findings", name, rep.Database, len(rep.Principals))
			default:
				var fs []string
				for _, f := range rep.Findings {
					fs = append(fs, fmt.Sprintf("%s (%s: %s)", f.Principal, f.Severity, strings.Join(f.Reasons, "; ")))
				}
				step("standing-privilege scan of %s/%s: %d login roles, finding(s): %s", name, rep.Database, len(rep.Principals), strings.Join(fs, ", "))
			}
		}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// demoKit seals the emergency credentials into a kit split 3-of-5 among
// test holders, then drills opening it with three shares and shows that two
// are refused.
func demoKit(ctx context.Context, g *globalOptions, ws *demo.Workspace, step func(string, ...any)) error {
	names, recips, ids, err := demo.KitHolders(ws.Dir)
	if err != nil {
		return err
	}
	out := filepath.Join(ws.Dir, "kits", time.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return err
	}
	args := []string{"-c", ws.ConfigPath, "--log-level", "error", "kit", "create", "--shares", "5", "--threshold", "3", "--out", out}
	for i := range names {
		args = append(args, "--recipient", recips[i], "--holder", names[i])
	}
	var buf, errb strings.Builder
	if code := run(ctx, args, strings.NewReader(""), &buf, &errb); code != 0 {
		return fmt.Errorf("kit create: exit %d: %s", code, errb.String())
	}
	shares, err := filepath.Glob(filepath.Join(out, "share-*.age"))
	if err != nil || len(shares) != 5 {
		return fmt.Errorf("kit create wrote %d shares, want 5 (%v)", len(shares), err)
	}
	var plain []string
	for i, s := range shares {
		p, err := demo.DecryptShare(s, ids[i])
		if err != nil {
			return err
		}
		plain = append(plain, p)
	}
	step("sealed the emergency credentials into a kit at %s: 5 age-encrypted Shamir shares, any 3 open it, with a printable offline runbook (README.md, index.html)", out)
	buf.Reset()
	errb.Reset()
	drillArgs := append([]string{"-c", ws.ConfigPath, "--log-level", "error", "kit", "drill", out}, plain[0], plain[2], plain[4])
	if code := run(ctx, drillArgs, strings.NewReader(""), &buf, &errb); code != 0 {
		return fmt.Errorf("kit drill: exit %d: %s", code, errb.String())
	}
	step("kit drill with the shares of %s, %s and %s: %s", names[0], names[2], names[4], strings.TrimSpace(firstLine(buf.String())))
	buf.Reset()
	errb.Reset()
	if code := run(ctx, append([]string{"-c", ws.ConfigPath, "--log-level", "error", "kit", "drill", out}, plain[1], plain[3]), strings.NewReader(""), &buf, &errb); code == 0 {
		return errors.New("the kit opened with two shares")
	}
	refusal := ""
	for _, l := range strings.Split(errb.String(), "\n") {
		if strings.HasPrefix(l, "steward: ") {
			refusal = strings.TrimPrefix(l, "steward: ")
		}
	}
	step("with only two shares the kit refuses to open: %s", refusal)
	for _, p := range plain {
		os.Remove(p) // plain test shares do not stay on disk
	}
	return nil
}

// principalOf is the principal of a user in the store, as if they had
// authenticated: the demo acts as its users.
func (a *app) principalOf(ctx context.Context, name string) (auth.Principal, error) {
	u, err := a.store.GetUser(ctx, name)
	if err != nil {
		return auth.Principal{}, err
	}
	return a.auth.Principal(u, 0, false), nil
}
