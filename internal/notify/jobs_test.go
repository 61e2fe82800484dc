package notify_test

import (
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/jobs"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/testenv"
)

// TestDeliverJob runs the real River runner with the periodic delivery job:
// a message enqueued before the runner starts arrives without anyone
// calling Deliver.
func TestDeliverJob(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		tg := newTarget(t)
		cfg := config.Notify{Channels: webhookChannels(tg)}
		b := setup(t, url, cfg, notify.Options{})
		// The runner's periodic passes use the real clock.
		b.outbox = notify.NewOutbox(b.store, cfg, b.chans, notify.Options{})
		ids := b.enqueue(t, msg(1))

		jc := jobs.Config{Dialect: b.store.Dialect(), DSN: b.store.DriverDSN(), PollInterval: 50 * time.Millisecond,
			Periodic: []jobs.Periodic{notify.Periodic()}}
		if err := jobs.Migrate(t.Context(), jc); err != nil {
			t.Fatal(err)
		}
		reg := jobs.NewRegistry()
		notify.RegisterWorkers(reg, b.outbox)
		r, err := jobs.New(t.Context(), jc, reg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if err := r.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if _, counts := tg.received(); counts[ids[0]] == 1 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, counts := tg.received(); counts[ids[0]] != 1 {
			t.Fatalf("delivery job did not deliver: received %v", counts)
		}
		// An explicit insert is unique while one is queued or running.
		if _, err := r.Insert(t.Context(), notify.DeliverArgs{}, nil); err != nil {
			t.Fatal(err)
		}
		if err := r.Stop(t.Context(), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})
}
