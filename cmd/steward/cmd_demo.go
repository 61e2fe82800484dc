package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/demo"
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

	g.ConfigPath = ws.ConfigPath
	g.configExplicit = true
	cfg, err := g.loadConfig(true)
	if err != nil {
		return fmt.Errorf("demo config does not validate (a bug, please report it): %w", err)
	}
	step("validated the config: %d services, %d users", len(cfg.Services), len(cfg.Users))

	listen := o.Listen
	if ln, err := net.Listen("tcp", listen); err != nil {
		listen = "127.0.0.1:0"
	} else {
		ln.Close()
	}
	so := &serveOptions{Listen: listen, Grace: 10 * time.Second}
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
		fmt.Fprintf(out, "\nWeb UI:  %s/login  (paste the token below)\n", r.URL)
		fmt.Fprintf(out, "API:     curl -H 'Authorization: Bearer %s' %s/api/v1/services\n", secret, r.URL)
		fmt.Fprintf(out, "Token for %s (admin): %s\n", ws.AdminUser, secret)
		fmt.Fprintf(out, "CLI:     go run ./cmd/steward -c %s audit verify\n", ws.ConfigPath)
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
