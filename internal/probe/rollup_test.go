package probe_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/jobs"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/store"
)

// TestRollupJob runs the real River runner with the periodic rollup: a
// result older than the raw retention becomes a minute bucket at start,
// and a recent one stays raw.
func TestRollupJob(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC()
	old := now.Add(-probe.DefaultRawKeep - time.Hour)
	if err := st.InsertProbeResults(ctx, []store.ProbeResultRow{
		{Service: "shop", Probe: "home", Status: "up", StartedAt: old, DurationMS: 12},
		{Service: "shop", Probe: "home", Status: "down", StartedAt: now.Add(-time.Minute), DurationMS: 30},
	}); err != nil {
		t.Fatal(err)
	}

	jc := jobs.Config{Dialect: st.Dialect(), DSN: st.DriverDSN(), PollInterval: 50 * time.Millisecond,
		Periodic: []jobs.Periodic{probe.RollupPeriodic()}}
	if err := jobs.Migrate(ctx, jc); err != nil {
		t.Fatal(err)
	}
	reg := jobs.NewRegistry()
	probe.RegisterRollupWorker(reg, st)
	r, err := jobs.New(ctx, jc, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var got []store.ProbeRollupRow
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, err = st.ListProbeRollups(ctx, "shop", "home", store.RollupMinute, time.Time{}, 0); err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			break
		}
	}
	if len(got) != 1 || got[0].Runs != 1 || got[0].Up != 1 || got[0].DurationSumMS != 12 || !got[0].BucketStart.Equal(old.Truncate(time.Minute)) {
		t.Fatalf("minute buckets = %+v, want the old result's", got)
	}
	raw, err := st.ListProbeResults(ctx, "shop", "home", time.Time{}, 0)
	if err != nil || len(raw) != 1 || raw[0].Status != "down" {
		t.Fatalf("raw results = %+v, %v; want the recent one only", raw, err)
	}
	if err := r.Stop(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
