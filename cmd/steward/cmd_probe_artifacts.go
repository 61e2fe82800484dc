package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/probe"
)

// probeRunOptions are the flags of `probe run`.
type probeRunOptions struct {
	// Artifacts is where a failed run's artifacts are written; "" keeps
	// them in the output only.
	Artifacts string
}

func (o *probeRunOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Artifacts, "artifacts", "", "write the artifacts of a failed browser run (screenshot, console log) as files to `DIR` (created if missing)")
}

// writeArtifacts writes the artifacts of res to dir, named after the probe
// and the run's start, readable by the owner only (a console log may hold
// what a page printed), and returns the paths written.
func writeArtifacts(dir, ref string, res probe.Result) ([]string, error) {
	if len(res.Artifacts) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("write artifacts: %w; pass --artifacts a directory you can create and write", err)
	}
	prefix := strings.ReplaceAll(ref, "/", "-") + "-" + res.Started.UTC().Format("20060102T150405Z") + "-"
	var paths []string
	for _, a := range res.Artifacts {
		path := filepath.Join(dir, prefix+filepath.Base(a.Name))
		if err := os.WriteFile(path, a.Data, 0o600); err != nil {
			return paths, fmt.Errorf("write artifact %s: %w", a.Name, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// printArtifacts says where the artifacts of a failed run went: the paths
// written, or how to keep them.
func printArtifacts(out io.Writer, res probe.Result, paths []string) {
	if len(res.Artifacts) == 0 {
		return
	}
	if len(paths) > 0 {
		for i, p := range paths {
			fmt.Fprintf(out, "  artifact: %s (%d bytes)\n", p, len(res.Artifacts[i].Data))
		}
		return
	}
	var names []string
	for _, a := range res.Artifacts {
		names = append(names, fmt.Sprintf("%s (%d bytes)", a.Name, len(a.Data)))
	}
	fmt.Fprintf(out, "  artifacts: %s; not written: pass --artifacts DIR to keep them\n", strings.Join(names, ", "))
}
