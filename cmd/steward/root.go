package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/fix"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// Set by the linker: -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	ConfigPath string
	StoreURL   string
	Server     string
	Token      string
	Output     string
	LogLevel   string

	stdin          io.Reader
	stderr         io.Writer
	configExplicit bool
	logLevelSet    bool
}

func (g *globalOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVarP(&g.ConfigPath, "config", "c", envOr("STEWARD_CONFIG", "steward.yaml"), "config file (env STEWARD_CONFIG)")
	f.StringVar(&g.StoreURL, "store", os.Getenv("STEWARD_STORE"), "state store URL, overrides steward.store: sqlite:///path.db or postgres://… (env STEWARD_STORE)")
	f.StringVar(&g.Server, "server", os.Getenv("STEWARD_SERVER"), "Steward server URL for remote use, e.g. http://127.0.0.1:8080 (env STEWARD_SERVER)")
	f.StringVar(&g.Token, "token", os.Getenv("STEWARD_TOKEN"), "API token for --server (env STEWARD_TOKEN)")
	f.StringVarP(&g.Output, "output", "o", "text", "output format: text or json")
	f.StringVar(&g.LogLevel, "log-level", envOr("STEWARD_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (g *globalOptions) validate(allowed ...string) error {
	if len(allowed) == 0 {
		allowed = []string{"text", "json"}
	}
	for _, a := range allowed {
		if g.Output == a {
			return nil
		}
	}
	return usagef("--output %q: use one of %v", g.Output, allowed)
}

func (g *globalOptions) json() bool { return g.Output == "json" }

// logger writes to stderr: text on a terminal, JSON otherwise.
func (g *globalOptions) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := g.stderr.(*os.File); ok && isTerminal(f) {
		return slog.New(slog.NewTextHandler(g.stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(g.stderr, opts))
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

var errConfigMissing = errors.New("config file not found")

// loadConfig loads the config file. When the default file is absent and a
// store was given, it runs on built-in defaults, so `steward --store … user
// list` works without a config.
func (g *globalOptions) loadConfig(resolveSecrets bool) (*config.Config, error) {
	opts := config.LoadOptions{ResolveSecrets: resolveSecrets}
	if _, err := os.Stat(g.ConfigPath); errors.Is(err, fs.ErrNotExist) {
		if !g.configExplicit && g.StoreURL != "" {
			wd, _ := os.Getwd()
			cfg, err := config.Parse(filepath.Join(wd, "steward.yaml"), nil, opts)
			if err != nil {
				return nil, err
			}
			// Without a config, local state (the audit signing key) lives
			// next to a SQLite store rather than in the working directory.
			if dialect, _, path, err := store.ParseURL(g.StoreURL); err == nil && dialect == store.SQLite {
				if abs, err := filepath.Abs(filepath.Dir(path)); err == nil {
					cfg.Steward.DataDir = abs
				}
			}
			return cfg, nil
		}
		return nil, fmt.Errorf("%w: %s; pass --config FILE (or STEWARD_CONFIG), or run `steward demo` to see a working setup", errConfigMissing, g.ConfigPath)
	}
	return config.Load(g.ConfigPath, opts)
}

// app is what a local command needs: config, store, audit log, auth.
type app struct {
	cfg   *config.Config
	store *store.Store
	audit *audit.Log
	auth  *auth.Manager
	log   *slog.Logger
	actor auth.Principal

	notify  *notify.Outbox
	actions *action.Pipeline
	fix     *fix.Deps
}

// storeURL is --store, else the config's store (resolving a secret
// reference such as env:STEWARD_STORE_URL).
func (g *globalOptions) storeURL(cfg *config.Config) (string, error) {
	if g.StoreURL != "" {
		return g.StoreURL, nil
	}
	u := config.Secret(cfg.StoreURL())
	if !u.IsRef() {
		return string(u), nil
	}
	v, err := u.Resolve()
	if err != nil {
		return "", usagef("steward.store: %v", err)
	}
	return v, nil
}

// openApp opens the local store with migrations and starts the audit writer.
func (g *globalOptions) openApp(ctx context.Context) (*app, error) {
	if g.Server != "" {
		return nil, usagef("this command works on the local store; unset --server/STEWARD_SERVER or run it on the server host")
	}
	cfg, err := g.loadConfig(false)
	if err != nil {
		return nil, err
	}
	log := g.logger()
	if err := os.MkdirAll(cfg.Steward.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.Steward.DataDir, err)
	}
	storeURL, err := g.storeURL(cfg)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, storeURL, store.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, store: st, log: log}
	a.audit = audit.New(st, audit.Options{Logger: log})
	a.audit.Start(ctx)
	a.auth = auth.NewManager(st, customRoles(cfg), a.auditFunc())
	a.actor = a.auth.LocalAdmin(osUser())
	if g.Token != "" {
		// A token on the local store acts as that user, with their roles.
		p, err := a.auth.Authenticate(ctx, g.Token)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.actor = p
	}
	return a, nil
}

// withApp opens the local app, checks that the actor holds perm (none when
// empty), runs fn and closes the app.
func (g *globalOptions) withApp(ctx context.Context, perm auth.Permission, fn func(*app) error) error {
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if perm != "" {
		if err := a.actor.Require(perm); err != nil {
			return err
		}
	}
	return fn(a)
}

func (a *app) Close() {
	a.flushNotifications()
	if err := a.audit.Close(); err != nil {
		a.log.Error("flush audit log", "err", err)
	}
	a.store.Close()
}

// auditFunc adapts the audit log to the callback the feature packages take.
func (a *app) auditFunc() auth.AuditFunc {
	return auditFunc(a.audit)
}

func auditFunc(l *audit.Log) auth.AuditFunc {
	return func(ctx context.Context, actor, action, target, outcome string, details map[string]any) error {
		var d any
		if details != nil {
			d = details
		}
		_, err := l.Append(ctx, audit.Entry{Actor: actor, Action: action, Target: target, Outcome: outcome, Details: d})
		return err
	}
}

func customRoles(cfg *config.Config) map[string][]auth.Permission {
	out := map[string][]auth.Permission{}
	for _, r := range cfg.Roles {
		for _, p := range r.Permissions {
			out[r.Name] = append(out[r.Name], auth.Permission(p))
		}
		if _, ok := out[r.Name]; !ok {
			out[r.Name] = nil
		}
	}
	return out
}

func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return envOr("USER", "unknown")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newRootCmd builds the command tree.
func newRootCmd(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:           "steward",
		Short:         "Operations readiness with evidence: restore drills, guarded fixes, just-in-time access, probes, audit",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			g.configExplicit = cmd.Flags().Changed("config") || os.Getenv("STEWARD_CONFIG") != ""
			g.logLevelSet = cmd.Flags().Changed("log-level") || os.Getenv("STEWARD_LOG_LEVEL") != ""
			return nil
		},
	}
	g.AddFlags(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newVersionCmd(g),
		newValidateCmd(g),
		newSchemaCmd(g),
		newServeCmd(g),
		newAuditCmd(g),
		newUserCmd(g),
		newTokenCmd(g),
		newDemoCmd(g),
		newActionCmd(g),
		newVoteCmd(g, "approve"),
		newVoteCmd(g, "reject"),
		newReviewCmd(g),
		newGateCmd(g),
		newNotifyCmd(g),
		newPolicyCmd(g),
		newBackupCmd(g),
		newDrillCmd(g),
		newRestoreCmd(g),
		newCheckCmd(g),
		newFixCmd(g),
		newSQLCmd(g),
		newKitCmd(g),
		accessCmd(g),
		newProbeCmd(g),
		newSLOCmd(g),
		newAgentCmd(g),
		newReportCmd(g),
		newScoreCmd(g),
	)
	return root
}

// run executes the CLI with args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globalOptions{stdin: stdin, stderr: stderr}
	root := newRootCmd(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		if cmd != nil && isCobraUsageError(err) {
			err = usageError{err}
		}
		reportError(stderr, err)
	}
	return exitCode(err)
}

// isCobraUsageError recognizes cobra's own argument errors.
func isCobraUsageError(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires exactly", "unknown flag", "unknown shorthand", "flag needs an argument", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
