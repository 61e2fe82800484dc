package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/demo"
	"github.com/stewardhq/steward/internal/report"
	"github.com/stewardhq/steward/internal/store"
)

// demoReport plays the auditor: the demo (the operator) signs a checkpoint,
// dana (role auditor) exports the evidence of the demo period with
// `steward report`, and the export is verified against the checkpoint with
// `steward audit verify`, as an auditor would on their own machine.
func demoReport(ctx context.Context, r *running, ws *demo.Workspace, step func(string, ...any)) error {
	a := r.App
	from, err := firstEventTime(ctx, a.store)
	if err != nil {
		return err
	}
	token, _, err := a.auth.CreateToken(ctx, a.actor.Actor(), "dana", "demo-report", time.Hour)
	if err != nil {
		return err
	}
	cp, _, err := writeCheckpoint(ctx, a, nil, false)
	if err != nil {
		return err
	}
	// The period ends at the checkpoint, so jobs the server runs meanwhile
	// add nothing it does not cover.
	evs, err := a.store.ListAudit(ctx, store.AuditFilter{BeforeSeq: cp.Size + 1, Limit: 1})
	if err != nil || len(evs) == 0 {
		return fmt.Errorf("read checkpoint event %d: %v", cp.Size, err)
	}
	to := evs[0].Time
	out := filepath.Join(ws.Dir, "report")
	var stdout, stderr strings.Builder
	args := []string{"-c", ws.ConfigPath, "--log-level", "error", "--token", token, "-o", "json", "report",
		"--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano), "--format", "html", "--out", out}
	if code := run(ctx, args, strings.NewReader(""), &stdout, &stderr); code != exitOK {
		return fmt.Errorf("report as dana: exit %d: %s", code, stderr.String())
	}
	var res struct {
		Bundle   report.Bundle   `json:"bundle"`
		Coverage report.Coverage `json:"coverage"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		return fmt.Errorf("report output: %w", err)
	}
	step("dana (auditor) exported the evidence since %s: %d items, %d tied to audit events (highest %d), covered by checkpoint %d; %s",
		from.Format(time.RFC3339), res.Coverage.Items, res.Coverage.Audited, res.Coverage.MaxSeq, cp.Size, filepath.Join(out, report.HTML.FileName()))
	stdout.Reset()
	stderr.Reset()
	verify := []string{"audit", "verify", "--file", filepath.Join(out, report.AuditFile), "--checkpoint", filepath.Join(out, report.CheckpointFile),
		"--key", filepath.Join(out, report.KeyFile)}
	if code := run(ctx, verify, strings.NewReader(""), &stdout, &stderr); code != exitOK {
		return fmt.Errorf("the report's export does not verify: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	step("the auditor's check passes: %s → %s", report.VerifyCommand, strings.TrimSpace(stdout.String()))
	return nil
}

// errFirst stops a scan after the first event.
var errFirst = errors.New("first event")

// firstEventTime is when the workspace's audit log began: the demo period.
func firstEventTime(ctx context.Context, s *store.Store) (time.Time, error) {
	var t time.Time
	err := s.ScanAudit(ctx, 1, func(r store.AuditRecord) error {
		t = r.Time
		return errFirst
	})
	if err != nil && !errors.Is(err, errFirst) {
		return time.Time{}, err
	}
	if t.IsZero() {
		return time.Time{}, errors.New("the audit log is empty")
	}
	return t, nil
}
