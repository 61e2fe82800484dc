package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func TestProbeLocations(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		if _, err := s.GetProbeLocation(ctx, "eu-west"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get unknown location: %v, want ErrNotFound", err)
		}
		first := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
		loc := store.ProbeLocation{Name: "eu-west", AgentUser: "agent", Version: "v1", LastSeen: first, Healthy: true, Buffered: 7, PollInterval: 30 * time.Second}
		created, err := s.UpsertProbeLocation(ctx, loc)
		if err != nil || !created {
			t.Fatalf("first heartbeat: created %v, %v", created, err)
		}
		later := first.Add(30 * time.Second)
		loc.LastSeen, loc.Healthy, loc.Reason, loc.Buffered, loc.Dropped, loc.Version = later, false, "self-check 10.0.0.1:53: connection refused", 0, 3, "v2"
		if created, err := s.UpsertProbeLocation(ctx, loc); err != nil || created {
			t.Fatalf("second heartbeat: created %v, %v", created, err)
		}
		if _, err := s.UpsertProbeLocation(ctx, store.ProbeLocation{Name: "ap-south", LastSeen: later, Healthy: true, PollInterval: time.Second}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetProbeLocation(ctx, "eu-west")
		if err != nil {
			t.Fatal(err)
		}
		want := store.ProbeLocation{Name: "eu-west", AgentUser: "agent", Version: "v2", FirstSeen: first, LastSeen: later, Healthy: false,
			Reason: "self-check 10.0.0.1:53: connection refused", Buffered: 0, Dropped: 3, PollInterval: 30 * time.Second}
		if !got.FirstSeen.Equal(want.FirstSeen) || !got.LastSeen.Equal(want.LastSeen) {
			t.Fatalf("times = %v, %v; want first seen kept at %v and last seen %v", got.FirstSeen, got.LastSeen, first, later)
		}
		got.FirstSeen, got.LastSeen = want.FirstSeen, want.LastSeen
		if got != want {
			t.Fatalf("location = %+v\nwant %+v", got, want)
		}
		all, err := s.ListProbeLocations(ctx)
		if err != nil || len(all) != 2 || all[0].Name != "ap-south" || !all[0].Healthy || all[0].PollInterval != time.Second || all[1].Name != "eu-west" {
			t.Fatalf("list = %+v, %v", all, err)
		}
	})
}

// An agent uploads a batch again when the answer to the first upload was
// lost: every result is stored exactly once.
func TestInsertProbeResultsOnce(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		base := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
		var batch []store.AgentResultRow
		for i := range 450 { // more than one statement
			batch = append(batch, store.AgentResultRow{UID: fmt.Sprintf("eu-west-%04d", i), ProbeResultRow: store.ProbeResultRow{
				Service: "shop", Probe: "home", Location: "eu-west", Status: "up", StartedAt: base.Add(time.Duration(i) * time.Second), DurationMS: int64(i)}})
		}
		n, err := s.InsertProbeResultsOnce(ctx, batch[:300])
		if err != nil || n != 300 {
			t.Fatalf("first upload: %d new, %v", n, err)
		}
		// The whole batch again, with one uid twice: only the 150 new ones count.
		again := append(batch, batch[400])
		if n, err = s.InsertProbeResultsOnce(ctx, again); err != nil || n != 150 {
			t.Fatalf("second upload: %d new, %v; want 150", n, err)
		}
		if n, err = s.InsertProbeResultsOnce(ctx, batch); err != nil || n != 0 {
			t.Fatalf("third upload: %d new, %v; want 0", n, err)
		}
		results, distinct, err := s.CountProbeResultUIDs(ctx, "eu-west")
		if err != nil || results != 450 || distinct != 450 {
			t.Fatalf("stored %d results with %d uids, %v; want 450", results, distinct, err)
		}
		// The server's own results carry no uid and do not collide.
		if err := s.InsertProbeResults(ctx, []store.ProbeResultRow{{Service: "shop", Probe: "home", Status: "up", StartedAt: base}, {Service: "shop", Probe: "home", Status: "up", StartedAt: base}}); err != nil {
			t.Fatal(err)
		}
		latest, err := s.LatestProbeResults(ctx, "shop")
		if err != nil || len(latest) != 2 || latest[0].Location != "eu-west" || latest[0].DurationMS != 449 || latest[1].Location != "local" {
			t.Fatalf("latest = %+v, %v", latest, err)
		}
		if _, err := s.InsertProbeResultsOnce(ctx, []store.AgentResultRow{{ProbeResultRow: store.ProbeResultRow{Service: "shop", Probe: "home"}}}); err == nil {
			t.Fatal("a result without uid was accepted")
		}
	})
}
