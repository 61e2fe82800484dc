package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func TestSearchAudit(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		events := []struct{ actor, action, target, details string }{
			{"user:alice", "backup.run", "backup:shop/nightly", `{}`},          // 1
			{"user:bob", "probe.run", "probe:shop:home", `{}`},                 // 2
			{"user:alice", "action.approve", "action:7", `{"service":"shop"}`}, // 3
			{"user:alice", "backup.run", "backup:shopping/nightly", `{}`},      // 4: another service
			{"system:jobs", "user_x.add", "user:carol", `{"service":"shop_"}`}, // 5: wildcards are literal
			{"user:bob", "drill.run", "service:shop", `{}`},                    // 6
		}
		for i, e := range events {
			err := s.AppendAudit(ctx, func(h store.AuditHead) ([]store.AuditRecord, error) {
				return []store.AuditRecord{{Seq: h.Seq + 1, Time: base.Add(time.Duration(i) * time.Hour), Actor: e.actor, Action: e.action,
					Target: e.target, Outcome: "ok", Details: e.details, PrevHash: h.Hash, Hash: "h"}}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		seqs := func(f store.AuditSearch) []int64 {
			t.Helper()
			recs, err := s.SearchAudit(ctx, f)
			if err != nil {
				t.Fatalf("search %+v: %v", f, err)
			}
			var out []int64
			for _, r := range recs {
				out = append(out, r.Seq)
			}
			return out
		}
		for name, tc := range map[string]struct {
			f    store.AuditSearch
			want []int64
		}{
			"all":           {store.AuditSearch{}, []int64{6, 5, 4, 3, 2, 1}},
			"service":       {store.AuditSearch{Service: "shop"}, []int64{6, 3, 2, 1}},
			"service _":     {store.AuditSearch{Service: "shop_"}, []int64{5}},
			"actor+service": {store.AuditSearch{Service: "shop", AuditFilter: store.AuditFilter{Actor: "user:alice"}}, []int64{3, 1}},
			"action prefix": {store.AuditSearch{AuditFilter: store.AuditFilter{Action: "backup."}}, []int64{4, 1}},
			"action _":      {store.AuditSearch{AuditFilter: store.AuditFilter{Action: "user_"}}, []int64{5}},
			"since":         {store.AuditSearch{Since: base.Add(4 * time.Hour)}, []int64{6, 5}},
			"range":         {store.AuditSearch{Since: base.Add(time.Hour), Until: base.Add(3 * time.Hour)}, []int64{3, 2}},
			"seq":           {store.AuditSearch{Seq: 4}, []int64{4}},
			"page":          {store.AuditSearch{AuditFilter: store.AuditFilter{BeforeSeq: 5, Limit: 2}}, []int64{4, 3}},
			"none":          {store.AuditSearch{Service: "billing"}, nil},
		} {
			if got := seqs(tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("%s: seqs %v, want %v", name, got, tc.want)
			}
		}
	})
}
