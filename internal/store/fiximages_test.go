package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stewardhq/steward/internal/store"
)

func TestFixImagesPendingThenConfirmed(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		newAction := func() int64 {
			a, err := s.InsertAction(ctx, store.ActionRow{Kind: "fix.apply", Params: "{}", Requester: "alice", Reason: "r", State: "executing",
				PlanDetails: "{}", Requirement: "{}", Result: "{}"})
			if err != nil {
				t.Fatal(err)
			}
			return a.ID
		}
		id := newAction()
		if _, err := s.GetFixImageSet(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("set of an action without images: %v", err)
		}
		w, err := s.BeginFixImages(ctx, store.FixImageSet{ActionID: id, Columns: []string{"id", "status"}})
		if err != nil {
			t.Fatal(err)
		}
		// More rows than one batch, added in uneven pieces, to cross batch
		// boundaries and flush a partial one at the end.
		var imgs []store.FixImage
		for i := range 10_203 {
			after := fmt.Sprintf(`[%d,"cancelled"]`, i)
			imgs = append(imgs, store.FixImage{RowKey: fmt.Sprintf(`[%d]`, i), Before: fmt.Sprintf(`[%d,"pending"]`, i), After: &after})
		}
		for start := 0; start < len(imgs); start += 777 {
			if err := w.Add(ctx, imgs[start:min(start+777, len(imgs))]); err != nil {
				t.Fatal(err)
			}
		}
		// Nothing is visible before the commit.
		if total, _, err := s.CountFixImages(ctx, id); err != nil || total != 0 {
			t.Fatalf("before commit: %d images, %v", total, err)
		}
		if n, err := w.Commit(ctx); err != nil || n != len(imgs) {
			t.Fatalf("commit: %d, %v", n, err)
		}
		total, np, err := s.CountFixImages(ctx, id)
		if err != nil || total != len(imgs) || np != len(imgs) {
			t.Fatalf("after commit: total %d pending %d err %v", total, np, err)
		}
		got, err := s.ListFixImages(ctx, id)
		if err != nil || len(got) != len(imgs) || !got[7].Pending() || got[7].RowKey != `[7]` || *got[7].After != `[7,"cancelled"]` {
			t.Fatalf("pending images: %v, %d, [7] = %+v", err, len(got), got[7])
		}
		if set, err := s.GetFixImageSet(ctx, id); err != nil || !set.Pending() || len(set.Columns) != 2 || set.Columns[1] != "status" {
			t.Fatalf("pending set: %+v %v", set, err)
		}
		if err := s.ConfirmFixImages(ctx, id); err != nil {
			t.Fatal(err)
		}
		total, np, err = s.CountFixImages(ctx, id)
		if err != nil || total != len(imgs) || np != 0 {
			t.Fatalf("after confirm: total %d pending %d err %v", total, np, err)
		}
		got, err = s.ListFixImages(ctx, id)
		if err != nil || len(got) != len(imgs) || got[10_202].RowKey != `[10202]` || got[7].Pending() || got[7].Before != `[7,"pending"]` {
			t.Fatalf("confirmed images: %v, %d, [7] = %+v", err, len(got), got[7])
		}
		// An action keeps one set.
		if _, err := s.BeginFixImages(ctx, store.FixImageSet{ActionID: id}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second set: %v", err)
		}

		// A rolled-back set leaves nothing; an empty set is fine.
		id2 := newAction()
		w, err = s.BeginFixImages(ctx, store.FixImageSet{ActionID: id2})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(ctx, imgs[:300]); err != nil {
			t.Fatal(err)
		}
		w.Rollback()
		if total, _, _ := s.CountFixImages(ctx, id2); total != 0 {
			t.Fatalf("after rollback: %d images", total)
		}
		if _, err := s.GetFixImageSet(ctx, id2); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("set after rollback: %v", err)
		}
		w, err = s.BeginFixImages(ctx, store.FixImageSet{ActionID: id2, Encrypted: true})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := w.Commit(ctx); err != nil || n != 0 {
			t.Fatalf("empty set: %d %v", n, err)
		}
	})
}
