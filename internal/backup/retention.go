package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

// Retain decides which backups a retention policy keeps, from manifest
// times only (UTC). It keeps:
//   - the KeepLast newest;
//   - the newest backup of each of the Daily most recent days that have one;
//   - likewise for Weekly (ISO weeks) and Monthly (calendar months);
//   - always the newest backup, and any dated after now (clock skew).
//
// Days, weeks or months without a backup do not use up the count, so a gap
// in backups never makes retention delete more. A policy with every count 0
// keeps everything. The result maps ids to the reasons they are kept.
func Retain(ms []Manifest, r config.Retention, now time.Time) map[string][]string {
	keep := map[string][]string{}
	if len(ms) == 0 {
		return keep
	}
	sorted := slices.Clone(ms)
	slices.SortFunc(sorted, func(a, b Manifest) int { return lessManifest(b, a) }) // newest first
	if r.KeepLast <= 0 && r.Daily <= 0 && r.Weekly <= 0 && r.Monthly <= 0 {
		for _, m := range sorted {
			keep[m.ID] = append(keep[m.ID], "no retention policy")
		}
		return keep
	}
	keep[sorted[0].ID] = append(keep[sorted[0].ID], "newest")
	for i, m := range sorted {
		if i < r.KeepLast {
			keep[m.ID] = append(keep[m.ID], "last")
		}
		if m.Time().After(now) {
			keep[m.ID] = append(keep[m.ID], "future")
		}
	}
	buckets := []struct {
		name string
		n    int
		key  func(t time.Time) string
	}{
		{"daily", r.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", r.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{"monthly", r.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, b := range buckets {
		if b.n <= 0 {
			continue
		}
		seen := map[string]bool{}
		for _, m := range sorted {
			k := b.key(m.Time().UTC())
			if seen[k] {
				continue
			}
			if len(seen) == b.n {
				break
			}
			seen[k] = true
			keep[m.ID] = append(keep[m.ID], b.name+" "+k)
		}
	}
	return keep
}

// ApplyRetention deletes the backups of b that its retention policy does
// not keep (see Retain), oldest first, and returns their ids.
func ApplyRetention(ctx context.Context, repo *Repository, svc *config.Service, b *config.Backup, now time.Time) (deleted []string, err error) {
	ms, err := repo.List(ctx, svc.Name, b.Name)
	if err != nil {
		return nil, err
	}
	keep := Retain(ms, b.Retention, now)
	var errs []error
	for _, m := range ms { // oldest first
		if _, ok := keep[m.ID]; ok {
			continue
		}
		if err := repo.Delete(ctx, m); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, m.ID)
	}
	return deleted, errors.Join(errs...)
}

// retention applies b's retention after a run and audits what it deleted.
func retention(ctx context.Context, deps Deps, svc *config.Service, b *config.Backup, actor string, log *slog.Logger) ([]string, error) {
	repo, err := OpenRepository(ctx, b.Repository)
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	deleted, err := ApplyRetention(ctx, repo, svc, b, deps.Now())
	if len(deleted) == 0 && err == nil {
		return nil, nil
	}
	outcome, details := "ok", map[string]any{"deleted": deleted, "policy": b.Retention}
	if err != nil {
		outcome, details["error"] = "error", err.Error()
	}
	log.InfoContext(ctx, "retention applied", "deleted", deleted)
	if deps.Audit != nil {
		if aerr := deps.Audit(ctx, actor, AuditDelete, "backup:"+svc.Name+"/"+b.Name, outcome, details); aerr != nil {
			err = errors.Join(err, fmt.Errorf("audit retention: %w", aerr))
		}
	}
	return deleted, err
}
