package slowatch_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/store"
)

// BenchmarkEvaluate measures an evaluation of 100 probes with SLOs, each
// with 12 hours of results every 30 seconds (144,000 rows, SQLite): the
// first run, which loads the history, and the next runs, which read the
// results of the last 30 seconds.
func BenchmarkEvaluate(b *testing.B) {
	const probes, rows = 100, 1440
	ctx := context.Background()
	dir := b.TempDir()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var y strings.Builder
	y.WriteString("services:\n  - name: shop\n    probes:\n")
	for i := range probes {
		fmt.Fprintf(&y, "      - {name: p%d, type: http, url: \"http://127.0.0.1:9/\", interval: 30s, timeout: 5s, slo: {availability: 99.9, latency: {threshold: 500ms, target: 95}}}\n", i)
	}
	cfg, err := config.Parse(filepath.Join(dir, "steward.yaml"), []byte(y.String()), config.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var batch []store.ProbeResultRow
	for i := range probes {
		for k := range rows {
			status := "up"
			if k%97 == 0 {
				status = "down"
			}
			batch = append(batch, store.ProbeResultRow{Service: "shop", Probe: fmt.Sprintf("p%d", i), Status: status,
				StartedAt: now.Add(time.Duration(k-rows) * 30 * time.Second), DurationMS: int64(50 + k%600)})
		}
	}
	if err := st.InsertProbeResults(ctx, batch); err != nil {
		b.Fatal(err)
	}
	ev := slowatch.New(slowatch.Deps{Store: st})
	start := time.Now()
	if _, err := ev.Run(ctx, cfg, now); err != nil {
		b.Fatal(err)
	}
	first := time.Since(start)
	b.ResetTimer()
	for i := range b.N {
		at := now.Add(time.Duration(i+1) * 30 * time.Second)
		var next []store.ProbeResultRow
		for p := range probes {
			next = append(next, store.ProbeResultRow{Service: "shop", Probe: fmt.Sprintf("p%d", p), Status: "up", StartedAt: at.Add(-time.Second), DurationMS: 80})
		}
		b.StopTimer()
		if err := st.InsertProbeResults(ctx, next); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := ev.Run(ctx, cfg, at); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(first.Milliseconds()), "first-run-ms")
}
