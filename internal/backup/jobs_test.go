package backup

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
)

type recordingNotifier struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (r *recordingNotifier) Enqueue(_ context.Context, m notify.Message) ([]int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return []int64{int64(len(r.msgs))}, nil
}

func TestCheckStalenessAlertsAndResolves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	repoURL := "file://" + filepath.ToSlash(filepath.Join(dir, "repo"))
	yaml := `services:
  - name: shop
    objectives: {rpo: 1h}
    databases: [{name: main, engine: sqlite, url: ` + filepath.Join(dir, "shop.db") + `}]
    backups: [{name: nightly, database: main, method: sqlite, repository: "` + repoURL + `", schedule: "0 2 * * *"}]
`
	cfg, err := config.Parse(filepath.Join(dir, "steward.yaml"), []byte(yaml), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	n := &recordingNotifier{}
	deps := Deps{Notifier: n, Now: func() time.Time { return now }}

	stale, err := CheckStaleness(ctx, deps, cfg)
	if err != nil || len(stale) != 1 || !stale[0].None {
		t.Fatalf("no backups: %+v, %v", stale, err)
	}
	if len(n.msgs) != 1 || n.msgs[0].Event != "backup.stale" || n.msgs[0].Resolve {
		t.Fatalf("alerts = %+v", n.msgs)
	}

	repo, err := OpenRepository(ctx, repoURL)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	old := Manifest{ID: NewID(now.Add(-3 * time.Hour)), Service: "shop", Backup: "nightly", Method: "sqlite", Engine: "sqlite",
		StartedAt: now.Add(-3 * time.Hour), FinishedAt: now.Add(-3 * time.Hour), SnapshotTime: now.Add(-3 * time.Hour)}
	if err := repo.WriteManifest(ctx, old); err != nil {
		t.Fatal(err)
	}
	stale, err = CheckStaleness(ctx, deps, cfg)
	if err != nil || len(stale) != 1 || stale[0].None || stale[0].Age != 3*time.Hour {
		t.Fatalf("3h-old backup vs 1h RPO: %+v, %v", stale, err)
	}
	fresh := old
	fresh.ID, fresh.SnapshotTime, fresh.StartedAt = NewID(now.Add(-10*time.Minute)), now.Add(-10*time.Minute), now.Add(-10*time.Minute)
	if err := repo.WriteManifest(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	stale, err = CheckStaleness(ctx, deps, cfg)
	if err != nil || len(stale) != 0 {
		t.Fatalf("fresh backup: %+v, %v", stale, err)
	}
	last := n.msgs[len(n.msgs)-1]
	if !last.Resolve || last.DedupKey != n.msgs[0].DedupKey {
		t.Fatalf("no resolve after a fresh backup: %+v", last)
	}
	if p := Periodic(cfg); len(p) != 2 || p[1].Cron != "0 2 * * *" {
		t.Fatalf("periodic = %+v", p)
	}
}
