package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/store"
)

func newProbeLocationsCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "locations",
		Short: "List the probe locations (local and each agent's) with their health, last heartbeat and buffered results",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProbeLocations(cmd.Context(), g, cmd.OutOrStdout())
		},
	}
}

func runProbeLocations(ctx context.Context, g *globalOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	var locs []probe.LocationStatus
	err := g.withApp(ctx, auth.PermRead, func(a *app) error {
		stored, err := a.store.ListProbeLocations(ctx)
		if err != nil {
			return err
		}
		locs = probe.Locations(stored, a.cfg, time.Now())
		return nil
	})
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(out, locs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCATION\tSTATUS\tPROBES\tLAST SEEN\tBUFFERED\tDROPPED\tAGENT\tREASON")
	for _, l := range locs {
		last := "-"
		if l.LastSeen != nil {
			last = l.LastSeen.Local().Format(time.DateTime)
		}
		agent := "-"
		if l.AgentUser != "" {
			agent = l.AgentUser + " " + l.Version
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\t%s\n", l.Name, strings.ToUpper(l.Status), l.Assigned, last, l.Buffered, l.Dropped, agent, l.Reason)
	}
	return tw.Flush()
}

// withLocations completes the rows of `probe status`: each row of a result
// from an agent's location gets that location's health, and each probe
// that runs from several locations gets a row with the quorum verdict over
// the latest result of every location (a location that is not healthy
// counts as broken, whatever it last reported).
func withLocations(ctx context.Context, st *store.Store, cfg *config.Config, rows []probeStatusRow) ([]probeStatusRow, error) {
	stored, err := st.ListProbeLocations(ctx)
	if err != nil {
		return nil, err
	}
	locs := probe.Locations(stored, cfg, time.Now())
	health := map[string]string{}
	for _, l := range locs {
		health[l.Name] = l.Status
	}
	latest := map[string]map[string]probe.Status{} // probe key -> location -> status
	var out []probeStatusRow
	for _, r := range rows {
		if r.Location != "" {
			r.LocationHealth = health[r.Location]
			if r.LocationHealth == "" {
				r.LocationHealth = "not configured"
			}
			k := probe.Key(r.Service, r.Probe)
			if latest[k] == nil {
				latest[k] = map[string]probe.Status{}
			}
			latest[k][r.Location] = probe.Status(r.Status)
		}
		out = append(out, r)
	}
	for _, svc := range cfg.Services {
		for _, p := range svc.Probes {
			names := p.LocationNames()
			k := probe.Key(svc.Name, p.Name)
			if len(names) < 2 || latest[k] == nil {
				continue
			}
			statuses := make([]probe.Status, 0, len(names))
			for _, loc := range names {
				s, ok := latest[k][loc]
				if !ok || health[loc] != probe.LocationHealthy {
					s = probe.Broken
				}
				statuses = append(statuses, s)
			}
			v := probe.Quorum(statuses, p.QuorumSize())
			out = append(out, probeStatusRow{Service: svc.Name, Probe: p.Name, Status: string(v.Status), Error: v.Reason,
				Quorum: fmt.Sprintf("%d of %d", p.QuorumSize(), len(names)), Verdict: &v})
		}
	}
	return out, nil
}
