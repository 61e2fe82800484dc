package integrity_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/integrity"
	"github.com/stewardhq/steward/internal/store"
)

// remedyService is the seeded database with checks whose remedies map
// their violations in different ways (checks indented by 6 spaces).
func (b *bundle) remedyService(t *testing.T, checks string) *config.Service {
	t.Helper()
	urlFile := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(urlFile, []byte(b.url), 0o600); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`services:
  - name: shop
    databases:
      - {name: main, engine: %s, url: "file:%s"}
    checks:
%s    fixes:
      - {name: by-ids, database: main, params: {id: "[]int"}, select: "SELECT id FROM orders WHERE id IN :id", apply: "DELETE FROM orders WHERE id IN :id", max_rows: 10}
      - {name: by-id, database: main, params: {order_id: int}, select: "SELECT id FROM orders WHERE id = :order_id", apply: "DELETE FROM orders WHERE id = :order_id"}
      - {name: by-status, database: main, params: {status: string, ids: "[]int"}, select: "SELECT id FROM orders WHERE id IN :ids AND status = :status", apply: "DELETE FROM orders WHERE id IN :ids AND status = :status", max_rows: 10}
`, b.engine, urlFile, checks)
	return loadService(t, y)
}

func TestProposeRemedy(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		// Violations: amount NULL or negative and not a refund: 4 and 6
		// (5 is a refund); unknown status: 4 (bogus) and 7 (shipped).
		svc := b.remedyService(t, `      - {name: amounts, database: main, type: row_predicate, table: orders, predicate: "amount >= 0 OR status = 'refund'", remedy: by-ids}
      - {name: each, database: main, type: row_predicate, table: orders, predicate: "amount >= 0 OR status = 'refund'", remedy: by-id, remedy_params: {order_id: id}}
      - {name: grouped, database: main, type: accepted_values, table: orders, column: status, values: [paid, refund], show: [status], remedy: by-status, remedy_params: {ids: id}}
      - {name: masked, database: main, type: accepted_values, table: orders, column: status, values: [paid, refund], show: [status], mask: [status], remedy: by-status, remedy_params: {ids: id}}
      - {name: missing, database: main, type: row_predicate, table: orders, predicate: "amount >= 0", remedy: by-id}
      - {name: stranger, database: main, type: row_predicate, table: orders, predicate: "amount >= 0", remedy: by-ids, remedy_params: {nope: id}}
      - {name: plain, database: main, type: row_predicate, table: orders, predicate: "amount >= 0"}
      - {name: nulls, database: main, type: not_null, table: orders, column: email, show: [email], remedy: by-ids, remedy_params: {id: email}}
      - {name: typed, database: main, type: accepted_values, table: orders, column: status, values: [paid, refund], show: [status], remedy: by-ids, remedy_params: {id: status}}
`)
		results, err := integrity.Run(ctx, b.deps(seedNow), svc, nil, "user:test")
		if err != nil {
			t.Fatal(err)
		}
		res := byName(results)
		propose := func(name string, limit int) (*integrity.Remedy, error) {
			return integrity.ProposeRemedy(svc, res[name], limit)
		}

		// A list parameter: one request for every violation.
		rem, err := propose("amounts", 10)
		if err != nil || len(rem.Requests) != 1 || rem.Requests[0].Params.Params["id"] != `["4","6"]` || rem.Covered != 2 ||
			rem.Requests[0].Params.Check != "amounts" || rem.Requests[0].Params.Fix != "by-ids" {
			t.Fatalf("amounts: %+v, %v", rem, err)
		}
		// A scalar parameter: one request per row, bounded by the limit.
		rem, err = propose("each", 1)
		if err != nil || len(rem.Requests) != 1 || rem.Requests[0].Params.Params["order_id"] != "4" || rem.Covered != 1 || rem.Skipped != 1 {
			t.Fatalf("each: %+v, %v", rem, err)
		}
		if rem, err = propose("each", 0); err != nil || len(rem.Requests) != 2 {
			t.Fatalf("each without a limit: %+v, %v", rem, err)
		}
		// Scalars group the rows; the list collects each group's keys.
		rem, err = propose("grouped", 10)
		if err != nil || len(rem.Requests) != 2 || rem.Requests[0].Params.Params["status"] != "bogus" || rem.Requests[0].Params.Params["ids"] != `["4"]` ||
			rem.Requests[1].Params.Params["status"] != "shipped" {
			t.Fatalf("grouped: %+v, %v", rem, err)
		}
		// A request turns into the action request the pipeline takes.
		req := rem.Requests[0].Request("why")
		if req.Kind != "fix.apply" || req.Service != "shop" || req.Target != "by-status" || !strings.Contains(string(req.Params), `"check":"grouped"`) {
			t.Fatalf("request: %+v %s", req, req.Params)
		}
		for name, want := range map[string]string{
			"masked":   "masks",
			"missing":  "needs column order_id",
			"stranger": `remedy_params names "nope"`,
			"typed":    "is not an integer", // refused before anything is created
		} {
			if _, err := propose(name, 10); !errors.Is(err, integrity.ErrRemedyMapping) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want %q", name, err, want)
			}
		}
		if _, err := propose("plain", 10); !errors.Is(err, integrity.ErrNoRemedy) {
			t.Errorf("plain: %v", err)
		}
		// A NULL cannot be a parameter: those rows are skipped.
		if rem, err = propose("nulls", 10); err != nil || len(rem.Requests) != 0 || rem.Skipped != int(res["nulls"].Violations) {
			t.Errorf("nulls: %+v, %v", rem, err)
		}
	})
}

func TestRunAfterFixLinksTheRun(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		svc := b.service(t, `      - {name: statuses, database: main, type: not_null, table: orders, column: status}
`)
		if _, err := integrity.Run(ctx, b.deps(seedNow), svc, nil, "user:test"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.db.ExecContext(ctx, "UPDATE orders SET status = 'paid' WHERE status IS NULL"); err != nil {
			t.Fatal(err)
		}
		r, err := integrity.RunAfterFix(ctx, b.deps(seedNow), svc, "statuses", 42)
		if err != nil || r.Status != integrity.StatusPass || r.FixAction == nil || *r.FixAction != 42 {
			t.Fatalf("after fix: %+v, %v", r, err)
		}
		rows, err := b.store.ListCheckRuns(ctx, store.CheckRunFilter{Service: "shop", Check: "statuses"})
		if err != nil || len(rows) != 2 || rows[0].FixAction == nil || *rows[0].FixAction != 42 || rows[0].Actor != integrity.AfterFixActor || rows[1].FixAction != nil {
			t.Fatalf("runs: %+v, %v", rows, err)
		}
		if got := b.audits[len(b.audits)-1]; got != "system:fix check.run shop/statuses pass" {
			t.Fatalf("audit %q", got)
		}
		// The recovery alerts like any run.
		if last := b.alerts[len(b.alerts)-1]; last.Event != integrity.EventCheckRecovered {
			t.Fatalf("alerts %+v", b.alerts)
		}
		if _, err := integrity.RunAfterFix(ctx, b.deps(seedNow), svc, "nope", 1); !errors.Is(err, integrity.ErrUnknownCheck) {
			t.Fatalf("unknown check: %v", err)
		}
	})
}
