package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/store"
)

func newUserCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users and their roles"}
	cmd.AddCommand(newUserAddCmd(g), newUserListCmd(g), newUserDisableCmd(g), newUserRolesCmd(g))
	return cmd
}

type userAddOptions struct {
	Roles   []string
	Email   string
	NoToken bool
}

func (o *userAddOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringSliceVarP(&o.Roles, "role", "r", nil, "role to grant (repeatable): "+strings.Join(auth.BuiltinRoles, ", ")+" or one from roles: in the config")
	cmd.Flags().StringVar(&o.Email, "email", "", "email address")
	cmd.Flags().BoolVar(&o.NoToken, "no-token", false, "do not create a first API token")
}

func newUserAddCmd(g *globalOptions) *cobra.Command {
	o := &userAddOptions{}
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user and print their first API token once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUserAdd(cmd.Context(), g, o, args[0], cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

type userAddResult struct {
	User  store.User `json:"user"`
	Token string     `json:"token,omitempty"`
}

func runUserAdd(ctx context.Context, g *globalOptions, o *userAddOptions, name string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	return g.withApp(ctx, auth.PermAdmin, func(a *app) error {
		u, token, err := a.auth.AddUser(ctx, a.actor.Actor(), name, o.Email, o.Roles, !o.NoToken)
		if err != nil {
			return err
		}
		if g.json() {
			return printJSON(out, userAddResult{User: u, Token: token})
		}
		fmt.Fprintf(out, "added user %s (roles: %s)\n", u.Name, strings.Join(u.Roles, ", "))
		if token != "" {
			fmt.Fprintf(out, "API token (shown once, store it now):\n%s\n", token)
		}
		return nil
	})
}

func newUserListCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users, their roles and whether they are disabled",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUserList(cmd.Context(), g, cmd.OutOrStdout())
		},
	}
}

func runUserList(ctx context.Context, g *globalOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	var users []store.User
	if g.Server != "" {
		var resp struct {
			Users []store.User `json:"users"`
		}
		if err := g.apiGet(ctx, "/api/v1/users", &resp); err != nil {
			return err
		}
		users = resp.Users
	} else {
		a, err := g.openApp(ctx)
		if err != nil {
			return err
		}
		defer a.Close()
		if users, err = a.store.ListUsers(ctx); err != nil {
			return err
		}
	}
	if g.json() {
		if users == nil {
			users = []store.User{}
		}
		return printJSON(out, users)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLES\tEMAIL\tSTATUS")
	for _, u := range users {
		status := "active"
		if u.Disabled() {
			status = "disabled " + u.DisabledAt.Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, strings.Join(u.Roles, ","), u.Email, status)
	}
	return tw.Flush()
}

func newUserDisableCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "disable NAME",
		Short: "Disable a user; their tokens stop working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUserDisable(cmd.Context(), g, args[0], cmd.OutOrStdout())
		},
	}
}

func runUserDisable(ctx context.Context, g *globalOptions, name string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	return g.withApp(ctx, auth.PermAdmin, func(a *app) error {
		if err := a.auth.DisableUser(ctx, a.actor.Actor(), name); err != nil {
			return err
		}
		if g.json() {
			return printJSON(out, map[string]any{"user": name, "disabled": true})
		}
		fmt.Fprintf(out, "disabled user %s; their API tokens no longer work\n", name)
		return nil
	})
}

func newUserRolesCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "roles NAME ROLE...",
		Short: "Replace a user's roles (users listed in steward.yaml get their config roles back at the next server start)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUserRoles(cmd.Context(), g, args[0], args[1:], cmd.OutOrStdout())
		},
	}
}

func runUserRoles(ctx context.Context, g *globalOptions, name string, roles []string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	return g.withApp(ctx, auth.PermAdmin, func(a *app) error {
		if err := a.auth.SetRoles(ctx, a.actor.Actor(), name, roles); err != nil {
			return err
		}
		if g.json() {
			return printJSON(out, map[string]any{"user": name, "roles": roles})
		}
		fmt.Fprintf(out, "%s now has roles: %s\n", name, strings.Join(roles, ", "))
		return nil
	})
}
