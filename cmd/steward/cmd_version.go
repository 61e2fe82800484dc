package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/store"
)

func newVersionCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and the store schema version this binary knows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(g, cmd.OutOrStdout())
		},
	}
}

type versionInfo struct {
	Version       string `json:"version"`
	Commit        string `json:"commit,omitempty"`
	Go            string `json:"go"`
	SchemaVersion int    `json:"schema_version"`
}

func runVersion(g *globalOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	v := versionInfo{Version: version, Commit: commit, Go: runtime.Version(), SchemaVersion: store.LatestVersion()}
	if g.json() {
		return printJSON(out, v)
	}
	fmt.Fprintf(out, "steward %s", v.Version)
	if v.Commit != "" {
		fmt.Fprintf(out, " (%s)", v.Commit)
	}
	fmt.Fprintf(out, " %s, store schema %d\n", v.Go, v.SchemaVersion)
	return nil
}
