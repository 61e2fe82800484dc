package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func outboxRow(channel, key string, at time.Time) store.OutboxRow {
	return store.OutboxRow{Channel: channel, Event: "probe.down", Severity: "critical", Service: "shop",
		DedupKey: key, Payload: `{"event":"probe.down"}`, CreatedAt: at, NextAttemptAt: at}
}

func TestOutboxEnqueueDedupAndResolve(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		now := time.Now().UTC().Truncate(time.Microsecond)
		id, ok, err := s.EnqueueOutbox(ctx, outboxRow("ops", "k", now), false)
		if err != nil || !ok || id == 0 {
			t.Fatalf("enqueue = %d, %v, %v", id, ok, err)
		}
		if _, ok, err := s.EnqueueOutbox(ctx, outboxRow("ops", "k", now), false); ok || err != nil {
			t.Fatalf("repeat enqueued: %v, %v", ok, err)
		}
		// Another channel has its own key space.
		if _, ok, _ := s.EnqueueOutbox(ctx, outboxRow("pager", "k", now), false); !ok {
			t.Fatal("same key on another channel not enqueued")
		}
		// No resolve for what a channel never got.
		if _, ok, _ := s.EnqueueOutbox(ctx, outboxRow("mail", "k", now), true); ok {
			t.Fatal("resolve without trigger enqueued")
		}
		rid, ok, err := s.EnqueueOutbox(ctx, outboxRow("ops", "k", now), true)
		if err != nil || !ok {
			t.Fatalf("resolve: %v, %v", ok, err)
		}
		r, err := s.GetOutbox(ctx, rid)
		if err != nil || r.DedupKey != "k"+store.OutboxResolveSuffix || r.State != store.OutboxPending || !r.CreatedAt.Equal(now) {
			t.Fatalf("resolve row = %+v, %v", r, err)
		}
		// While the trigger is pending, its resolve is not due.
		due, err := s.DueOutbox(ctx, now, 10)
		if err != nil {
			t.Fatal(err)
		}
		var dueIDs []int64
		for _, d := range due {
			dueIDs = append(dueIDs, d.ID)
			if d.ID == rid {
				t.Fatalf("resolve due before its trigger was delivered: %+v", due)
			}
		}
		if len(dueIDs) != 2 {
			t.Fatalf("due = %v", dueIDs)
		}
		lease := now.Add(time.Minute)
		if ok, err := s.ClaimOutbox(ctx, id, now, lease); !ok || err != nil {
			t.Fatalf("claim: %v %v", ok, err)
		}
		if ok, _ := s.MarkOutboxDelivered(ctx, id, lease, now); !ok {
			t.Fatal("mark delivered")
		}
		due, _ = s.DueOutbox(ctx, now, 10)
		if len(due) != 2 || due[1].ID != rid {
			t.Fatalf("after the trigger: due = %+v", due)
		}
		// A new trigger with a resolved key is a new incident.
		nid, ok, err := s.EnqueueOutbox(ctx, outboxRow("ops", "k", now), false)
		if err != nil || !ok || nid == id {
			t.Fatalf("new incident: %d %v %v", nid, ok, err)
		}
		old, _ := s.GetOutbox(ctx, id)
		if old.DedupKey == "k" || old.State != store.OutboxDelivered {
			t.Fatalf("old incident not archived: %+v", old)
		}
	})
}

func TestOutboxClaimRetryAndStats(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		now := time.Now().UTC().Truncate(time.Microsecond)
		id, _, _ := s.EnqueueOutbox(ctx, outboxRow("ops", "a", now), false)
		lease := now.Add(time.Minute)
		if ok, _ := s.ClaimOutbox(ctx, id, now, lease); !ok {
			t.Fatal("first claim lost")
		}
		if ok, _ := s.ClaimOutbox(ctx, id, now, lease.Add(time.Second)); ok {
			t.Fatal("second claim with a stale view won")
		}
		if due, _ := s.DueOutbox(ctx, now.Add(time.Second), 10); len(due) != 0 {
			t.Fatalf("claimed row is due: %+v", due)
		}
		if ok, _ := s.MarkOutboxRetry(ctx, id, now, "stale claim", now, false); ok {
			t.Fatal("finished a row with a claim it does not hold")
		}
		next := now.Add(2 * time.Second)
		if ok, _ := s.MarkOutboxRetry(ctx, id, lease, "HTTP 503", next, false); !ok {
			t.Fatal("record retry")
		}
		r, _ := s.GetOutbox(ctx, id)
		if r.Attempts != 1 || r.LastError != "HTTP 503" || !r.NextAttemptAt.Equal(next) || r.State != store.OutboxPending {
			t.Fatalf("after retry: %+v", r)
		}
		lease2 := next.Add(time.Minute)
		s.ClaimOutbox(ctx, id, next, lease2)
		if ok, _ := s.MarkOutboxRetry(ctx, id, lease2, "HTTP 502", next.Add(4*time.Second), true); !ok {
			t.Fatal("give up")
		}
		// A failed row is re-armed by a new enqueue of its key.
		if id2, ok, _ := s.EnqueueOutbox(ctx, outboxRow("ops", "a", now), false); !ok || id2 != id {
			t.Fatalf("re-arm failed row: %d %v", id2, ok)
		}
		r, _ = s.GetOutbox(ctx, id)
		if r.State != store.OutboxPending || r.Attempts != 0 || r.LastError != "" {
			t.Fatalf("re-armed row: %+v", r)
		}
		s.ClaimOutbox(ctx, id, now, lease)
		s.MarkOutboxRetry(ctx, id, lease, "HTTP 500", now, true)
		bid, _, _ := s.EnqueueOutbox(ctx, outboxRow("ops", "b", now.Add(time.Second)), false)
		cid, _, _ := s.EnqueueOutbox(ctx, outboxRow("ops", "c", now), false)
		s.ClaimOutbox(ctx, cid, now, lease)
		s.MarkOutboxDelivered(ctx, cid, lease, now.Add(3*time.Second))
		stats, err := s.OutboxStats(ctx)
		if err != nil || len(stats) != 1 {
			t.Fatalf("stats = %+v, %v", stats, err)
		}
		st := stats[0]
		if st.Channel != "ops" || st.Pending != 1 || st.Delivered != 1 || st.Failed != 1 || st.LastError != "HTTP 500" ||
			st.OldestPending == nil || !st.OldestPending.Equal(now.Add(time.Second)) || st.LastDeliveredAt == nil || !st.LastDeliveredAt.Equal(now.Add(3*time.Second)) {
			t.Fatalf("stats = %+v", st)
		}
		rows, err := s.ListOutbox(ctx, "ops", store.OutboxPending, 10)
		if err != nil || len(rows) != 1 || rows[0].ID != bid {
			t.Fatalf("list pending = %+v, %v", rows, err)
		}
	})
}

func TestOutboxConcurrentClaimsOneWinner(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s1, s2 := open(t, url), open(t, url)
		now := time.Now().UTC().Truncate(time.Microsecond)
		var ids []int64
		for _, k := range []string{"1", "2", "3", "4", "5", "6", "7", "8"} {
			id, _, err := s1.EnqueueOutbox(ctx, outboxRow("ops", k, now), false)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		var wins atomic.Int64
		var wg sync.WaitGroup
		for i := range 8 {
			s := []*store.Store{s1, s2}[i%2]
			wg.Go(func() {
				for _, id := range ids {
					ok, err := s.ClaimOutbox(ctx, id, now, now.Add(time.Duration(i+1)*time.Second))
					if err != nil {
						t.Errorf("claim: %v", err)
					}
					if ok {
						wins.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if w := wins.Load(); w != int64(len(ids)) {
			t.Fatalf("%d claims won for %d rows, want one each", w, len(ids))
		}
	})
}
