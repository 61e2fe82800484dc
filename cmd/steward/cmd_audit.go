package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/store"
)

func newAuditCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify, export and checkpoint the tamper-evident audit log"}
	cmd.AddCommand(newAuditVerifyCmd(g), newAuditExportCmd(g), newAuditCheckpointCmd(g))
	return cmd
}

type auditVerifyOptions struct {
	Checkpoints []string
	File        string
	Key         string
}

func (o *auditVerifyOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&o.Checkpoints, "checkpoint", nil, "signed checkpoint file(s) to check the log against (repeatable); detects a truncated tail or rewritten history")
	cmd.Flags().StringVar(&o.File, "file", "", "verify a JSONL export (from `steward audit export`) instead of the store")
	cmd.Flags().StringVar(&o.Key, "key", "", "checkpoint verifier key file (default: DATA_DIR/audit.pub)")
}

func newAuditVerifyCmd(g *globalOptions) *cobra.Command {
	o := &auditVerifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the hash chain and check it against signed checkpoints; exit 1 on any tampering",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuditVerify(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// loadVerifier reads the checkpoint verifier key without creating one.
func loadVerifier(path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("checkpoint verifier key %s: %v; pass --key with the audit.pub of the Steward that signed the checkpoints", path, err)
	}
	v, err := note.NewVerifier(string(trimNewline(b)))
	if err != nil {
		return nil, usagef("checkpoint verifier key %s: %v", path, err)
	}
	return v, nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func runAuditVerify(ctx context.Context, g *globalOptions, o *auditVerifyOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	var src audit.Source
	var cps []audit.Checkpoint
	var keyPath string
	if o.File != "" {
		f, err := os.Open(o.File)
		if err != nil {
			return usagef("--file: %v", err)
		}
		defer f.Close()
		src = audit.JSONLSource(f)
		keyPath = o.Key
	} else {
		a, err := g.openApp(ctx)
		if err != nil {
			return err
		}
		defer a.Close()
		if err := a.actor.Require(auth.PermAuditRead); err != nil {
			return err
		}
		src = audit.StoreSource(a.store)
		keyPath = o.Key
		if keyPath == "" {
			keyPath = filepath.Join(a.cfg.Steward.DataDir, "audit.pub")
		}
		// The newest checkpoint the store recorded is checked too: deleting
		// events after it is then caught even without files.
		if c, err := a.store.LatestCheckpoint(ctx); err == nil {
			if v, verr := loadVerifier(keyPath); verr == nil {
				cp, perr := audit.ParseCheckpoint([]byte(c.Note), v)
				if perr != nil {
					return reportVerify(g, out, audit.Report{OK: false, Problem: fmt.Sprintf("stored checkpoint %d: %v", c.ID, perr)})
				}
				cps = append(cps, cp)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if len(o.Checkpoints) > 0 {
		if keyPath == "" {
			return usagef("--checkpoint with --file needs --key (the audit.pub of the signing Steward)")
		}
		v, err := loadVerifier(keyPath)
		if err != nil {
			return err
		}
		for _, p := range o.Checkpoints {
			b, err := os.ReadFile(p)
			if err != nil {
				return usagef("--checkpoint: %v", err)
			}
			cp, err := audit.ParseCheckpoint(b, v)
			if err != nil {
				return reportVerify(g, out, audit.Report{OK: false, Problem: fmt.Sprintf("checkpoint %s: %v", p, err)})
			}
			cps = append(cps, cp)
		}
	}
	rep, err := audit.Verify(ctx, src, cps)
	if err != nil {
		return err
	}
	return reportVerify(g, out, rep)
}

func reportVerify(g *globalOptions, out io.Writer, rep audit.Report) error {
	if g.json() {
		if err := printJSON(out, rep); err != nil {
			return err
		}
	} else if rep.OK {
		fmt.Fprintf(out, "audit log ok: %d events, head %d %s, %d checkpoint(s) consistent\n", rep.Events, rep.HeadSeq, short(rep.HeadHash), rep.Checkpoints)
	} else {
		fmt.Fprintf(out, "audit log FAILED verification")
		if rep.FirstBad > 0 {
			fmt.Fprintf(out, " at event %d", rep.FirstBad)
		}
		fmt.Fprintf(out, ": %s\n", rep.Problem)
	}
	if !rep.OK {
		return silentError{exitFailed}
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

type auditExportOptions struct {
	Since int64
	File  string
}

func (o *auditExportOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().Int64Var(&o.Since, "since", 1, "first sequence number to export")
	cmd.Flags().StringVar(&o.File, "file", "", "write to this file (atomically) instead of stdout")
}

func newAuditExportCmd(g *globalOptions) *cobra.Command {
	o := &auditExportOptions{}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Stream audit events as JSON lines for archival (--output jsonl)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuditExport(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func runAuditExport(ctx context.Context, g *globalOptions, o *auditExportOptions, out io.Writer) error {
	if err := g.validate("text", "json", "jsonl"); err != nil {
		return err
	}
	if o.Since < 1 {
		return usagef("--since %d: sequence numbers start at 1", o.Since)
	}
	return g.withApp(ctx, auth.PermAuditRead, func(a *app) error {
		w := out
		var tmp *os.File
		var err error
		if o.File != "" {
			tmp, err = os.CreateTemp(filepath.Dir(o.File), ".export-*")
			if err != nil {
				return fmt.Errorf("export to %s: %w", o.File, err)
			}
			defer os.Remove(tmp.Name())
			w = tmp
		}
		n, err := audit.Export(ctx, a.store, o.Since, w)
		if err != nil {
			return err
		}
		if tmp != nil {
			if err := tmp.Sync(); err != nil {
				return fmt.Errorf("export to %s: %w", o.File, err)
			}
			if err := tmp.Close(); err != nil {
				return fmt.Errorf("export to %s: %w", o.File, err)
			}
			if err := os.Rename(tmp.Name(), o.File); err != nil {
				return fmt.Errorf("export to %s: %w", o.File, err)
			}
			fmt.Fprintf(g.stderr, "exported %d events to %s\n", n, o.File)
		}
		_, err = a.audit.Append(ctx, audit.Entry{Actor: a.actor.Actor(), Action: "audit.export", Target: "audit", Outcome: "ok",
			Details: map[string]any{"since": o.Since, "events": n, "file": o.File}})
		return err
	})
}

type auditCheckpointOptions struct {
	Publish   []string
	NoPublish bool
	File      string
}

func (o *auditCheckpointOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&o.Publish, "publish", nil, "extra publish target(s): file:/dir or http(s)://webhook (repeatable); steward.audit.publish targets are always used")
	cmd.Flags().BoolVar(&o.NoPublish, "no-publish", false, "only record the checkpoint in the store")
	cmd.Flags().StringVar(&o.File, "file", "", "also write the signed checkpoint to this file")
}

func newAuditCheckpointCmd(g *globalOptions) *cobra.Command {
	o := &auditCheckpointOptions{}
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Sign the current head of the audit log (C2SP signed note) and publish it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuditCheckpoint(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func runAuditCheckpoint(ctx context.Context, g *globalOptions, o *auditCheckpointOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	return g.withApp(ctx, auth.PermAdmin, func(a *app) error {
		cp, published, err := writeCheckpoint(ctx, a, o.Publish, o.NoPublish)
		if err != nil {
			return err
		}
		if o.File != "" {
			if err := os.WriteFile(o.File, cp.Note, 0o644); err != nil {
				return fmt.Errorf("write checkpoint %s: %w", o.File, err)
			}
		}
		if g.json() {
			return printJSON(out, map[string]any{"origin": cp.Origin, "size": cp.Size, "hash": cp.Hash, "note": string(cp.Note), "published": published})
		}
		fmt.Fprintf(out, "checkpoint at size %d, head %s\n%s", cp.Size, short(cp.Hash), cp.Note)
		for _, p := range published {
			fmt.Fprintf(out, "published to %s\n", p)
		}
		return nil
	})
}

// writeCheckpoint signs the head, records it, and publishes it to the
// configured targets plus extra. It is shared by the CLI and the periodic job.
func writeCheckpoint(ctx context.Context, a *app, extra []string, noPublish bool) (audit.Checkpoint, []string, error) {
	signer, _, err := signingKey(a)
	if err != nil {
		return audit.Checkpoint{}, nil, err
	}
	cp, err := a.audit.Checkpoint(ctx, signer, a.cfg.Steward.Audit.Origin)
	if err != nil {
		return audit.Checkpoint{}, nil, err
	}
	if noPublish {
		return cp, nil, nil
	}
	targets := append(append([]string{}, a.cfg.Steward.Audit.Publish...), extra...)
	if len(targets) == 0 {
		return cp, nil, nil
	}
	client := &http.Client{Timeout: 15 * time.Second}
	if err := audit.Publish(ctx, cp, targets, client); err != nil {
		return cp, nil, fmt.Errorf("checkpoint %d recorded but not published everywhere: %w", cp.Size, err)
	}
	return cp, targets, nil
}

func signingKey(a *app) (note.Signer, note.Verifier, error) {
	var secret string
	if ref := a.cfg.Steward.Audit.SigningKey; ref != "" {
		v, err := ref.Resolve()
		if err != nil {
			return nil, nil, fmt.Errorf("steward.audit.signing_key: %w", err)
		}
		secret = v
	}
	return audit.LoadOrCreateKey(a.cfg.Steward.DataDir, secret, a.cfg.Steward.Audit.Origin)
}
