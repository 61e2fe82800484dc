// Command fixbench measures a fix changing 100,000 rows of a PostgreSQL
// table — lock, key-set check, before-images, UPDATE … RETURNING with the
// row-count check, after-images, before- and after-images committed to
// Steward's store (pending) in one store transaction, target commit, images
// confirmed — against the bare UPDATE of the same rows, in the same run. Each
// figure is the median of 3 runs, alternating; the rows are reset (and the
// table vacuumed) between runs, untimed.
//
//	go run ./bench/fixbench [-rows 100000] [-table-rows 200000] [-store sqlite|postgres]
//
// PostgreSQL comes from STEWARD_TEST_POSTGRES, or
// postgres://postgres@127.0.0.1:5432/postgres; a scratch database is created
// and dropped at the end. The Steward store is a SQLite file in a temporary
// directory (the embedded default), or a second scratch PostgreSQL database.
// FIXBENCH_STEPS=1 prints the time to each step of the guarded change;
// FIXBENCH_CPUPROFILE=FILE writes a CPU profile.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/fix"
	"github.com/stewardhq/steward/internal/store"
)

func main() {
	rows := flag.Int("rows", 100_000, "rows the fix changes")
	tableRows := flag.Int("table-rows", 200_000, "rows in the table")
	rounds := flag.Int("rounds", 3, "measurements of each variant (the median is reported)")
	storeKind := flag.String("store", "sqlite", "Steward store: sqlite or postgres")
	flag.Parse()
	if f := os.Getenv("FIXBENCH_CPUPROFILE"); f != "" {
		w, err := os.Create(f)
		if err == nil && pprof.StartCPUProfile(w) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(context.Background(), *rows, *tableRows, *rounds, *storeKind, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fixbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func baseURL() string {
	if v := os.Getenv("STEWARD_TEST_POSTGRES"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// scratch creates a database and returns its URL and a drop function.
func scratch(ctx context.Context, base string) (string, func(), error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "steward_fixbench_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL (set STEWARD_TEST_POSTGRES): %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create scratch database: %w", err)
	}
	drop := func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String(), drop, nil
}

func run(ctx context.Context, rows, tableRows, rounds int, storeKind string, out io.Writer) error {
	if rows > tableRows {
		return fmt.Errorf("-rows %d > -table-rows %d", rows, tableRows)
	}
	base := baseURL()
	appURL, drop, err := scratch(ctx, base)
	if err != nil {
		return err
	}
	defer drop()
	app, err := pgx.Connect(ctx, appURL)
	if err != nil {
		return err
	}
	defer app.Close(ctx)
	fmt.Fprintf(out, "building orders: %d rows, %d of them selected by the fix\n", tableRows, rows)
	for _, q := range []string{
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, email TEXT, status TEXT NOT NULL,
			amount NUMERIC(12,2) NOT NULL, note TEXT, batch INT NOT NULL, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)`,
		fmt.Sprintf(`INSERT INTO orders SELECT g, g %% 5000, 'user' || g || '@example.com', 'pending', (g %% 997) + 0.5, NULL,
			CASE WHEN g <= %d THEN 1 ELSE 2 END, now() - (g || ' s')::interval, now() FROM generate_series(1, %d) g`, rows, tableRows),
		"CREATE INDEX orders_batch ON orders (batch, status)",
		"VACUUM ANALYZE orders",
	} {
		if _, err := app.Exec(ctx, q); err != nil {
			return fmt.Errorf("%.40s…: %w", q, err)
		}
	}

	var st *store.Store
	switch storeKind {
	case "sqlite":
		dir, err := os.MkdirTemp("", "fixbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		st, err = store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
		if err != nil {
			return err
		}
	case "postgres":
		su, sdrop, err := scratch(ctx, base)
		if err != nil {
			return err
		}
		defer sdrop()
		st, err = store.Open(ctx, su, store.Options{})
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("-store %q: sqlite or postgres", storeKind)
	}
	defer st.Close()

	cfg := &config.Config{Services: []config.Service{{
		Name:      "shop",
		Databases: []config.Database{{Name: "main", Engine: "postgres", URL: config.Secret(appURL)}},
		Fixes: []config.Fix{{Name: "cancel-batch", Database: "main", Params: map[string]string{"batch": "int"}, MaxRows: rows,
			Select: "SELECT id FROM orders WHERE batch = :batch AND status = 'pending'",
			Apply:  "UPDATE orders SET status = 'cancelled', updated_at = now() WHERE batch = :batch AND status = 'pending'"}},
	}}}
	var last time.Time
	deps := &fix.Deps{Config: func() *config.Config { return cfg }, Store: st, Hook: func(_ context.Context, step string) error {
		if os.Getenv("FIXBENCH_STEPS") != "" {
			fmt.Fprintf(out, "    step %-15s +%.3f s\n", step, time.Since(last).Seconds())
		}
		last = time.Now()
		return nil
	}}
	kind := fix.NewApplyKind(deps)

	reset := func() error {
		if _, err := app.Exec(ctx, "UPDATE orders SET status = 'pending' WHERE batch = 1"); err != nil {
			return err
		}
		_, err := app.Exec(ctx, "VACUUM ANALYZE orders")
		return err
	}
	bare := func() (time.Duration, error) {
		start := time.Now()
		tx, err := app.Begin(ctx)
		if err != nil {
			return 0, err
		}
		tag, err := tx.Exec(ctx, "UPDATE orders SET status = 'cancelled', updated_at = now() WHERE batch = $1 AND status = 'pending'", 1)
		if err != nil {
			tx.Rollback(ctx) //nolint:errcheck
			return 0, err
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, err
		}
		d := time.Since(start)
		if int(tag.RowsAffected()) != rows {
			return 0, fmt.Errorf("bare update changed %d rows", tag.RowsAffected())
		}
		return d, nil
	}
	var planTimes []time.Duration
	guarded := func() (time.Duration, error) {
		params, _ := json.Marshal(fix.ApplyParams{Service: "shop", Fix: "cancel-batch", Params: map[string]string{"batch": "1"}})
		row, err := st.InsertAction(ctx, store.ActionRow{Kind: fix.ApplyKindName, Service: "shop", Params: string(params), Requester: "bench",
			Reason: "bench", State: "executing", PlanDetails: "{}", Requirement: "{}", Result: "{}"})
		if err != nil {
			return 0, err
		}
		a := &action.Action{ID: row.ID, Kind: fix.ApplyKindName, Service: "shop", Params: params}
		ps := time.Now()
		plan, err := kind.Plan(ctx, a)
		if err != nil {
			return 0, err
		}
		planTimes = append(planTimes, time.Since(ps))
		b, _ := json.Marshal(plan) // as the pipeline stores it
		if err := json.Unmarshal(b, &a.Plan); err != nil {
			return 0, err
		}
		start := time.Now()
		last = start
		res, err := kind.Execute(ctx, a)
		if err != nil {
			return 0, err
		}
		d := time.Since(start)
		if err := kind.Verify(ctx, a, res); err != nil {
			return 0, err
		}
		if total, pending, _ := st.CountFixImages(ctx, a.ID); total != rows || pending != 0 {
			return 0, fmt.Errorf("%d images, %d pending", total, pending)
		}
		return d, nil
	}

	var bareT, fixT []time.Duration
	for i := range rounds {
		for _, v := range []struct {
			name string
			fn   func() (time.Duration, error)
			into *[]time.Duration
		}{{"bare UPDATE", bare, &bareT}, {"guarded fix", guarded, &fixT}} {
			if err := reset(); err != nil {
				return err
			}
			d, err := v.fn()
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			*v.into = append(*v.into, d)
			fmt.Fprintf(out, "  round %d  %-12s %8.3f s\n", i+1, v.name, d.Seconds())
		}
	}
	mb, mf := median(bareT), median(fixT)
	fmt.Fprintf(out, "\nmedian of %d, %d rows changed, store %s:\n", rounds, rows, storeKind)
	fmt.Fprintf(out, "  bare UPDATE + commit                          %8.3f s\n", mb.Seconds())
	fmt.Fprintf(out, "  guarded fix (lock, check, images, update)     %8.3f s   ratio %.2fx (target <= 3x)\n", mf.Seconds(), mf.Seconds()/mb.Seconds())
	fmt.Fprintf(out, "  (plan: the read-only preview, before review)  %8.3f s\n", median(planTimes).Seconds())
	if mf.Seconds()/mb.Seconds() > 3 {
		fmt.Fprintln(out, "RESULT: FAIL (ratio above 3x)")
	} else {
		fmt.Fprintln(out, "RESULT: PASS")
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
