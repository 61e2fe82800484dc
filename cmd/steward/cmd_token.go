package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

func newTokenCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create and revoke API tokens"}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenRevokeCmd(g))
	return cmd
}

type tokenCreateOptions struct {
	Name    string
	Expires string
}

func (o *tokenCreateOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Name, "name", "cli", "a label for the token, e.g. ci or laptop")
	cmd.Flags().StringVar(&o.Expires, "expires", "", "lifetime, e.g. 12h, 30d; empty for no expiry")
}

func newTokenCreateCmd(g *globalOptions) *cobra.Command {
	o := &tokenCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create USER",
		Short: "Create an API token for a user and print it once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTokenCreate(cmd.Context(), g, o, args[0], cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// parseLifetime is the --expires flag: empty for no expiry, else a
// duration like 12h or a number of days like 30d (config's syntax).
func parseLifetime(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return 0, usagef("--expires: %v", err)
	}
	return d, nil
}

type tokenCreateResult struct {
	Token   string      `json:"token"`
	Details store.Token `json:"details"`
}

func runTokenCreate(ctx context.Context, g *globalOptions, o *tokenCreateOptions, userName string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	ttl, err := parseLifetime(o.Expires)
	if err != nil {
		return err
	}
	return g.withApp(ctx, auth.PermAdmin, func(a *app) error {
		secret, t, err := a.auth.CreateToken(ctx, a.actor.Actor(), userName, o.Name, ttl)
		if err != nil {
			return err
		}
		if g.json() {
			return printJSON(out, tokenCreateResult{Token: secret, Details: t})
		}
		fmt.Fprintf(out, "token %d for %s", t.ID, userName)
		if t.ExpiresAt != nil {
			fmt.Fprintf(out, ", expires %s", t.ExpiresAt.Format(time.RFC3339))
		}
		fmt.Fprintf(out, " (shown once, store it now):\n%s\n", secret)
		return nil
	})
}

func newTokenRevokeCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token by id",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return usagef("token id %q: use the number printed by `steward token create`", args[0])
			}
			return runTokenRevoke(cmd.Context(), g, id, cmd.OutOrStdout())
		},
	}
}

func runTokenRevoke(ctx context.Context, g *globalOptions, id int64, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	return g.withApp(ctx, auth.PermAdmin, func(a *app) error {
		if err := a.auth.RevokeToken(ctx, a.actor.Actor(), id); err != nil {
			return err
		}
		if g.json() {
			return printJSON(out, map[string]any{"token_id": id, "revoked": true})
		}
		fmt.Fprintf(out, "revoked token %d\n", id)
		return nil
	})
}
