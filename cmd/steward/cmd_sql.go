package main

import (
	"context"
	"encoding/json"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/fix"
)

type sqlOptions struct {
	File   string
	Reason string
	Ticket string
}

func (o *sqlOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.File, "file", "f", "", "file holding exactly one UPDATE, DELETE or INSERT statement (- for stdin)")
	cmd.Flags().StringVarP(&o.Reason, "reason", "r", "", "why (required)")
	cmd.Flags().StringVar(&o.Ticket, "ticket", "", "ticket reference")
}

func newSQLCmd(g *globalOptions) *cobra.Command {
	o := &sqlOptions{}
	cmd := &cobra.Command{
		Use:   "sql SERVICE/DATABASE --file change.sql --reason R",
		Short: "Break-glass data change: one DML statement, dry-run, approved for its exact text and row count, guarded, undoable",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSQL(cmd.Context(), g, o, args[0], cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func runSQL(ctx context.Context, g *globalOptions, o *sqlOptions, ref string, stdin io.Reader, out io.Writer) error {
	svc, db, err := splitRef(ref, "DATABASE")
	if err != nil {
		return err
	}
	var text []byte
	switch o.File {
	case "":
		return usagef("--file is required: the statement to run")
	case "-":
		text, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	default:
		text, err = os.ReadFile(o.File)
	}
	if err != nil {
		return usagef("read --file: %v", err)
	}
	b, _ := json.Marshal(fix.SQLParams{Service: svc, Database: db, Statement: string(text)})
	return createAction(ctx, g, out, action.Request{Kind: fix.SQLKindName, Service: svc, Target: db, Params: b, Reason: o.Reason, Ticket: o.Ticket})
}
