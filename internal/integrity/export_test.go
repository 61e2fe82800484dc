package integrity

import (
	"context"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

// ExecReadOnly runs stmt the way checks run their queries, for the tests of
// the read-only guarantee.
func ExecReadOnly(ctx context.Context, svc *config.Service, db, stmt string) error {
	ts := newTargets(svc, nil)
	defer ts.close()
	t, err := ts.get(ctx, db, false)
	if err != nil {
		return err
	}
	return t.readOnly(ctx, 5*time.Second, func(ctx context.Context, q querier) error {
		_, err := q.ExecContext(ctx, stmt)
		return err
	})
}
