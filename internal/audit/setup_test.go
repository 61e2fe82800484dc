package audit

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

var dialects = []string{store.SQLite, store.Postgres}

// testLogger routes logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// openStore opens a fresh store of the dialect: a SQLite file in a temp dir
// or a new PostgreSQL database.
func openStore(t testing.TB, dialect string) *store.Store {
	t.Helper()
	var url string
	switch dialect {
	case store.SQLite:
		url = "sqlite://" + filepath.Join(t.TempDir(), "steward.db")
	case store.Postgres:
		url = testenv.PostgresURL(t)
	default:
		t.Fatalf("unknown dialect %s", dialect)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := store.Open(ctx, url, store.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type bundle struct {
	ctx   context.Context
	store *store.Store
	log   *Log
}

// setup returns a started Log on a fresh store of the dialect; it is closed
// when the test ends.
func setup(t testing.TB, dialect string) bundle {
	t.Helper()
	s := openStore(t, dialect)
	ctx, cancel := context.WithCancel(context.Background())
	l := New(s, Options{Logger: testLogger(t)})
	l.Start(ctx)
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close log: %v", err)
		}
		cancel()
	})
	return bundle{ctx: ctx, store: s, log: l}
}

// appendN appends n events numbered in their target.
func appendN(t testing.TB, b bundle, n int) []Event {
	t.Helper()
	var out []Event
	for i := range n {
		ev, err := b.log.Append(b.ctx, Entry{
			Actor: "alice", Action: "user.add", Target: fmt.Sprintf("user-%d", i), Outcome: "ok",
			Details: map[string]any{"i": i, "roles": []string{"sre"}, "note": "line\nbreak <tag> é"},
		})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, ev)
	}
	return out
}

// memChain builds a valid chain of n events without a store.
func memChain(n int) []Event {
	evs := make([]Event, n)
	prev := ZeroHash
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range evs {
		e := Event{
			Seq: int64(i + 1), Time: t0.Add(time.Duration(i) * 1500 * time.Microsecond),
			Actor: "token:ci-deploy", Action: "token.create", Target: fmt.Sprintf("service/shop/db-%d", i%7), Outcome: "ok",
			Details:  []byte(fmt.Sprintf(`{"expires":"2025-04-01T00:00:00Z","ip":"10.0.%d.%d","scopes":["read","write"],"ttl_s":%d}`, i%250, i%200, 3600+i)),
			PrevHash: prev,
		}
		e.Hash = HashEvent(e)
		prev = e.Hash
		evs[i] = e
	}
	return evs
}

// exportLines renders events as an export.
func exportLines(evs []Event) []byte {
	var b []byte
	for _, e := range evs {
		b = appendEventLine(b, e)
	}
	return b
}
