package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The per-probe series are created by a probe's first run, not before, and
// a run of a job that a reload removed, still in progress when its series
// were deleted, does not bring them back.
func TestSeriesCreatedByFirstRunAndGoneAfterRemoval(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	defer ts.Close()
	cfg, err := parse(t, fmt.Sprintf(`- {name: home, type: http, url: "%s/"}
- {name: feed, type: http, url: "%s/feed"}`, ts.URL, ts.URL))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := NewRecorder(nil, prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	jobs := rec.Jobs(cfg, Options{})
	if n := testutil.CollectAndCount(rec.m.success); n != 0 {
		t.Fatalf("%d success series before any run, want none", n)
	}
	ctx := context.Background()
	for range 2 {
		for _, j := range jobs {
			if out := j.Run(ctx); out.Status != "up" {
				t.Fatalf("%s: %+v", j.Key, out)
			}
		}
	}
	if v := testutil.ToFloat64(rec.m.success.WithLabelValues("shop", "feed")); v != 1 {
		t.Errorf("success of feed = %v, want 1", v)
	}
	if n := testutil.CollectAndCount(rec.m.duration); n != 2 {
		t.Errorf("duration series = %d, want 2", n)
	}
	if n := testutil.CollectAndCount(rec.m.phase); n != 8 {
		t.Errorf("phase series = %d, want 4 per probe", n)
	}

	cfg.Services[0].Probes = cfg.Services[0].Probes[:1] // feed removed
	rec.Jobs(cfg, Options{})
	jobs[1].Run(ctx) // the old job of feed, finishing after the reload
	if n := testutil.CollectAndCount(rec.m.success); n != 1 {
		t.Errorf("success series after removing feed and a late run of it = %d, want 1", n)
	}
	if n := testutil.CollectAndCount(rec.m.phase); n != 4 {
		t.Errorf("phase series after removing feed = %d, want 4", n)
	}
}
