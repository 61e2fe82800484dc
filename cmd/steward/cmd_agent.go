package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/probe/agent"
)

type agentOptions struct {
	Location        string
	DataDir         string
	SelfCheck       []string
	PollInterval    time.Duration
	SpoolMaxResults int
	SpoolMaxBytes   int64
}

func (o *agentOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Location, "location", "", "name of this location, as listed in the probes' locations in steward.yaml (required)")
	f.StringVar(&o.DataDir, "data-dir", "steward-agent", "directory for the result spool and the cached assignments")
	f.StringArrayVar(&o.SelfCheck, "self-check", nil, "a target this location must reach to trust its results: an http(s):// URL or host:port such as a gateway or a public resolver (repeatable; default: the server)")
	f.DurationVar(&o.PollInterval, "poll-interval", probe.DefaultPollInterval, "how often to fetch assignments and send a heartbeat; the server calls the location stale after 3 intervals without one")
	f.IntVar(&o.SpoolMaxResults, "spool-max-results", agent.DefaultSpoolMaxResults, "most results kept on disk while the server is unreachable; the oldest are dropped beyond it")
	f.Int64Var(&o.SpoolMaxBytes, "spool-max-bytes", agent.DefaultSpoolMaxBytes, "most bytes of results kept on disk while the server is unreachable; the oldest are dropped beyond it")
}

func newAgentCmd(g *globalOptions) *cobra.Command {
	o := &agentOptions{}
	cmd := &cobra.Command{
		Use:   "agent --server URL --token TOKEN --location NAME",
		Short: "Run the probes assigned to a location and push their results to the server, buffering on disk through outages, until SIGINT/SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// runAgent runs an agent until ctx is done and prints its summary.
func runAgent(ctx context.Context, g *globalOptions, o *agentOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	opts := agent.Options{Server: g.Server, Token: g.Token, Location: o.Location, DataDir: o.DataDir, SelfCheck: o.SelfCheck,
		PollInterval: o.PollInterval, SpoolMaxResults: o.SpoolMaxResults, SpoolMaxBytes: o.SpoolMaxBytes, Version: version, Logger: g.logger()}
	if err := opts.Validate(); err != nil {
		return usageError{err}
	}
	sum, err := agent.Run(ctx, opts)
	if errors.Is(err, agent.ErrAuth) {
		err = usageError{err}
	}
	if g.json() {
		if perr := printJSON(out, sum); perr != nil {
			return perr
		}
	} else {
		fmt.Fprintf(out, "agent %s stopped: %d results recorded (%d broken), %d sent, %d buffered for the next start, %d dropped\n",
			sum.Location, sum.Results, sum.Broken, sum.Sent, sum.Buffered, sum.Dropped)
	}
	return err
}
