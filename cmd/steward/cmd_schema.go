package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/config"
)

func newSchemaCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of steward.yaml, for editors and CI",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSchema(cmd.OutOrStdout())
		},
	}
}

func runSchema(out io.Writer) error {
	b, err := config.JSONSchema()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}
