package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stewardhq/steward/internal/store"
)

func TestFixImagesPendingThenApplied(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		a, err := s.InsertAction(ctx, store.ActionRow{Kind: "fix.apply", Params: "{}", Requester: "alice", Reason: "r", State: "executing",
			PlanDetails: "{}", Requirement: "{}", Result: "{}"})
		if err != nil {
			t.Fatal(err)
		}
		// More rows than one batch, to cross batch boundaries.
		var pending, applied []store.FixImage
		for i := range 1203 {
			key := fmt.Sprintf(`["%d"]`, i)
			before := fmt.Sprintf(`{"id":%d,"status":"pending"}`, i)
			after := fmt.Sprintf(`{"id":%d,"status":"cancelled"}`, i)
			pending = append(pending, store.FixImage{RowKey: key, Before: before})
			applied = append(applied, store.FixImage{RowKey: key, Before: before, After: &after})
		}
		if err := s.InsertFixImages(ctx, a.ID, pending); err != nil {
			t.Fatal(err)
		}
		total, np, err := s.CountFixImages(ctx, a.ID)
		if err != nil || total != 1203 || np != 1203 {
			t.Fatalf("after pending write: total %d pending %d err %v", total, np, err)
		}
		if err := s.ReplaceFixImages(ctx, a.ID, applied); err != nil {
			t.Fatal(err)
		}
		total, np, err = s.CountFixImages(ctx, a.ID)
		if err != nil || total != 1203 || np != 0 {
			t.Fatalf("after replace: total %d pending %d err %v", total, np, err)
		}
		got, err := s.ListFixImages(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1203 || got[7].RowKey != `["7"]` || got[7].Pending() || *got[7].After != `{"id":7,"status":"cancelled"}` || got[7].Before != `{"id":7,"status":"pending"}` {
			t.Fatalf("images: %d, [7] = %+v", len(got), got[7])
		}
		// An empty set is fine; deletion removes everything.
		if err := s.InsertFixImages(ctx, a.ID, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteFixImages(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if total, _, _ := s.CountFixImages(ctx, a.ID); total != 0 {
			t.Fatalf("after delete: %d images", total)
		}
	})
}
