package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/drill"
)

type restoreOptions struct {
	Backup string
	To     string
	Reason string
	Ticket string
}

func (o *restoreOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Backup, "backup", "", "backup to restore: ID or SERVICE/BACKUP/ID (see steward backup list)")
	cmd.Flags().StringVar(&o.To, "to", "", "target database: a secret reference such as env:RESTORE_URL, or a URL without a password; it must be empty")
	cmd.Flags().StringVarP(&o.Reason, "reason", "r", "", "why (required), e.g. \"INC-42: orders table dropped\"")
	cmd.Flags().StringVar(&o.Ticket, "ticket", "", "ticket reference")
}

func newRestoreCmd(g *globalOptions) *cobra.Command {
	o := &restoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore SERVICE/DATABASE --backup ID --to URL --reason R",
		Short: "Restore a backup for real: creates a restore.run action that needs approval, then `steward action execute ID` runs it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestore(cmd.Context(), g, o, args[0], cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func runRestore(ctx context.Context, g *globalOptions, o *restoreOptions, arg string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	svc, db, ok := strings.Cut(arg, "/")
	if !ok || svc == "" || db == "" {
		return usagef("%q: want SERVICE/DATABASE, e.g. shop/main", arg)
	}
	if o.Backup == "" || o.To == "" {
		return usagef("--backup and --to are required")
	}
	params, _ := json.Marshal(drill.RestoreParams{Service: svc, Database: db, BackupID: o.Backup, To: o.To})
	return withPipeline(ctx, g, func(a *app, p *action.Pipeline) error {
		act, err := p.Create(ctx, a.actor, action.Request{
			Kind: drill.RestoreKindName, Service: svc, Target: db, Params: params, Reason: o.Reason, Ticket: o.Ticket,
		})
		if err != nil {
			return err
		}
		d, err := p.Decision(ctx, act)
		if err != nil {
			return err
		}
		if err := printAction(g, out, act, d, nil); err != nil {
			return err
		}
		if !g.json() {
			switch act.State {
			case action.Approved:
				fmt.Fprintf(out, "approved; run it with: steward action execute %d\n", act.ID)
			case action.PendingApproval:
				fmt.Fprintf(out, "once approved (steward approve %d), run it with: steward action execute %d\n", act.ID, act.ID)
			}
		}
		return nil
	})
}
