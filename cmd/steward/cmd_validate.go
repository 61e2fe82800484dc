package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/config"
)

type validateOptions struct {
	Offline bool
}

func (o *validateOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.Offline, "offline", false, "do not resolve secret references (env:, file:); check shape only, e.g. in CI without secrets")
}

func newValidateCmd(g *globalOptions) *cobra.Command {
	o := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a config file and report every error as FILE:LINE:COL: message",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				g.ConfigPath = args[0]
			}
			return runValidate(g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

type validateResult struct {
	Valid     bool           `json:"valid"`
	File      string         `json:"file"`
	Services  int            `json:"services"`
	Databases int            `json:"databases"`
	Users     int            `json:"users"`
	Errors    []config.Error `json:"errors,omitempty"`
}

func runValidate(g *globalOptions, o *validateOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	cfg, err := config.Load(g.ConfigPath, config.LoadOptions{ResolveSecrets: !o.Offline})
	res := validateResult{File: g.ConfigPath}
	var errs config.Errors
	switch {
	case err == nil:
		res.Valid = true
		res.Services = len(cfg.Services)
		for _, s := range cfg.Services {
			res.Databases += len(s.Databases)
		}
		res.Users = len(cfg.Users)
	case errors.As(err, &errs):
		res.Errors = errs
	default:
		return err
	}
	if g.json() {
		if err := printJSON(out, res); err != nil {
			return err
		}
		if !res.Valid {
			return silentError{exitUsage}
		}
		return nil
	}
	if !res.Valid {
		return errs
	}
	fmt.Fprintf(out, "%s: ok (%d services, %d databases, %d users)\n", res.File, res.Services, res.Databases, res.Users)
	return nil
}
