package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/fix"
)

// withFixPipeline opens the pipeline, whose fix kinds share the fix
// dependencies the plan and undo commands use.
func withFixPipeline(ctx context.Context, g *globalOptions, fn func(*app, *action.Pipeline, *fix.Deps) error) error {
	return withPipeline(ctx, g, func(a *app, p *action.Pipeline) error {
		return fn(a, p, a.fix)
	})
}

// fixError sorts fix errors into exit codes: bad input and refusals are
// usage errors (2), a guarded change that was stopped is a failure (1).
func fixError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fix.ErrParam), errors.Is(err, fix.ErrStatement), errors.Is(err, fix.ErrNothingToFix),
		errors.Is(err, fix.ErrTooManyRows), errors.Is(err, fix.ErrUnknownFix), errors.Is(err, fix.ErrNothingToUndo):
		return usageError{err}
	case errors.Is(err, fix.ErrDataChanged), errors.Is(err, fix.ErrRowCount), errors.Is(err, fix.ErrImagesPending):
		return fmt.Errorf("%w: %w", errFailed, err)
	}
	return err
}

func splitRef(ref, what string) (string, string, error) {
	s, n, ok := strings.Cut(ref, "/")
	if !ok || s == "" || n == "" || strings.Contains(n, "/") {
		return "", "", usagef("%q: want SERVICE/%s", ref, what)
	}
	return s, n, nil
}

func newFixCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "fix", Short: "Reviewed data fixes: preview, request, apply in one guarded transaction, undo"}
	cmd.AddCommand(newFixPlanCmd(g, false), newFixPlanCmd(g, true), newFixApplyCmd(g), newFixUndoCmd(g), newFixImagesCmd(g))
	return cmd
}

type fixOptions struct {
	Params []string
	Reason string
	Ticket string
}

func (o *fixOptions) AddFlags(cmd *cobra.Command, request bool) {
	cmd.Flags().StringArrayVarP(&o.Params, "param", "p", nil, "fix parameter NAME=VALUE (repeatable); lists as 1,2,3 or a JSON array")
	if request {
		cmd.Flags().StringVarP(&o.Reason, "reason", "r", "", "why (required), e.g. \"INC-42: cancel the stuck orders\"")
		cmd.Flags().StringVar(&o.Ticket, "ticket", "", "ticket reference")
	}
}

func (o *fixOptions) params() (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range o.Params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--param %q: want NAME=VALUE", kv)
		}
		if _, dup := m[k]; dup {
			return nil, usagef("--param %s given twice", k)
		}
		m[k] = v
	}
	return m, nil
}

func newFixPlanCmd(g *globalOptions, request bool) *cobra.Command {
	o := &fixOptions{}
	use, short := "plan SERVICE/FIX", "Preview a fix: the rows it would change (masked) and their count; changes nothing"
	if request {
		use, short = "request SERVICE/FIX", "Plan a fix and submit it for approval as a fix.apply action"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if request {
				return runFixRequest(cmd.Context(), g, o, args[0], cmd.OutOrStdout())
			}
			return runFixPlan(cmd.Context(), g, o, args[0], cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd, request)
	return cmd
}

func runFixPlan(ctx context.Context, g *globalOptions, o *fixOptions, ref string, out io.Writer) error {
	svc, name, err := splitRef(ref, "FIX")
	if err != nil {
		return err
	}
	params, err := o.params()
	if err != nil {
		return err
	}
	return withFixPipeline(ctx, g, func(_ *app, _ *action.Pipeline, d *fix.Deps) error {
		pv, err := d.PlanFix(ctx, fix.ApplyParams{Service: svc, Fix: name, Params: params})
		if pv != nil && pv.Count > 0 {
			if perr := printPreview(g, out, pv); perr != nil {
				return perr
			}
		}
		return fixError(err)
	})
}

func printPreview(g *globalOptions, out io.Writer, pv *fix.Preview) error {
	if g.json() {
		return printJSON(out, pv)
	}
	fmt.Fprintf(out, "fix %s/%s on %s (%s): %s %d row(s) of %s (max_rows %d)\n", pv.Service, pv.Fix, pv.Database, pv.Engine, pv.Verb, pv.Count, pv.Table, pv.MaxRows)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(pv.Columns, "\t")))
	for _, r := range pv.Rows {
		cells := make([]string, len(pv.Columns))
		for i, c := range pv.Columns {
			cells[i] = fmt.Sprint(r[c])
			if r[c] == nil {
				cells[i] = "NULL"
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if pv.Count > len(pv.Rows) {
		fmt.Fprintf(out, "… and %d more row(s)\n", pv.Count-len(pv.Rows))
	}
	return nil
}

func runFixRequest(ctx context.Context, g *globalOptions, o *fixOptions, ref string, out io.Writer) error {
	svc, name, err := splitRef(ref, "FIX")
	if err != nil {
		return err
	}
	params, err := o.params()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(fix.ApplyParams{Service: svc, Fix: name, Params: params})
	return createAction(ctx, g, out, action.Request{Kind: fix.ApplyKindName, Service: svc, Target: name, Params: b, Reason: o.Reason, Ticket: o.Ticket})
}

// createAction plans and submits an action of a fix kind and prints it.
func createAction(ctx context.Context, g *globalOptions, out io.Writer, req action.Request) error {
	return withFixPipeline(ctx, g, func(a *app, p *action.Pipeline, _ *fix.Deps) error {
		act, err := p.Create(ctx, a.actor, req)
		if err != nil {
			return fixError(err)
		}
		d, err := p.Decision(ctx, act)
		if err != nil {
			return err
		}
		return printAction(g, out, act, d, nil)
	})
}

func newFixApplyCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "apply ID",
		Short: "Execute an approved fix.apply, fix.undo or sql.exec action in one guarded transaction",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "action")
			if err != nil {
				return err
			}
			return runFixApply(cmd.Context(), g, id, cmd.OutOrStdout())
		},
	}
}

func runFixApply(ctx context.Context, g *globalOptions, id int64, out io.Writer) error {
	return withFixPipeline(ctx, g, func(a *app, p *action.Pipeline, _ *fix.Deps) error {
		act, err := p.Get(ctx, id)
		if err != nil {
			return err
		}
		switch act.Kind {
		case fix.ApplyKindName, fix.UndoKindName, fix.SQLKindName:
		default:
			return usagef("action %d is %s; use `steward action execute %d`", id, act.Kind, id)
		}
		act, err = p.Execute(ctx, a.actor, id)
		if act != nil && (err == nil || act.State == action.Failed) {
			d, _ := p.Decision(ctx, act)
			if perr := printAction(g, out, act, d, nil); perr != nil {
				return perr
			}
		}
		if err != nil && act != nil && act.State == action.Failed {
			return fmt.Errorf("%w: %v", errFailed, err)
		}
		return fixError(err)
	})
}

func newFixUndoCmd(g *globalOptions) *cobra.Command {
	var reason, ticket string
	cmd := &cobra.Command{
		Use:   "undo ID",
		Short: "Request a fix.undo action: restore the before-images of rows nobody changed since",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "action")
			if err != nil {
				return err
			}
			return runFixUndo(cmd.Context(), g, id, reason, ticket, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&reason, "reason", "r", "", "why (required)")
	cmd.Flags().StringVar(&ticket, "ticket", "", "ticket reference")
	return cmd
}

func runFixUndo(ctx context.Context, g *globalOptions, id int64, reason, ticket string, out io.Writer) error {
	return withFixPipeline(ctx, g, func(a *app, p *action.Pipeline, _ *fix.Deps) error {
		orig, err := p.Get(ctx, id)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(fix.UndoParams{ActionID: id})
		act, err := p.Create(ctx, a.actor, action.Request{Kind: fix.UndoKindName, Service: orig.Service, Target: fmt.Sprintf("action:%d", id),
			Params: b, Reason: reason, Ticket: ticket})
		if err != nil {
			return fixError(err)
		}
		d, err := p.Decision(ctx, act)
		if err != nil {
			return err
		}
		return printAction(g, out, act, d, nil)
	})
}

func newFixImagesCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "images ID",
		Short: "Show the before- and after-images an action kept (pending: its outcome is unknown, compare with the database)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "action")
			if err != nil {
				return err
			}
			return withFixPipeline(cmd.Context(), g, func(_ *app, _ *action.Pipeline, d *fix.Deps) error {
				imgs, err := d.Images(cmd.Context(), id)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if g.json() {
					return printJSON(out, imgs)
				}
				pending := 0
				for _, im := range imgs {
					state, after := "applied", ""
					if im.Pending() {
						state, after = "PENDING", "(unknown)"
						pending++
					} else {
						after = *im.After
					}
					fmt.Fprintf(out, "%s %s\n  before: %s\n  after:  %s\n", im.RowKey, state, im.Before, after)
				}
				fmt.Fprintf(out, "%d image(s), %d pending\n", len(imgs), pending)
				return nil
			})
		},
	}
}
