package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe"
)

func newProbeCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "probe", Short: "Synthetic probes: run one now, list what is configured, show the latest results"}
	cmd.AddCommand(newProbeRunCmd(g), newProbeListCmd(g), newProbeStatusCmd(g), newProbeLocationsCmd(g))
	return cmd
}

func newProbeRunCmd(g *globalOptions) *cobra.Command {
	var opts probeRunOptions
	cmd := &cobra.Command{
		Use:   "run SERVICE/PROBE",
		Short: "Run one probe now and print each step (exit 1 when it is down or could not run)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProbeRun(cmd.Context(), g, opts, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	opts.AddFlags(cmd)
	return cmd
}

// serviceProbe resolves SERVICE/PROBE against the config.
func serviceProbe(cfg *config.Config, arg string) (*config.Probe, error) {
	svcName, name, ok := strings.Cut(arg, "/")
	if !ok || svcName == "" || name == "" {
		return nil, usagef("%q: want SERVICE/PROBE, e.g. shop/home", arg)
	}
	svc := cfg.Service(svcName)
	if svc == nil {
		return nil, usagef("unknown service %q", svcName)
	}
	p := svc.Probe(name)
	if p == nil {
		var names []string
		for _, x := range svc.Probes {
			names = append(names, x.Name)
		}
		return nil, usagef("service %s has no probe %q (configured: %s)", svcName, name, strings.Join(names, ", "))
	}
	return p, nil
}

// runProbeRun runs a probe from this machine. It reads the config only:
// a probe changes nothing, so it needs no store and writes no audit event.
// With opts.Artifacts, a failed run's artifacts are written there as files.
func runProbeRun(ctx context.Context, g *globalOptions, opts probeRunOptions, arg string, out, errOut io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	cfg, err := g.loadConfig(true)
	if err != nil {
		return err
	}
	p, err := serviceProbe(cfg, arg)
	if err != nil {
		return err
	}
	popts := probe.Options{Logger: g.logger()}
	if p.Type == "browser" {
		popts.BrowserPool = probe.NewBrowserPool(1, "")
	}
	res := probe.Run(ctx, p, popts)
	var paths []string
	if opts.Artifacts != "" {
		if paths, err = writeArtifacts(opts.Artifacts, arg, res); err != nil {
			return err
		}
	}
	if g.json() {
		if err := printJSON(out, res); err != nil {
			return err
		}
		for _, path := range paths {
			fmt.Fprintf(errOut, "artifact written to %s\n", path)
		}
	} else {
		printProbeResult(out, arg, res)
		printArtifacts(out, res, paths)
	}
	if res.Status != probe.Up {
		return silentError{exitFailed}
	}
	return nil
}

func printProbeResult(out io.Writer, ref string, res probe.Result) {
	fmt.Fprintf(out, "%s (%s): %s in %s\n", ref, res.Type, strings.ToUpper(string(res.Status)), res.Duration.Round(time.Millisecond))
	ph := res.Phases
	if ph.Total > 0 {
		fmt.Fprintf(out, "  phases: dns %s, connect %s, tls %s, first byte %s, total %s\n",
			ph.DNS.Round(time.Microsecond), ph.Connect.Round(time.Microsecond), ph.TLS.Round(time.Microsecond), ph.FirstByte.Round(time.Microsecond), ph.Total.Round(time.Microsecond))
	}
	if res.Code != 0 {
		fmt.Fprintf(out, "  status code: %d\n", res.Code)
	}
	if res.Type == "tls" {
		fmt.Fprintf(out, "  certificate: %d days left\n", res.DaysLeft)
	}
	if len(res.Answers) > 0 {
		fmt.Fprintf(out, "  answers: %s\n", strings.Join(res.Answers, ", "))
	}
	if res.ThrottledAt > 0 {
		fmt.Fprintf(out, "  throttled at request %d\n", res.ThrottledAt)
	}
	for _, s := range res.Steps {
		kind := "step"
		if s.Cleanup {
			kind = "cleanup"
		}
		fmt.Fprintf(out, "  %s %s: %s %s %d in %s", kind, s.Name, strings.ToUpper(string(s.Status)), s.URL, s.Code, s.Duration.Round(time.Millisecond))
		if s.Error != "" {
			fmt.Fprintf(out, " — %s", s.Error)
		}
		fmt.Fprintln(out)
	}
	if res.Assertion != "" {
		fmt.Fprintf(out, "  assert: %s\n", res.Assertion)
	}
	if res.Error != "" {
		fmt.Fprintf(out, "  reason: %s\n", res.Error)
	}
}

func newProbeListCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list [SERVICE]",
		Short: "List the configured probes",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.validate(); err != nil {
				return err
			}
			cfg, err := g.loadConfig(false)
			if err != nil {
				return err
			}
			type row struct {
				Service  string `json:"service"`
				Name     string `json:"name"`
				Type     string `json:"type"`
				Interval string `json:"interval"`
				Timeout  string `json:"timeout"`
				Target   string `json:"target"`
				// Locations the probe runs from, and its quorum.
				Locations []string `json:"locations"`
				Quorum    int      `json:"quorum"`
			}
			var rows []row
			for _, s := range cfg.Services {
				if len(args) == 1 && s.Name != args[0] {
					continue
				}
				for _, p := range s.Probes {
					target := p.URL
					switch {
					case p.Address != "":
						target = p.Address
					case p.Query != "":
						target = p.Query
					case p.Type == "journey":
						target = fmt.Sprintf("%d steps", len(p.Steps))
					}
					rows = append(rows, row{s.Name, p.Name, p.Type, p.Interval, p.Timeout, probe.RedactURL(target), p.LocationNames(), p.QuorumSize()})
				}
			}
			if len(args) == 1 && cfg.Service(args[0]) == nil {
				return usagef("unknown service %q", args[0])
			}
			if g.json() {
				if rows == nil {
					rows = []row{}
				}
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tPROBE\tTYPE\tINTERVAL\tTIMEOUT\tLOCATIONS\tTARGET")
			for _, r := range rows {
				locs := strings.Join(r.Locations, ",")
				if len(r.Locations) > 1 {
					locs += fmt.Sprintf(" (quorum %d)", r.Quorum)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Service, r.Name, r.Type, r.Interval, r.Timeout, locs, r.Target)
			}
			return tw.Flush()
		},
	}
}

func newProbeStatusCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status [SERVICE]",
		Short: "Show the latest scheduled result of each probe, from the local store",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := ""
			if len(args) == 1 {
				service = args[0]
			}
			return runProbeStatus(cmd.Context(), g, service, cmd.OutOrStdout())
		},
	}
}

// probeStatusRow is one probe in `probe status`.
type probeStatusRow struct {
	Service    string     `json:"service"`
	Probe      string     `json:"probe"`
	Location   string     `json:"location,omitempty"`
	Status     string     `json:"status"` // up, down, error, missed, or "never run"
	LastRun    *time.Time `json:"last_run,omitempty"`
	DurationMS int64      `json:"duration_ms"`
	Code       int        `json:"code,omitempty"`
	Error      string     `json:"error,omitempty"`
	// LocationHealth is the health of the row's location: healthy,
	// unhealthy, stale or never seen (see `probe locations`).
	LocationHealth string `json:"location_health,omitempty"`
	// Quorum and Verdict are set on the row that combines the locations
	// of a probe that runs from several.
	Quorum  string         `json:"quorum,omitempty"`
	Verdict *probe.Verdict `json:"verdict,omitempty"`
}

// runProbeStatus reports the latest result of each probe the server ran,
// and the configured probes it has not run yet.
func runProbeStatus(ctx context.Context, g *globalOptions, service string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if service != "" && a.cfg.Service(service) == nil {
		return usagef("unknown service %q", service)
	}
	latest, err := a.store.LatestProbeResults(ctx, service)
	if err != nil {
		return err
	}
	rows := []probeStatusRow{}
	seen := map[string]bool{}
	for _, r := range latest {
		seen[probe.Key(r.Service, r.Probe)] = true
		rows = append(rows, probeStatusRow{Service: r.Service, Probe: r.Probe, Location: r.Location, Status: r.Status,
			LastRun: &r.StartedAt, DurationMS: r.DurationMS, Code: r.Code, Error: r.Error})
	}
	for _, s := range a.cfg.Services {
		if service != "" && s.Name != service {
			continue
		}
		for _, p := range s.Probes {
			if !seen[probe.Key(s.Name, p.Name)] {
				rows = append(rows, probeStatusRow{Service: s.Name, Probe: p.Name, Status: "never run"})
			}
		}
	}
	if rows, err = withLocations(ctx, a.store, a.cfg, rows); err != nil {
		return err
	}
	if g.json() {
		return printJSON(out, rows)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tPROBE\tSTATUS\tLAST RUN\tDURATION\tERROR")
	for _, r := range rows {
		last, dur := "-", "-"
		if r.LastRun != nil {
			last = r.LastRun.Local().Format(time.DateTime)
			dur = (time.Duration(r.DurationMS) * time.Millisecond).String()
		}
		name := r.Probe
		if r.Location != "" && r.Location != probe.Location {
			name += "@" + r.Location
			if r.LocationHealth != probe.LocationHealthy {
				name += " (" + r.LocationHealth + ")"
			}
		}
		if r.Verdict != nil {
			name += " (quorum " + r.Quorum + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Service, name, strings.ToUpper(r.Status), last, dur, r.Error)
	}
	return tw.Flush()
}
