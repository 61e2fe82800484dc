// Command checkbench measures integrity checks on a large PostgreSQL table:
// ten column checks (not_null, accepted_values, row_predicate, freshness,
// row_count) run by Steward against, in the same run, a bare count(*), the
// best hand-written single query computing the same ten results (ten
// count(*) FILTER aggregates), and the ten checks as ten separate queries
// (one query per test). Each figure is the median of 3 runs, alternating.
//
//	go run ./bench/checkbench [-rows 5000000]
//
// PostgreSQL comes from STEWARD_TEST_POSTGRES, or
// postgres://postgres@127.0.0.1:5432/postgres; a scratch database is created
// and dropped at the end.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward/bench/internal/proc"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/integrity"
	"github.com/stewardhq/steward/internal/store"
)

func main() {
	rows := flag.Int("rows", 5_000_000, "rows in the checked table")
	rounds := flag.Int("rounds", 3, "measurements of each variant (the median is reported)")
	flag.Parse()
	if err := run(context.Background(), *rows, *rounds, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "checkbench:", err)
		os.Exit(1)
	}
}

// The ten checks, as configured and as their violation conditions.
const checksYAML = `      - {name: status-set, database: main, type: not_null, table: orders, column: status}
      - {name: customer-set, database: main, type: not_null, table: orders, column: customer_id}
      - {name: email-set, database: main, type: not_null, table: orders, column: email}
      - {name: status-known, database: main, type: accepted_values, table: orders, column: status, values: [pending, paid, shipped, refunded, cancelled]}
      - {name: currency-known, database: main, type: accepted_values, table: orders, column: currency, values: [EUR, USD, GBP]}
      - {name: amount-sign, database: main, type: row_predicate, table: orders, predicate: "amount >= 0 OR status = 'refunded'"}
      - {name: quantity-range, database: main, type: row_predicate, table: orders, predicate: "quantity BETWEEN 1 AND 100"}
      - {name: updated-after-created, database: main, type: row_predicate, table: orders, predicate: "updated_at >= created_at"}
      - {name: fresh, database: main, type: freshness, table: orders, column: created_at, max_age: 1h}
      - {name: not-empty, database: main, type: row_count, table: orders, min: 1000}
`

// violations are the same ten conditions written by hand (count(*) and
// max() for the last two).
var violations = []string{
	"status IS NULL",
	"customer_id IS NULL",
	"email IS NULL",
	"status IS NOT NULL AND status NOT IN ('pending', 'paid', 'shipped', 'refunded', 'cancelled')",
	"currency IS NOT NULL AND currency NOT IN ('EUR', 'USD', 'GBP')",
	"(amount >= 0 OR status = 'refunded') IS NOT TRUE",
	"(quantity BETWEEN 1 AND 100) IS NOT TRUE",
	"(updated_at >= created_at) IS NOT TRUE",
}

func run(ctx context.Context, rows, rounds int, out io.Writer) error {
	base := os.Getenv("STEWARD_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL (set STEWARD_TEST_POSTGRES): %w", err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "steward_checkbench_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("create scratch database: %w", err)
	}
	defer func() {
		if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "checkbench: drop scratch database:", err)
		}
	}()
	u, _ := url.Parse(base)
	u.Path = "/" + name
	dbURL := u.String()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)

	var version string
	_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&version)
	fmt.Fprintf(out, "PostgreSQL %s, %d rows, median of %d runs, load %s\n", version, rows, rounds, proc.LoadAvg())
	start := time.Now()
	for _, s := range []string{
		`CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id bigint, status text, amount numeric(12,2), currency text, quantity integer,
  email text, country text, note text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)`,
		fmt.Sprintf(`INSERT INTO orders
SELECT g, 1 + (g * 7919) %% 200000,
  (ARRAY['pending','paid','shipped','refunded','cancelled'])[1 + g %% 5],
  CASE WHEN g %% 5 = 3 THEN -((g %% 9000) / 100.0) ELSE (g %% 50000) / 100.0 END,
  (ARRAY['EUR','USD','GBP'])[1 + g %% 3], 1 + g %% 100,
  'user' || (g %% 1000003) || '@example.com', (ARRAY['DE','FR','US','GB','NL','ES'])[1 + g %% 6],
  CASE WHEN g %% 4 = 0 THEN 'gift wrap, deliver after 18:00' END,
  now() - make_interval(secs => (%d - g) * 0.5), now() - make_interval(secs => (%d - g) * 0.5) + interval '5 minutes'
FROM generate_series(1::bigint, %d) g`, rows, rows, rows),
		"VACUUM ANALYZE orders",
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("prepare table: %w", err)
		}
	}
	var size string
	_ = conn.QueryRow(ctx, "SELECT pg_size_pretty(pg_table_size('orders'))").Scan(&size)
	fmt.Fprintf(out, "table: %s, created in %s\n", size, time.Since(start).Round(time.Second))

	handFused := "SELECT count(*)"
	for _, v := range violations {
		handFused += ", count(*) FILTER (WHERE " + v + ")"
	}
	handFused += ", max(created_at) FROM orders"

	// Steward: the config, a store, the checks.
	dir, err := os.MkdirTemp("", "checkbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	urlFile := filepath.Join(dir, "url")
	if err := os.WriteFile(urlFile, []byte(dbURL), 0o600); err != nil {
		return err
	}
	cfg, err := config.Parse(filepath.Join(dir, "steward.yaml"), []byte(
		"services:\n  - name: shop\n    databases:\n      - {name: main, engine: postgres, url: \"file:"+urlFile+"\"}\n    checks:\n"+checksYAML), config.LoadOptions{})
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	deps := integrity.Deps{Store: st, Logger: slog.New(slog.DiscardHandler)}
	svc := cfg.Service("shop")

	var fusedResult, separateResult, stewardResult []int64
	variants := []struct {
		name string
		fn   func() error
	}{
		{"bare count(*)", func() error {
			var n int64
			return conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n)
		}},
		{"hand-fused (1 query)", func() error {
			vals := make([]any, len(violations)+2)
			ints := make([]int64, len(violations)+1)
			var newest time.Time
			for i := range ints {
				vals[i] = &ints[i]
			}
			vals[len(vals)-1] = &newest
			if err := conn.QueryRow(ctx, handFused).Scan(vals...); err != nil {
				return err
			}
			fusedResult = append(ints[1:], ints[0])
			return nil
		}},
		{"separate (10 queries)", func() error {
			separateResult = separateResult[:0]
			for _, v := range violations {
				var n int64
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE "+v).Scan(&n); err != nil {
					return err
				}
				separateResult = append(separateResult, n)
			}
			var newest time.Time
			if err := conn.QueryRow(ctx, "SELECT max(created_at) FROM orders").Scan(&newest); err != nil {
				return err
			}
			var n int64
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
				return err
			}
			separateResult = append(separateResult, n)
			return nil
		}},
		{"steward (10 checks)", func() error {
			res, err := integrity.Run(ctx, deps, svc, nil, "checkbench")
			if err != nil {
				return err
			}
			stewardResult = stewardResult[:0]
			for _, r := range res {
				if r.Status == integrity.StatusError {
					return fmt.Errorf("check %s: %s", r.Check, r.Error)
				}
				switch r.Type {
				case "freshness":
				case "row_count":
					stewardResult = append(stewardResult, *r.Rows)
				default:
					stewardResult = append(stewardResult, r.Violations)
				}
			}
			return nil
		}},
	}
	// Warm the cache: one pass of each.
	for _, v := range variants {
		if err := v.fn(); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
	}
	if !slices.Equal(fusedResult, separateResult) || !slices.Equal(fusedResult, stewardResult) {
		return fmt.Errorf("the variants disagree: hand-fused %v, separate %v, steward %v", fusedResult, separateResult, stewardResult)
	}
	fmt.Fprintf(out, "violations (identical in all variants): %v\n\n", fusedResult[:len(fusedResult)-1])
	times := make([][]time.Duration, len(variants))
	for range rounds {
		for i, v := range variants {
			t0 := time.Now()
			if err := v.fn(); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			times[i] = append(times[i], time.Since(t0))
		}
	}
	med := make([]time.Duration, len(variants))
	for i, v := range variants {
		slices.Sort(times[i])
		med[i] = times[i][len(times[i])/2]
		fmt.Fprintf(out, "%-24s %8.3f s   (runs: %s)\n", v.name, med[i].Seconds(), fmtDurations(times[i]))
	}
	bare, fused, separate, steward := med[0].Seconds(), med[1].Seconds(), med[2].Seconds(), med[3].Seconds()
	fmt.Fprintf(out, "\nsteward / hand-fused    %6.2f   (target <= 1.2)  %s\n", steward/fused, verdict(steward/fused <= 1.2))
	fmt.Fprintf(out, "separate / steward      %6.2f   (target >= 3)    %s\n", separate/steward, verdict(separate/steward >= 3))
	fmt.Fprintf(out, "steward / bare count    %6.2f\n", steward/bare)
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func fmtDurations(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.3f", d.Seconds()))
	}
	return strings.Join(parts, " ")
}
