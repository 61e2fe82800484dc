package audit

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stewardhq/steward/internal/store"
)

// BenchmarkAppend16 appends b.N events from 16 concurrent writers to SQLite
// (group commit) and reports events/s.
func BenchmarkAppend16(b *testing.B) {
	bn := setup(b, store.SQLite)
	const writers = 16
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/writers + 1
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := bn.log.Append(bn.ctx, Entry{Actor: fmt.Sprintf("user-%d", w), Action: "token.create", Target: "service/shop", Outcome: "ok",
					Details: map[string]any{"i": i, "scopes": []string{"read"}}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*writers)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkVerify verifies an in-memory JSONL export; compare its MB/s with
// sha256sum over the same bytes (bench/auditbench does both in one run).
func BenchmarkVerify(b *testing.B) {
	data := exportLines(memChain(100000))
	b.SetBytes(int64(len(data)))
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		rep, err := Verify(ctx, JSONLSource(bytes.NewReader(data)), nil)
		if err != nil || !rep.OK {
			b.Fatal(err, rep)
		}
	}
}
