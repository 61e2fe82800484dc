package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/server"
)

// An agent started while the server is down runs the assignments it cached,
// and, with the server as its only self-check, records its down results as
// broken and keeps them in the spool.
func TestRunWithCachedAssignmentsDuringOutage(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String() // neither the server nor the target answers
	ln.Close()
	dir := t.TempDir()
	cached := server.AgentAssignments{Location: "eu-west", Version: "v1", Probes: []server.AgentAssignment{{Service: "shop", Probe: "db",
		Definition: config.Probe{Name: "db", Type: config.ProbeTCP, Interval: "1s", Timeout: "500ms", Address: gone, Locations: []string{"eu-west"}}}}}
	b, _ := json.Marshal(cached)
	if err := os.WriteFile(filepath.Join(dir, assignmentsFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	sum, err := Run(ctx, Options{Server: "http://" + gone, Token: "stw_x", Location: "eu-west", DataDir: dir, PollInterval: time.Second,
		Grace: time.Second, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Results < 2 || sum.Broken != sum.Results || sum.Sent != 0 || sum.Buffered != int(sum.Results) || sum.Dropped != 0 {
		t.Fatalf("summary = %+v; want every result broken and buffered", sum)
	}
	sp, err := OpenSpool(filepath.Join(dir, "spool"), 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	got, _, err := sp.Peek(100, 1<<20)
	if err != nil || len(got) != sum.Buffered {
		t.Fatalf("spool holds %d results, %v; want %d", len(got), err, sum.Buffered)
	}
	for _, r := range got {
		if r.Status != "broken" || r.Service != "shop" || r.Probe != "db" || !strings.HasPrefix(r.UID, "eu-west:") || !strings.Contains(r.Error, "could not probe") {
			t.Errorf("spooled %+v", r)
		}
	}
}
