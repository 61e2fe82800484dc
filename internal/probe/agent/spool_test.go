package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/server"
)

func results(from, n int) []server.AgentResult {
	out := make([]server.AgentResult, n)
	for i := range out {
		out[i] = server.AgentResult{UID: fmt.Sprintf("u-%06d", from+i), Service: "shop", Probe: "home", Status: "up",
			StartedAt: time.Unix(int64(from+i), 0).UTC(), DurationMS: 1}
	}
	return out
}

func uids(rs []server.AgentResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.UID
	}
	return out
}

// Results come out oldest first, an acknowledged batch is gone for good,
// an unacknowledged one comes out again after a restart, and a half-written
// last line is discarded.
func TestSpoolOrderAckAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := OpenSpool(dir, 100, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i += 3 { // spans several segments (100/16 per segment)
		if err := s.Append(results(i, 3)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Pending() != 30 {
		t.Fatalf("pending = %d, want 30", s.Pending())
	}
	got, mark, err := s.Peek(10, 1<<20)
	if err != nil || len(got) != 10 || got[0].UID != "u-000000" || got[9].UID != "u-000009" {
		t.Fatalf("peek = %v, %v", uids(got), err)
	}
	if err := s.Ack(mark); err != nil {
		t.Fatal(err)
	}
	got, _, err = s.Peek(5, 1<<20) // not acknowledged: comes again after a restart
	if err != nil || len(got) != 5 || got[0].UID != "u-000010" {
		t.Fatalf("peek after ack = %v, %v", uids(got), err)
	}
	s.Close()
	// A crash in the middle of a write leaves half a line.
	segs, _ := filepath.Glob(filepath.Join(dir, segmentGlob))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"uid":"half`)
	f.Close()

	s, err = OpenSpool(dir, 100, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Pending() != 20 {
		t.Fatalf("pending after restart = %d, want 20", s.Pending())
	}
	if err := s.Append(results(30, 2)); err != nil {
		t.Fatal(err)
	}
	var all []string
	for {
		got, mark, err := s.Peek(7, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		all = append(all, uids(got)...)
		if err := s.Ack(mark); err != nil {
			t.Fatal(err)
		}
	}
	if len(all) != 22 || all[0] != "u-000010" || all[21] != "u-000031" {
		t.Fatalf("drained %d results %v, want u-000010 to u-000031", len(all), all)
	}
	for i := 1; i < len(all); i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("out of order at %d: %v", i, all)
		}
	}
	if s.Pending() != 0 || s.Dropped() != 0 {
		t.Fatalf("pending %d, dropped %d after draining", s.Pending(), s.Dropped())
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, segmentGlob)); len(segs) != 1 {
		t.Fatalf("%d segment files left after draining, want only the active one: %v", len(segs), segs)
	}
}

// A full spool drops its oldest results and counts them; the newest are
// kept.
func TestSpoolBounds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		maxResults int
		maxBytes   int64
	}{
		{"results", 160, 1 << 30},
		{"bytes", 1 << 30, 160 * 150}, // about 160 results of ~140 bytes
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := OpenSpool(t.TempDir(), c.maxResults, c.maxBytes, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := range 100 {
				if err := s.Append(results(i*5, 5)); err != nil {
					t.Fatal(err)
				}
			}
			pending, dropped := s.Pending(), s.Dropped()
			n, b := s.pendingLocked()
			if pending+int(dropped) != 500 || dropped == 0 || n > c.maxResults || b > c.maxBytes {
				t.Fatalf("pending %d (%d bytes) + dropped %d: want 500 in all, within %d results and %d bytes", pending, b, dropped, c.maxResults, c.maxBytes)
			}
			// Whole segments of about a sixteenth of the bound are dropped.
			if n < c.maxResults*3/4 && b < c.maxBytes*3/4 {
				t.Fatalf("kept %d results, %d bytes: dropped more than needed", n, b)
			}
			got, _, err := s.Peek(1000, 1<<30)
			if err != nil || len(got) != pending || got[len(got)-1].UID != "u-000499" || got[0].UID != fmt.Sprintf("u-%06d", 500-pending) {
				t.Fatalf("kept %d results from %s to %s, want the newest %d", len(got), got[0].UID, got[len(got)-1].UID, pending)
			}
		})
	}
}
