package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	dbxall "github.com/stewardhq/steward/internal/dbx/all"
)

func newBackupCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "backup", Short: "Take, list and verify backups"}
	cmd.AddCommand(newBackupRunCmd(g), newBackupListCmd(g), newBackupVerifyCmd(g))
	return cmd
}

// serviceBackup resolves SERVICE/BACKUP against the config. A relative
// file repository is resolved against the config file's directory.
func serviceBackup(g *globalOptions, cfg *config.Config, arg string) (*config.Service, *config.Backup, error) {
	svcName, name, ok := strings.Cut(arg, "/")
	if !ok || svcName == "" || name == "" || strings.Contains(name, "/") {
		return nil, nil, usagef("%q: want SERVICE/BACKUP, e.g. shop/nightly", arg)
	}
	svc := cfg.Service(svcName)
	if svc == nil {
		return nil, nil, usagef("unknown service %q", svcName)
	}
	b := svc.Backup(name)
	if b == nil {
		var names []string
		for _, x := range svc.Backups {
			names = append(names, x.Name)
		}
		return nil, nil, usagef("service %s has no backup %q (configured: %s)", svcName, name, strings.Join(names, ", "))
	}
	return svc, withRepository(g, b), nil
}

// withRepository returns b with a relative repository path made absolute
// against the config file's directory, as the config reference says.
func withRepository(g *globalOptions, b *config.Backup) *config.Backup {
	r := b.Repository
	if r == "" || strings.Contains(r, "://") || filepath.IsAbs(r) {
		return b
	}
	base, err := filepath.Abs(filepath.Dir(g.ConfigPath))
	if err != nil {
		return b
	}
	c := *b
	c.Repository = filepath.Join(base, r)
	return &c
}

func newBackupRunCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "run SERVICE/BACKUP",
		Short: "Take a backup now: dump, encrypt, upload with checksums, write the manifest, apply retention",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackupRun(cmd.Context(), g, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

func runBackupRun(ctx context.Context, g *globalOptions, arg string, out, errw io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.actor.Require(auth.PermOperate); err != nil {
		return err
	}
	svc, b, err := serviceBackup(g, a.cfg, arg)
	if err != nil {
		return err
	}
	if !backup.Runs(b.Method) {
		return usagef("backup %s/%s uses method %s: its own tool takes it; `steward backup list %s/%s` shows what it has", svc.Name, b.Name, b.Method, svc.Name, b.Name)
	}
	ob, err := a.outbox(nil)
	if err != nil {
		return err
	}
	tmp := filepath.Join(a.cfg.Steward.DataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("temporary directory %s: %w", tmp, err)
	}
	pp := newProgressPrinter(errw)
	m, err := backup.Run(ctx, backup.Deps{
		Store: a.store, Engines: dbxall.Registry(), Audit: a.auditFunc(), Notifier: ob,
		Logger: a.log.With("component", "backup"), Progress: pp.report, TempDir: tmp,
	}, svc, b, a.actor.Actor())
	pp.finish()
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(out, m)
	}
	fmt.Fprintf(out, "backup %s stored in %s\n", m.Ref(), redactedRepo(b.Repository))
	enc := "not encrypted"
	if m.Encrypted {
		enc = fmt.Sprintf("encrypted to %d age recipient(s)", len(m.Recipients))
	}
	fmt.Fprintf(out, "  %s of %s %s (%s): %d object(s), %s, %s\n", m.Method, m.Engine, m.ServerVersion, m.ToolVersion, len(m.Objects), fmtBytes(m.Size), enc)
	var rows int64
	for _, n := range m.RowCounts {
		rows += n
	}
	fmt.Fprintf(out, "  snapshot %s, %d table(s), %d row(s)", m.SnapshotTime.Format(time.RFC3339), len(m.RowCounts), rows)
	if m.Freshness != "" {
		fmt.Fprintf(out, ", freshness %s", m.Freshness)
	}
	fmt.Fprintf(out, "\n  took %s\n", m.FinishedAt.Sub(m.StartedAt).Round(time.Millisecond))
	return nil
}

func redactedRepo(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// backupListEntry is one configured backup and what it has, for JSON.
type backupListEntry struct {
	Service string            `json:"service"`
	Backup  string            `json:"backup"`
	Method  string            `json:"method"`
	RPO     string            `json:"rpo,omitempty"`
	Stale   bool              `json:"stale"`
	Newest  *time.Time        `json:"newest,omitempty"`
	Backups []backup.Manifest `json:"backups"`
	Error   string            `json:"error,omitempty"`
}

func newBackupListCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list [SERVICE[/BACKUP]]",
		Short: "List backups, newest last, and mark the newest STALE when it is older than the service's RPO (exit 1 if any is)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			filter := ""
			if len(args) == 1 {
				filter = args[0]
			}
			return runBackupList(cmd.Context(), g, filter, cmd.OutOrStdout())
		},
	}
}

func runBackupList(ctx context.Context, g *globalOptions, filter string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.actor.Require(auth.PermRead); err != nil {
		return err
	}
	type target struct {
		svc *config.Service
		b   *config.Backup
	}
	var targets []target
	switch svcName, name, _ := strings.Cut(filter, "/"); {
	case filter == "":
		for i := range a.cfg.Services {
			s := &a.cfg.Services[i]
			for j := range s.Backups {
				targets = append(targets, target{s, withRepository(g, &s.Backups[j])})
			}
		}
	case name == "":
		s := a.cfg.Service(svcName)
		if s == nil {
			return usagef("unknown service %q", svcName)
		}
		for j := range s.Backups {
			targets = append(targets, target{s, withRepository(g, &s.Backups[j])})
		}
	default:
		s, b, err := serviceBackup(g, a.cfg, filter)
		if err != nil {
			return err
		}
		targets = append(targets, target{s, b})
	}

	now := time.Now()
	entries := make([]backupListEntry, 0, len(targets))
	stale, failed := 0, 0
	for _, t := range targets {
		e := backupListEntry{Service: t.svc.Name, Backup: t.b.Name, Method: t.b.Method, RPO: t.svc.Objectives.RPO, Backups: []backup.Manifest{}}
		ms, err := listBackups(ctx, t.svc, t.b)
		if err != nil {
			e.Error = err.Error()
			failed++
		} else if ms != nil {
			e.Backups = ms
		}
		if e.Error == "" {
			rpo, _ := rpoOf(t.svc)
			if len(ms) > 0 {
				newest := ms[len(ms)-1].Time()
				e.Newest = &newest
				e.Stale = backup.Stale(ms[len(ms)-1], rpo, now)
			} else {
				e.Stale = rpo > 0 // no backup at all misses any objective
			}
			if e.Stale {
				stale++
			}
		}
		entries = append(entries, e)
	}

	if g.json() {
		if err := printJSON(out, entries); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BACKUP\tID\tSNAPSHOT\tSIZE\tENCRYPTED\tAGE\tSTATUS")
		for _, e := range entries {
			ref := e.Service + "/" + e.Backup
			switch {
			case e.Error != "":
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tERROR: %s\n", ref, e.Error)
				continue
			case len(e.Backups) == 0:
				status := "no backups"
				if e.Stale {
					status = "STALE: no backups (rpo " + e.RPO + ")"
				}
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t%s\n", ref, status)
				continue
			}
			for i, m := range e.Backups {
				status := ""
				if i == len(e.Backups)-1 {
					status = "newest"
					if e.Stale {
						status = "STALE (rpo " + e.RPO + ")"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ref, m.ID, m.Time().UTC().Format("2006-01-02 15:04:05Z"),
					fmtBytes(m.Size), yesNo(m.Encrypted), fmtAge(m.Age(now)), status)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	switch {
	case failed > 0:
		return silentOrErr(g, fmt.Errorf("%d backup listing(s) failed", failed))
	case stale > 0:
		return silentError{exitFailed}
	}
	return nil
}

// silentOrErr reports err on stderr in text mode; in JSON mode the errors
// are in the output already.
func silentOrErr(g *globalOptions, err error) error {
	if g.json() {
		return silentError{exitRuntime}
	}
	return err
}

// listBackups lists what a configured backup has, by method.
func listBackups(ctx context.Context, svc *config.Service, b *config.Backup) ([]backup.Manifest, error) {
	var ms []backup.Manifest
	var err error
	switch b.Method {
	case "pgbackrest":
		ms, err = backup.ListPgBackRest(ctx, b)
	case "command":
		ms, err = backup.ListCommand(ctx, b)
	default:
		var repo *backup.Repository
		if repo, err = backup.OpenRepository(ctx, b.Repository); err != nil {
			return nil, err
		}
		defer repo.Close()
		return repo.List(ctx, svc.Name, b.Name)
	}
	for i := range ms {
		ms[i].Service = svc.Name
	}
	return ms, err
}

func rpoOf(svc *config.Service) (time.Duration, error) {
	if svc.Objectives.RPO == "" {
		return 0, nil
	}
	return config.ParseDuration(svc.Objectives.RPO)
}

// backupVerifyResult is the JSON of backup verify.
type backupVerifyResult struct {
	Backup  string   `json:"backup"`
	OK      bool     `json:"ok"`
	Objects int      `json:"objects"`
	Bytes   int64    `json:"bytes"`
	Errors  []string `json:"errors,omitempty"`
}

func newBackupVerifyCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "verify SERVICE/BACKUP/ID",
		Short: "Re-read every object of a backup and compare its SHA-256 with the manifest (exit 1 on a mismatch)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackupVerify(cmd.Context(), g, args[0], cmd.OutOrStdout())
		},
	}
}

func runBackupVerify(ctx context.Context, g *globalOptions, ref string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	parts := strings.Split(ref, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return usagef("%q: want SERVICE/BACKUP/ID (see `steward backup list`)", ref)
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.actor.Require(auth.PermRead); err != nil {
		return err
	}
	svc, b, err := serviceBackup(g, a.cfg, parts[0]+"/"+parts[1])
	if err != nil {
		return err
	}
	if !backup.Runs(b.Method) {
		return usagef("backup %s/%s uses method %s: Steward keeps no checksums of it; verify it with its own tool", svc.Name, b.Name, b.Method)
	}
	repo, err := backup.OpenRepository(ctx, b.Repository)
	if err != nil {
		return err
	}
	defer repo.Close()
	m, err := repo.Get(ctx, ref)
	if errors.Is(err, backup.ErrNoBackup) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	start := time.Now()
	verr := backup.Verify(ctx, repo, m)
	if verr != nil && !errors.Is(verr, backup.ErrChecksum) {
		return verr
	}
	res := backupVerifyResult{Backup: m.Ref(), OK: verr == nil, Objects: len(m.Objects), Bytes: m.Size}
	if verr != nil {
		res.Errors = strings.Split(verr.Error(), "\n")
	}
	outcome := "ok"
	if !res.OK {
		outcome = "failed"
	}
	if err := a.auditFunc()(ctx, a.actor.Actor(), "backup.verify", "backup:"+m.Ref(), outcome,
		map[string]any{"objects": res.Objects, "bytes": res.Bytes, "errors": res.Errors, "seconds": time.Since(start).Seconds()}); err != nil {
		return err
	}
	if g.json() {
		if err := printJSON(out, res); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(out, "backup %s: ok, %d object(s), %s verified in %s\n", res.Backup, res.Objects, fmtBytes(res.Bytes), time.Since(start).Round(time.Millisecond))
	} else {
		fmt.Fprintf(out, "backup %s: FAILED, %d of %d object(s) do not match the manifest:\n", res.Backup, len(res.Errors), res.Objects)
		for _, e := range res.Errors {
			fmt.Fprintf(out, "  %s\n", e)
		}
	}
	if !res.OK {
		return silentError{exitFailed}
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// fmtAge renders an age coarsely: 45s, 12m, 3h12m, 2d4h.
func fmtAge(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

// progressPrinter shows backup progress on stderr: a live line on a
// terminal (at most 4 updates a second), one summary line per phase
// otherwise.
type progressPrinter struct {
	w   io.Writer
	tty bool

	mu   sync.Mutex
	last time.Time
	live bool // a live line is on screen
}

func newProgressPrinter(w io.Writer) *progressPrinter {
	f, ok := w.(*os.File)
	return &progressPrinter{w: w, tty: ok && isTerminal(f)}
}

func (p *progressPrinter) report(pr backup.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		if pr.Done {
			fmt.Fprintf(p.w, "%s: %s at %s/s\n", pr.Phase, fmtBytes(pr.Bytes), fmtBytes(int64(pr.Rate)))
		}
		return
	}
	if !pr.Done && time.Since(p.last) < 250*time.Millisecond {
		return
	}
	p.last = time.Now()
	line := fmt.Sprintf("%-7s %s", pr.Phase, fmtBytes(pr.Bytes))
	if pr.Total > 0 {
		line += fmt.Sprintf(" / %s (%d%%)", fmtBytes(pr.Total), pr.Bytes*100/pr.Total)
	}
	line += fmt.Sprintf("  %s/s", fmtBytes(int64(pr.Rate)))
	if pr.ETA > 0 {
		line += "  ETA " + pr.ETA.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.live = true
	if pr.Done {
		fmt.Fprintln(p.w)
		p.live = false
	}
}

// finish ends a live line left on screen (a failed phase).
func (p *progressPrinter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live {
		fmt.Fprintln(p.w)
		p.live = false
	}
}
