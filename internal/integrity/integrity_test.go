package integrity_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/integrity"
	"github.com/stewardhq/steward/internal/store"
)

const allChecks = `      - {name: nn-status, database: main, type: not_null, table: orders, column: status}
      - {name: nn-id, database: main, type: not_null, table: orders, column: id}
      - {name: av-status, database: main, type: accepted_values, table: orders, column: status, values: [paid, shipped, refund]}
      - {name: av-status-all, database: main, type: accepted_values, table: orders, column: status, values: [paid, shipped, refund, bogus]}
      - {name: pred-amount, database: main, type: row_predicate, table: orders, predicate: "amount >= 0 OR status = 'refund'", severity: warn}
      - {name: pred-id, database: main, type: row_predicate, table: orders, predicate: "id > 0"}
      - {name: pred-scoped, database: main, type: row_predicate, table: orders, predicate: "amount >= 0", where: "status = 'paid'"}
      - {name: uq-email, database: main, type: unique, table: orders, column: email}
      - {name: uq-id, database: main, type: unique, table: orders, columns: [id, status]}
      - {name: fk-customer, database: main, type: foreign_key, table: orders, column: customer_id, references: customers.id}
      - {name: fk-customer-scoped, database: main, type: foreign_key, table: orders, column: customer_id, references: customers.id, where: "status <> 'bogus'"}
      - {name: fresh-recent, database: main, type: freshness, table: orders, column: created_at, max_age: 1h}
      - {name: fresh-stale, database: main, type: freshness, table: orders, column: created_at, max_age: 1h, where: "id < 7"}
      - {name: rc-ok, database: main, type: row_count, table: orders, min: 1, max: 100}
      - {name: rc-too-many, database: main, type: row_count, table: orders, max: 5}
      - {name: sql-negative, database: main, type: sql, sql: "SELECT id, amount FROM orders WHERE amount < 0;"}
      - {name: sql-none, database: main, type: sql, sql: "SELECT id FROM orders WHERE id > 1000"}
      - {name: rec-agg-ok, database: main, type: reconcile, left: {sql: "SELECT count(*) AS n, sum(amount) AS s FROM orders WHERE status = 'paid'"}, right: {sql: "SELECT 3 AS n, 30.0 AS s"}}
      - {name: rec-agg-diff, database: main, type: reconcile, left: {sql: "SELECT sum(amount) AS s FROM orders"}, right: {sql: "SELECT 41 AS s"}}
      - {name: rec-keys, database: main, type: reconcile, mode: keys, left: {sql: "SELECT id FROM orders"}, right: {sql: "SELECT id FROM customers"}}
      - {name: rec-keys-text, database: main, type: reconcile, mode: keys, left: {sql: "SELECT email FROM customers"}, right: {sql: "SELECT email FROM orders WHERE email IS NOT NULL"}}
`

func TestCheckTypes(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		svc := b.service(t, allChecks)
		res, err := integrity.Run(ctx, b.deps(seedNow), svc, nil, "alice")
		if err != nil {
			t.Fatal(err)
		}
		got := byName(res)
		want := []struct {
			check      string
			status     string
			violations int64
			sample     []any
		}{
			{"nn-status", "fail", 1, []any{"3"}},
			{"nn-id", "pass", 0, nil},
			{"av-status", "fail", 1, []any{"4"}}, // NULL is left to not_null
			{"av-status-all", "pass", 0, nil},
			{"pred-amount", "warn", 2, []any{"4", "6"}}, // NULL amount does not satisfy the predicate
			{"pred-id", "pass", 0, nil},
			{"pred-scoped", "fail", 1, []any{"6"}},
			{"uq-email", "fail", 2, []any{"1", "7"}},
			{"uq-id", "pass", 0, nil},
			{"fk-customer", "fail", 1, []any{"4"}},
			{"fk-customer-scoped", "pass", 0, nil},
			{"fresh-recent", "pass", 0, nil},
			{"fresh-stale", "fail", 1, nil},
			{"rc-ok", "pass", 0, nil},
			{"rc-too-many", "fail", 1, nil},
			{"sql-negative", "fail", 2, []any{"4", "5"}},
			{"sql-none", "pass", 0, nil},
			{"rec-agg-ok", "pass", 0, nil},
			{"rec-agg-diff", "fail", 1, nil},
			{"rec-keys", "fail", 4, nil},
			{"rec-keys-text", "fail", 2, nil}, // bob and cy only in left
		}
		for _, w := range want {
			r, ok := got[w.check]
			if !ok {
				t.Errorf("%s: no result", w.check)
				continue
			}
			if r.Status != w.status || r.Violations != w.violations || r.Error != "" {
				t.Errorf("%s: status %s, %d violations, error %q; want %s, %d (detail %q, query %s)", w.check, r.Status, r.Violations, r.Error, w.status, w.violations, r.Detail, r.Query)
			}
			if w.sample != nil && !slices.Equal(ids(r), w.sample) {
				t.Errorf("%s: sample ids %v, want %v (%v)", w.check, ids(r), w.sample, r.Sample)
			}
			if r.RunID == 0 || r.Query == "" {
				t.Errorf("%s: run id %d, query %q", w.check, r.RunID, r.Query)
			}
		}
		// The sample holds the key only, unless columns are shown.
		if s := got["sql-negative"].Sample; len(s) != 2 || len(s[0]) != 1 {
			t.Errorf("sql sample = %v, want the id only", s)
		}
		if r := got["rec-keys"]; len(r.Sample) != 4 || fmt.Sprint(r.Sample[0]["key"]) != "4" || r.Sample[0]["only_in"] != "left" {
			t.Errorf("rec-keys sample = %v", r.Sample)
		}
		if len(b.audits) != len(want) || !strings.HasPrefix(b.audits[0], "alice check.run shop/nn-status fail") {
			t.Errorf("audits = %v", b.audits)
		}

		// The same checks scanned in chunks of 2 rows give the same counts.
		chunked := strings.ReplaceAll(allChecks, "table: orders,", "table: orders, chunk: 2,")
		res2, err := integrity.RunAgainst(ctx, b.deps(seedNow), b.service(t, chunked), "main", b.url)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res2 {
			if o := got[r.Check]; r.Status != o.Status || r.Violations != o.Violations {
				t.Errorf("chunked %s: %s %d, unchunked %s %d (%s %s)", r.Check, r.Status, r.Violations, o.Status, o.Violations, r.Error, r.Query)
			}
		}
	})
}

func TestFusion(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		svc := b.service(t, `      - {name: a, database: main, type: not_null, table: orders, column: status}
      - {name: b, database: main, type: accepted_values, table: orders, column: status, values: [paid, shipped, refund]}
      - {name: c, database: main, type: row_predicate, table: orders, predicate: "amount >= 0 OR status = 'refund'"}
      - {name: d, database: main, type: freshness, table: orders, column: created_at, max_age: 1h}
      - {name: e, database: main, type: row_count, table: orders, min: 1}
      - {name: other-scope, database: main, type: not_null, table: orders, column: status, where: "id > 3"}
`)
		res, err := integrity.Run(context.Background(), b.deps(seedNow), svc, nil, "alice")
		if err != nil {
			t.Fatal(err)
		}
		q := b.takeQueries()
		// One scan for a–e, one for the differently scoped check, one
		// sample for each of a, b, c (d and e pass, other-scope passes).
		if n := count(q, "check query"); n != 2 {
			t.Errorf("%d scans, want 2: %v", n, q)
		}
		if n := count(q, "check sample query"); n != 3 {
			t.Errorf("%d sample queries, want 3: %v", n, q)
		}
		for _, r := range res[1:5] {
			if r.Query != res[0].Query {
				t.Errorf("%s has its own query %q", r.Check, r.Query)
			}
		}
		if res[5].Query == res[0].Query {
			t.Error("a check with another where was fused")
		}
		if *res[4].Rows != 7 || res[0].Violations != 1 || res[1].Violations != 1 || res[2].Violations != 2 {
			t.Errorf("results = %+v", res)
		}
		if b.engine == dbx.Postgres && !strings.Contains(res[0].Query, "FILTER (WHERE") || b.engine != dbx.Postgres && !strings.Contains(res[0].Query, "SUM(CASE") {
			t.Errorf("query = %s", res[0].Query)
		}
	})
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

func TestMaskingAndShow(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		svc := b.service(t, `      - {name: dup, database: main, type: unique, table: orders, column: email, show: [email, status], mask: [email]}
`)
		res, err := integrity.Run(ctx, b.deps(seedNow), svc, nil, "alice")
		if err != nil || len(res) != 1 || res[0].Status != "fail" || len(res[0].Sample) != 2 {
			t.Fatalf("run = %+v, %v", res, err)
		}
		row := res[0].Sample[0]
		email, _ := row["email"].(string)
		if !strings.HasPrefix(email, "sha256:") || row["status"] != "paid" || fmt.Sprint(row["id"]) != "1" || len(row) != 3 {
			t.Fatalf("sample row = %v", row)
		}
		if res[0].Sample[1]["email"] != email {
			t.Errorf("the same value masks differently: %v", res[0].Sample)
		}
		runs, err := b.store.ListCheckRuns(ctx, store.CheckRunFilter{Service: "shop", Check: "dup"})
		if err != nil || len(runs) != 1 || strings.Contains(runs[0].Sample, "ann@") || !strings.Contains(runs[0].Sample, email) {
			t.Fatalf("stored sample = %+v, %v", runs, err)
		}
	})
}

func TestHistoryAndTransitions(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		svc := b.service(t, `      - {name: status, database: main, type: not_null, table: orders, column: status, owner: team-shop}
`)
		t0 := seedNow
		run := func(at time.Time) integrity.Result {
			t.Helper()
			res, err := integrity.Run(ctx, b.deps(at), svc, []string{"status"}, "alice")
			if err != nil || len(res) != 1 {
				t.Fatalf("run: %+v, %v", res, err)
			}
			return res[0]
		}
		exec := func(q string) {
			t.Helper()
			if _, err := b.db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		r := run(t0)
		if r.Status != "fail" || r.New != 1 || r.Persisting != 0 || len(r.Keys) != 1 || !r.Keys[0].New || r.Keys[0].Key != `{"id":3}` {
			t.Fatalf("first run = %+v", r)
		}
		r = run(t0.Add(time.Hour))
		if r.New != 0 || r.Persisting != 1 || r.Keys[0].New || r.Keys[0].AgeSeconds != 3600 {
			t.Fatalf("second run = %+v", r)
		}
		exec("INSERT INTO orders (id, customer_id, status, amount) VALUES (8, 1, NULL, 1)")
		r = run(t0.Add(2 * time.Hour))
		if r.Violations != 2 || r.New != 1 || r.Persisting != 1 || r.Resolved != 0 {
			t.Fatalf("third run = %+v", r)
		}
		exec("UPDATE orders SET status = 'paid' WHERE status IS NULL")
		r = run(t0.Add(3 * time.Hour))
		if r.Status != "pass" || r.Resolved != 2 || r.New != 0 {
			t.Fatalf("fixed run = %+v", r)
		}
		run(t0.Add(4 * time.Hour))
		// One alert when it started failing, one when it recovered.
		if len(b.alerts) != 2 {
			t.Fatalf("alerts = %+v", b.alerts)
		}
		f, rec := b.alerts[0], b.alerts[1]
		if f.Event != integrity.EventCheckFailed || f.Severity != "critical" || f.Fields["owner"] != "team-shop" || f.Resolve ||
			rec.Event != integrity.EventCheckRecovered || !rec.Resolve || rec.DedupKey != f.DedupKey {
			t.Fatalf("alerts = %+v", b.alerts)
		}
		hist, err := integrity.History(ctx, b.store, "shop", "status", 10)
		if err != nil || len(hist) != 5 || hist[0].Status != "pass" || hist[4].Violations != 1 || len(hist[4].Sample) != 1 {
			t.Fatalf("history = %+v, %v", hist, err)
		}
	})
}

func TestRowCountDeviation(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		svc := b.service(t, `      - {name: rows, database: main, type: row_count, table: orders, deviation: 20%}
`)
		for i := range 3 {
			res, err := integrity.Run(ctx, b.deps(seedNow.Add(time.Duration(i)*time.Minute)), svc, nil, "alice")
			if err != nil || res[0].Status != "pass" {
				t.Fatalf("run %d = %+v, %v", i, res, err)
			}
		}
		if _, err := b.db.ExecContext(ctx, "INSERT INTO orders (id, status) VALUES (8, 'paid'), (9, 'paid'), (10, 'paid')"); err != nil {
			t.Fatal(err)
		}
		res, err := integrity.Run(ctx, b.deps(seedNow.Add(time.Hour)), svc, nil, "alice")
		if err != nil || res[0].Status != "fail" || *res[0].Rows != 10 || !strings.Contains(res[0].Detail, "from the average 7") {
			t.Fatalf("after growth = %+v, %v", res, err)
		}
	})
}

func TestErrorsAreNeverPass(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		slow := map[string]string{
			dbx.Postgres: `{name: slow, database: main, type: row_predicate, table: orders, predicate: "pg_sleep(1) IS NOT NULL", timeout: 300ms}`,
			dbx.MySQL:    `{name: slow, database: main, type: row_predicate, table: orders, predicate: "SLEEP(1) = 0", timeout: 300ms}`,
			dbx.SQLite:   `{name: slow, database: main, type: sql, sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c", timeout: 300ms}`,
		}[b.engine]
		svc := b.service(t, `      - {name: typo, database: main, type: row_predicate, table: orders, predicate: "amont >= 0"}
      - {name: fine, database: main, type: not_null, table: orders, column: id}
      - {name: bad-sql, database: main, type: sql, sql: "SELEC id FROM orders"}
      - {name: no-table, database: main, type: unique, table: nope, column: id}
      - `+slow+`
`)
		start := time.Now()
		res, err := integrity.Run(ctx, b.deps(seedNow), svc, nil, "alice")
		if err != nil {
			t.Fatal(err)
		}
		got := byName(res)
		for _, name := range []string{"typo", "bad-sql", "no-table", "slow"} {
			if r := got[name]; r.Status != "error" || r.Error == "" || r.Violations != 0 {
				t.Errorf("%s = %+v, want error", name, r)
			}
		}
		// The typo fused with "fine" does not take it down.
		if r := got["fine"]; r.Status != "pass" {
			t.Errorf("fine = %+v", r)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("took %s: the statement timeout did not fire", d)
		}
		if !strings.Contains(strings.ToLower(got["slow"].Error), "timeout") && !strings.Contains(got["slow"].Error, "interrupted") && !strings.Contains(got["slow"].Error, "deadline") {
			t.Errorf("slow error = %q, want a timeout", got["slow"].Error)
		}
		// Each check that could not run alerts once, on its own key.
		if _, err := integrity.Run(ctx, b.deps(seedNow.Add(time.Minute)), svc, nil, "alice"); err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, a := range b.alerts {
			if a.Event != integrity.EventCheckError || a.Resolve {
				t.Errorf("alert %+v", a)
			}
			keys[a.DedupKey] = true
		}
		if len(b.alerts) != 4 || len(keys) != 4 {
			t.Errorf("%d alerts for %d keys, want 4 once each: %+v", len(b.alerts), len(keys), b.alerts)
		}
	})
}

func TestDatabaseDownIsErrorWithoutSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	urls := map[string]string{
		dbx.Postgres: "postgres://app:s3cretpw@127.0.0.1:1/shop?sslmode=disable&connect_timeout=2",
		dbx.MySQL:    "app:s3cretpw@tcp(127.0.0.1:1)/shop?timeout=2s",
		dbx.SQLite:   filepath.Join(dir, "missing", "app.db"),
	}
	for engine, url := range urls {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			f := filepath.Join(t.TempDir(), "url")
			if err := os.WriteFile(f, []byte(url), 0o600); err != nil {
				t.Fatal(err)
			}
			svc := loadService(t, fmt.Sprintf("services:\n  - name: shop\n    databases:\n      - {name: main, engine: %s, url: \"file:%s\"}\n    checks:\n"+
				"      - {name: a, database: main, type: not_null, table: orders, column: status}\n"+
				"      - {name: b, database: main, type: unique, table: orders, column: email}\n", engine, f))
			st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "s.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			res, err := integrity.Run(context.Background(), integrity.Deps{Store: st}, svc, nil, "alice")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Status != "error" || r.Error == "" || strings.Contains(r.Error, "s3cretpw") {
					t.Errorf("%s = %+v", r.Check, r)
				}
			}
			runs, _ := st.ListCheckRuns(context.Background(), store.CheckRunFilter{})
			for _, r := range runs {
				if r.Status != "error" || strings.Contains(r.Error, "s3cretpw") || strings.Contains(r.Query, "s3cretpw") {
					t.Errorf("stored run = %+v", r)
				}
			}
		})
	}
}

func TestChecksCannotWrite(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		if b.engine == dbx.SQLite {
			t.Skip("SQLite has no SQL-callable writing functions; see TestReadOnlyTransaction for its read-only connection")
		}
		ctx := context.Background()
		svc := b.service(t, `      - {name: sneaky, database: main, type: row_predicate, table: orders, predicate: "steward_write() = 1"}
      - {name: sneaky-sql, database: main, type: sql, sql: "SELECT steward_write() AS id"}
`)
		res, err := integrity.Run(ctx, b.deps(seedNow), svc, nil, "alice")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Status != "error" || !strings.Contains(strings.ToLower(r.Error), "read") {
				t.Errorf("%s = %+v, want a read-only error", r.Check, r)
			}
		}
		var n int
		if err := b.db.QueryRowContext(ctx, "SELECT count(*) FROM side_effects").Scan(&n); err != nil || n != 0 {
			t.Fatalf("side effects = %d, %v", n, err)
		}
	})
}

func TestPhysicalChecks(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		if b.engine == dbx.Postgres {
			// Before the extension exists: an error that says what to do.
			svc := b.service(t, "      - {name: am, database: main, type: amcheck, table: orders}\n")
			res, _ := integrity.Run(ctx, b.deps(seedNow), svc, nil, "alice")
			if res[0].Status != "error" || !strings.Contains(res[0].Error, "CREATE EXTENSION amcheck") {
				t.Fatalf("amcheck without extension = %+v", res[0])
			}
			if _, err := b.db.ExecContext(ctx, "CREATE EXTENSION amcheck"); err != nil {
				t.Fatal(err)
			}
		}
		svc := b.service(t, `      - {name: am, database: main, type: amcheck, table: orders}
      - {name: am-all, database: main, type: amcheck}
      - {name: ct, database: main, type: check_table, table: orders}
      - {name: ct-missing, database: main, type: check_table, table: nope}
`)
		res, err := integrity.Run(ctx, b.deps(seedNow), svc, nil, "alice")
		if err != nil {
			t.Fatal(err)
		}
		got := byName(res)
		want := map[string]string{"am": "pass", "am-all": "pass", "ct": "error", "ct-missing": "error"}
		if b.engine != dbx.Postgres {
			want = map[string]string{"am": "error", "am-all": "error", "ct": "pass", "ct-missing": "error"}
		}
		for name, st := range want {
			if got[name].Status != st {
				t.Errorf("%s = %+v, want %s", name, got[name], st)
			}
		}
		if b.engine == dbx.Postgres && !strings.Contains(got["am"].Detail, "relations checked") {
			t.Errorf("am detail = %q", got["am"].Detail)
		}
	})
}

func TestResultJSON(t *testing.T) {
	t.Parallel()
	b := setup(t, dbx.SQLite, filepath.Join(t.TempDir(), "app.db"))
	svc := b.service(t, "      - {name: a, database: main, type: not_null, table: orders, column: status}\n")
	res, err := integrity.Run(context.Background(), b.deps(seedNow), svc, nil, "alice")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(res[0])
	var m map[string]any
	json.Unmarshal(raw, &m)
	for _, k := range []string{"status", "violations", "sample", "duration_ms", "query", "check", "new", "persisting", "resolved"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, raw)
		}
	}
}

func TestUnknownCheck(t *testing.T) {
	t.Parallel()
	b := setup(t, dbx.SQLite, filepath.Join(t.TempDir(), "app.db"))
	svc := b.service(t, "      - {name: a, database: main, type: not_null, table: orders, column: status}\n")
	if _, err := integrity.Run(context.Background(), b.deps(seedNow), svc, []string{"nope"}, "alice"); err == nil || !strings.Contains(err.Error(), "configured: a") {
		t.Fatalf("err = %v", err)
	}
}

func TestReadOnlyTransaction(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		svc := b.service(t, "      - {name: a, database: main, type: not_null, table: orders, column: status}\n")
		for _, stmt := range []string{"DELETE FROM orders", "INSERT INTO side_effects VALUES (1)", "CREATE TABLE x (n INTEGER)"} {
			if err := integrity.ExecReadOnly(ctx, svc, "main", stmt); err == nil {
				t.Errorf("%s: ran in the checks' transaction", stmt)
			}
		}
		var n int
		if err := b.db.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 7 {
			t.Fatalf("orders = %d, %v", n, err)
		}
	})
}
