package drill_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/testenv"
)

const hangYAML = `services:
  - name: shop
    objectives: {rto: 10m, rpo: 24h}
    databases:
      - {name: main, engine: postgres, url: "SRC"}
    backups:
      - {name: nightly, database: main, method: pg_dump, repository: REPO, format: custom}
    drills:
      - name: weekly
        backup: nightly
        timeout: 3s
        scratch: {kind: command, provision: "echo 'postgres://steward@ADDR/scratch?sslmode=disable'", destroy: "true"}
`

// silentListener accepts TCP connections and never answers, keeping them
// open until the test ends.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestRestoreHangsPastPhaseTimeout: a pg_dump restore into a scratch
// server that accepts connections and never answers is cut by the
// per-phase timeout and ends as a failed drill, scratch destroyed, alert
// sent.
func TestRestoreHangsPastPhaseTimeout(t *testing.T) {
	t.Parallel()
	src := testenv.PostgresURL(t)
	seedPostgres(t, src, time.Now().Add(-2*time.Hour))
	addr := silentListener(t)
	b := setup(t, strings.NewReplacer("SRC", src, "ADDR", addr).Replace(hangYAML))
	b.takeBackup("shop", "nightly")

	start := time.Now()
	rep, err := b.run("shop", "weekly", drill.RunOptions{})
	took := time.Since(start)
	if took > 20*time.Second {
		t.Fatalf("the hung restore was not cut by the 3s phase timeout: drill took %s", took)
	}
	b.checkFailed(rep, err, drill.StatusFailed, drill.PhaseRestore+" timed out after 3s")
	if rep.ScratchLabel == "" {
		t.Fatalf("report names no scratch: %+v", rep)
	}
	sc, gerr := b.store.GetScratch(b.ctx, rep.ScratchLabel)
	if gerr != nil || sc.DestroyedAt == nil {
		t.Fatalf("scratch record %+v, %v: want destroyed", sc, gerr)
	}
}
