package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/notify/all"
	"github.com/stewardhq/steward/internal/store"
)

func newNotifyCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "notify", Short: "Inspect the notification outbox and test channels"}
	cmd.AddCommand(newNotifyStatusCmd(g), newNotifyTestCmd(g))
	return cmd
}

func newNotifyStatusCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each channel's pending, delivered and failed notifications and its last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNotifyStatus(cmd.Context(), g, cmd.OutOrStdout())
		},
	}
}

// openOutbox builds the configured channels and an outbox over the store.
func openOutbox(a *app) (*notify.Outbox, error) {
	chans, err := all.Build(a.cfg.Notify, nil)
	if err != nil {
		return nil, usagef("%v; fix the channel in the config (see `steward validate`)", err)
	}
	return notify.NewOutbox(a.store, a.cfg.Notify, chans, notify.Options{Logger: a.log}), nil
}

func runNotifyStatus(ctx context.Context, g *globalOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.actor.Require(auth.PermRead); err != nil {
		return err
	}
	// Status reads the store only: a channel whose secret cannot be resolved
	// here is still reported.
	st, err := notify.NewOutbox(a.store, a.cfg.Notify, nil, notify.Options{Logger: a.log}).Status(ctx)
	if err != nil {
		return err
	}
	if g.json() {
		if st == nil {
			st = []notify.ChannelStatus{}
		}
		return printJSON(out, st)
	}
	if len(st) == 0 {
		fmt.Fprintln(out, "no notification channels configured and nothing in the outbox")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tTYPE\tPENDING\tDELIVERED\tFAILED\tOLDEST PENDING\tLAST DELIVERED\tLAST ERROR")
	for _, s := range st {
		typ := s.Type
		if !s.Configured {
			typ = "(not configured)"
		}
		oldest, last := "-", "-"
		if s.OldestPendingAt != nil {
			oldest = s.OldestPendingAge.Round(time.Second).String() + " ago"
		}
		if s.LastDeliveredAt != nil {
			last = s.LastDeliveredAt.Local().Format("2006-01-02 15:04:05")
		}
		lastErr := s.LastError
		if lastErr == "" {
			lastErr = "-"
		} else if len(lastErr) > 80 {
			lastErr = lastErr[:79] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Channel, typ, s.Pending, s.Delivered, s.Failed, oldest, last, lastErr)
	}
	return tw.Flush()
}

func newNotifyTestCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "test [CHANNEL]",
		Short: "Send a test notification to one channel or all of them now; exit 1 if any fails",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			channel := ""
			if len(args) == 1 {
				channel = args[0]
			}
			return runNotifyTest(cmd.Context(), g, channel, cmd.OutOrStdout())
		},
	}
}

// notifyTestResult is one channel's outcome of `steward notify test`.
type notifyTestResult struct {
	Channel    string `json:"channel"`
	Type       string `json:"type"`
	DeliveryID int64  `json:"delivery_id"`
	Delivered  bool   `json:"delivered"`
	Error      string `json:"error,omitempty"`
}

func runNotifyTest(ctx context.Context, g *globalOptions, channel string, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.actor.Require(auth.PermOperate); err != nil {
		return err
	}
	var names []string
	types := map[string]string{}
	for _, c := range a.cfg.Notify.Channels {
		names = append(names, c.Name)
		types[c.Name] = c.Type
	}
	if len(names) == 0 {
		return usagef("no notification channels configured; add notify.channels to the config (see docs/notify.md)")
	}
	if channel != "" {
		if !slices.Contains(names, channel) {
			return usagef("unknown channel %q; configured: %s", channel, strings.Join(names, ", "))
		}
		names = []string{channel}
	}
	cfg := a.cfg.Notify
	cfg.Channels = slices.DeleteFunc(slices.Clone(cfg.Channels), func(c config.Channel) bool { return !slices.Contains(names, c.Name) })
	a.cfg.Notify = cfg
	o, err := openOutbox(a)
	if err != nil {
		return err
	}
	actor := a.actor.Actor()
	now := time.Now()
	m := notify.Message{
		Event: notify.EventTest, Severity: notify.SeverityInfo,
		Title:    "Steward test notification",
		Text:     fmt.Sprintf("Sent by %s with `steward notify test` at %s. If you can read this, the channel works.", actor, now.UTC().Format(time.RFC3339)),
		DedupKey: fmt.Sprintf("notify.test:%d", now.UnixNano()),
	}
	ids, err := o.EnqueueTo(ctx, m, names...)
	if err != nil {
		return err
	}
	if _, _, err := o.DeliverNow(ctx, ids...); err != nil {
		return err
	}
	results := make([]notifyTestResult, 0, len(ids))
	failed := 0
	for _, id := range ids {
		r, err := a.store.GetOutbox(ctx, id)
		if err != nil {
			return err
		}
		res := notifyTestResult{Channel: r.Channel, Type: types[r.Channel], DeliveryID: id, Delivered: r.State == store.OutboxDelivered}
		if !res.Delivered {
			failed++
			res.Error = r.LastError
		}
		results = append(results, res)
	}
	outcome := "success"
	if failed > 0 {
		outcome = "failure"
	}
	details := map[string]any{"channels": names, "failed": failed}
	if err := auditFunc(a.audit)(ctx, actor, "notify.test", strings.Join(names, ","), outcome, details); err != nil {
		return err
	}
	if g.json() {
		if err := printJSON(out, results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			if r.Delivered {
				fmt.Fprintf(out, "%s (%s): delivered (delivery %d)\n", r.Channel, r.Type, r.DeliveryID)
			} else {
				fmt.Fprintf(out, "%s (%s): FAILED: %s\n", r.Channel, r.Type, r.Error)
			}
		}
		if failed > 0 {
			fmt.Fprintf(out, "%d of %d channel(s) failed; the test message stays in the outbox and is retried (see `steward notify status`)\n", failed, len(results))
		}
	}
	if failed > 0 {
		return silentError{exitFailed}
	}
	return nil
}
