package fix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/dbx"
)

func TestApplyThenUndoWithConflict(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		apply := NewApplyKind(b.deps)
		// 3 is paid: the select skips it.
		a, err := b.newAction(t, apply, `{"service":"shop","fix":"cancel-orders","params":{"ids":"2,3,4,6"}}`)
		if err != nil {
			t.Fatal(err)
		}
		if a.Plan.Facts["rows_affected"] != 3 {
			t.Fatalf("facts: %v", a.Plan.Facts)
		}
		if keys := mustJSON(a.Plan.Details["keys"]); keys != `["[2]","[4]","[6]"]` {
			t.Fatalf("keys: %v", keys)
		}
		if row := a.Plan.Details["rows"].([]any)[0].(map[string]any); !strings.HasPrefix(fmt.Sprint(row["customer"]), "sha256:") {
			t.Fatalf("customer not masked: %v", row)
		}
		roundTrip(t, a)
		res, err := apply.Execute(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if err := apply.Verify(ctx, a, res); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int{2, 4, 6} {
			if s := b.status(t, id); s != "cancelled" {
				t.Fatalf("order %d: %s", id, s)
			}
		}
		if s := b.status(t, 3); s != "paid" {
			t.Fatalf("order 3: %s", s)
		}
		imgs, err := b.deps.Images(ctx, a.ID)
		if err != nil || len(imgs) != 3 || imgs[0].Pending() || !strings.Contains(imgs[0].Before, `"pending"`) || !strings.Contains(*imgs[0].After, `"cancelled"`) {
			t.Fatalf("images %v: %+v", err, imgs)
		}

		// Someone changes order 4 after the fix: undo leaves it alone.
		b.exec(t, "UPDATE orders SET status = 'shipped' WHERE id = 4")
		undo := NewUndoKind(b.deps)
		u, err := b.newAction(t, undo, fmt.Sprintf(`{"action_id":%d}`, a.ID))
		if err != nil {
			t.Fatal(err)
		}
		if u.Plan.Facts["rows_affected"] != 2 || u.Plan.Facts["conflicts"] != 1 {
			t.Fatalf("undo facts: %v", u.Plan.Facts)
		}
		roundTrip(t, u)
		if _, err := undo.Execute(ctx, u); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[int]string{2: "pending", 4: "shipped", 6: "pending", 3: "paid"} {
			if s := b.status(t, id); s != want {
				t.Fatalf("after undo, order %d: %s, want %s", id, s, want)
			}
		}
		// The undo restored the rows exactly: same text as never touched.
		var note any
		if err := b.db.QueryRow("SELECT note FROM orders WHERE id = 2").Scan(&note); err != nil || note != nil {
			t.Fatalf("note of order 2 after undo: %v %v", note, err)
		}
		// Undoing the undo re-applies the fix to those two rows.
		uu, err := b.newAction(t, undo, fmt.Sprintf(`{"action_id":%d}`, u.ID))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, uu)
		if _, err := undo.Execute(ctx, uu); err != nil {
			t.Fatal(err)
		}
		if s := b.status(t, 6); s != "cancelled" {
			t.Fatalf("after undo of undo, order 6: %s", s)
		}
	})
}

func TestDeleteUndoReinserts(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		before := b.snapshot(t)
		apply := NewApplyKind(b.deps)
		a, err := b.newAction(t, apply, `{"service":"shop","fix":"purge","params":{"id":"5","before":"2025-01-01"}}`)
		if err != nil {
			t.Fatal(err)
		}
		if a.Plan.Risk != "medium" {
			t.Fatalf("a delete is riskier: %s", a.Plan.Risk)
		}
		roundTrip(t, a)
		if _, err := apply.Execute(ctx, a); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := b.db.QueryRow("SELECT count(*) FROM orders").Scan(&n); err != nil || n != ordersRows-1 {
			t.Fatalf("rows after delete: %d %v", n, err)
		}
		undo := NewUndoKind(b.deps)
		u, err := b.newAction(t, undo, fmt.Sprintf(`{"action_id":%d}`, a.ID))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, u)
		if _, err := undo.Execute(ctx, u); err != nil {
			t.Fatal(err)
		}
		if after := b.snapshot(t); after != before {
			t.Fatalf("undo of delete did not restore the table:\n%s\nwant\n%s", after, before)
		}
	})
}

func TestWrongParameterType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ, val, want string
	}{
		{"int", "12abc", `parameter p (int): "12abc" is not an integer`},
		{"uuid", "not-a-uuid", "parameter p (uuid)"},
		{"timestamp", "yesterday", "parameter p (timestamp)"},
		{"[]int", "1,x,3", `parameter p[1] (int): "x" is not an integer`},
		{"[]int", "", "the list is empty"},
	} {
		_, err := ParseParams(map[string]string{"p": tc.typ}, map[string]string{"p": tc.val})
		if !errors.Is(err, ErrParam) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want %q", tc.typ, tc.val, err, tc.want)
		}
	}
	_, err := ParseParams(map[string]string{"id": "int"}, map[string]string{"idd": "1"})
	if err == nil || !strings.Contains(err.Error(), `unknown parameter "idd"`) || !strings.Contains(err.Error(), "parameter id (int) is missing") {
		t.Errorf("unknown and missing: %v", err)
	}
	forEachEngine(t, func(t *testing.T, b *bundle) {
		_, err := b.newAction(t, NewApplyKind(b.deps), `{"service":"shop","fix":"purge","params":{"id":"1; DROP TABLE orders","before":"2025-01-01"}}`)
		if !errors.Is(err, ErrParam) || !strings.Contains(err.Error(), "parameter id (int)") {
			t.Fatalf("plan with a bad int: %v", err)
		}
	})
}

func TestInjectionInParametersIsHarmless(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		before := b.snapshot(t)
		for _, evil := range []string{
			"pending' OR '1'='1",
			"pending'; DROP TABLE orders; --",
			`pending\' OR 1=1 -- `,
			"x\" OR \"1\"=\"1",
			"pending' UNION SELECT id FROM orders --",
		} {
			_, err := b.deps.PlanFix(ctx, ApplyParams{Service: "shop", Fix: "by-status", Params: map[string]string{"status": evil}})
			if !errors.Is(err, ErrNothingToFix) {
				t.Fatalf("%q: %v, want nothing to fix (the value is compared as a string)", evil, err)
			}
		}
		// The real value still works.
		pv, err := b.deps.PlanFix(ctx, ApplyParams{Service: "shop", Fix: "by-status", Params: map[string]string{"status": "pending"}})
		if err != nil || pv.Count != ordersRows/2 {
			t.Fatalf("plan: %v %+v", err, pv)
		}
		if after := b.snapshot(t); after != before {
			t.Fatal("the table changed")
		}
	})
}

func TestPlanRefusals(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		_, err := b.deps.PlanFix(ctx, ApplyParams{Service: "shop", Fix: "cancel-orders", Params: map[string]string{"ids": "1,3,5"}})
		if !errors.Is(err, ErrNothingToFix) {
			t.Fatalf("no rows: %v", err)
		}
		_, err = b.deps.PlanFix(ctx, ApplyParams{Service: "shop", Fix: "cancel-orders", Params: map[string]string{"ids": "2,4,6,8,10,12"}})
		if !errors.Is(err, ErrTooManyRows) || !strings.Contains(err.Error(), "selects 6 rows, more than its max_rows 5") {
			t.Fatalf("too many: %v", err)
		}
		_, err = b.deps.PlanFix(ctx, ApplyParams{Service: "shop", Fix: "nope"})
		if !errors.Is(err, ErrUnknownFix) || !strings.Contains(err.Error(), "cancel-orders") {
			t.Fatalf("unknown fix: %v", err)
		}
	})
}

func TestRowsChangedBeforeApplyAborts(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		apply := NewApplyKind(b.deps)
		a, err := b.newAction(t, apply, `{"service":"shop","fix":"cancel-orders","params":{"ids":"2,3,4"}}`)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, a)
		// Same count, other rows: 2 is paid now, 3 pending.
		b.exec(t, "UPDATE orders SET status = 'paid' WHERE id = 2")
		b.exec(t, "UPDATE orders SET status = 'pending' WHERE id = 3")
		before := b.snapshot(t)
		_, err = apply.Execute(ctx, a)
		if !errors.Is(err, ErrDataChanged) || !strings.Contains(err.Error(), "data changed since review, re-plan") {
			t.Fatalf("execute: %v", err)
		}
		if after := b.snapshot(t); after != before {
			t.Fatal("the table changed")
		}
		if n, _, _ := b.store.CountFixImages(ctx, a.ID); n != 0 {
			t.Fatalf("%d images left by an aborted change", n)
		}
	})
}

func TestAffectedRowMismatchRollsBack(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		before := b.snapshot(t)
		apply := NewApplyKind(b.deps)
		// The select finds order 1; the apply touches every order of cust1.
		a, err := b.newAction(t, apply, `{"service":"shop","fix":"sloppy","params":{"id":"1","customer":"cust1"}}`)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, a)
		_, err = apply.Execute(ctx, a)
		if !errors.Is(err, ErrRowCount) || !strings.Contains(err.Error(), "1 were approved") {
			t.Fatalf("execute: %v", err)
		}
		if after := b.snapshot(t); after != before {
			t.Fatal("the table changed")
		}
	})
}

// TestKilledAtEachStep stops the change at every step, the way a killed
// process would (no clean-up), and checks: before the commit, no change
// on the database; from the moment the images are written (before the
// target commits), the before- and after-images are in the store, pending
// until the commit is confirmed.
func TestKilledAtEachStep(t *testing.T) {
	t.Parallel()
	for _, step := range []string{StepLocked, StepApplied, StepImagesPending, StepCommitted, StepImagesApplied} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			forEachEngine(t, func(t *testing.T, b *bundle) {
				ctx := context.Background()
				before := b.snapshot(t)
				apply := NewApplyKind(b.deps)
				a, err := b.newAction(t, apply, `{"service":"shop","fix":"cancel-orders","params":{"ids":"2,4"}}`)
				if err != nil {
					t.Fatal(err)
				}
				roundTrip(t, a)
				killed := errors.New("killed")
				b.deps.Hook = func(_ context.Context, s string) error {
					if s == step {
						return killed
					}
					return nil
				}
				_, err = apply.Execute(ctx, a)
				if !errors.Is(err, killed) {
					t.Fatalf("execute: %v", err)
				}
				committed := step == StepCommitted || step == StepImagesApplied
				if after := b.snapshot(t); (after == before) == committed {
					t.Fatalf("committed=%v but the table changed=%v", committed, after != before)
				}
				imgs, err := b.deps.Images(ctx, a.ID)
				if err != nil {
					t.Fatal(err)
				}
				switch step {
				case StepLocked, StepApplied:
					// Images are written after the statement, in one store
					// transaction: a kill before it commits leaves none.
					if len(imgs) != 0 {
						t.Fatalf("images before they were written: %d", len(imgs))
					}
				case StepImagesPending, StepCommitted:
					// Both images of both rows are durable, pending: whether
					// the target committed is told by comparing the rows.
					if len(imgs) != 2 || !imgs[0].Pending() || !imgs[1].Pending() || !strings.Contains(imgs[0].Before, `"pending"`) ||
						imgs[0].After == nil || !strings.Contains(*imgs[0].After, `"cancelled"`) {
						t.Fatalf("want 2 pending before- and after-images: %+v", imgs)
					}
					if total, pending, err := b.store.CountFixImages(ctx, a.ID); err != nil || total != 2 || pending != 2 {
						t.Fatalf("count: %d images, %d pending, %v", total, pending, err)
					}
					// An undo refuses a pending set rather than guess.
					b.deps.Hook = nil
					_, err := b.newAction(t, NewUndoKind(b.deps), fmt.Sprintf(`{"action_id":%d}`, a.ID))
					if !errors.Is(err, ErrImagesPending) {
						t.Fatalf("undo of a pending set: %v", err)
					}
				case StepImagesApplied:
					if len(imgs) != 2 || imgs[0].Pending() {
						t.Fatalf("want 2 applied images: %+v", imgs)
					}
				}
			})
		})
	}
}

// TestConnectionLostMidTransaction kills the target connection from
// another session after the statement ran: no partial change.
func TestConnectionLostMidTransaction(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{dbx.Postgres, dbx.MySQL} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			b := setup(t, engine)
			ctx := context.Background()
			before := b.snapshot(t)
			apply := NewApplyKind(b.deps)
			a, err := b.newAction(t, apply, `{"service":"shop","fix":"cancel-orders","params":{"ids":"2,4"}}`)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, a)
			b.deps.Hook = func(ctx context.Context, s string) error {
				if s != StepApplied {
					return nil
				}
				// Another session kills every other connection to the database.
				var q string
				if engine == dbx.Postgres {
					q = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
				} else {
					rows, err := b.db.QueryContext(ctx, "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()")
					if err != nil {
						return err
					}
					var ids []int64
					for rows.Next() {
						var id int64
						_ = rows.Scan(&id)
						ids = append(ids, id)
					}
					rows.Close()
					for _, id := range ids {
						_, _ = b.db.ExecContext(ctx, fmt.Sprintf("KILL %d", id))
					}
					return nil
				}
				conn, err := b.db.Conn(ctx)
				if err != nil {
					return err
				}
				defer conn.Close()
				_, err = conn.ExecContext(ctx, q)
				return err
			}
			_, err = apply.Execute(ctx, a)
			if err == nil {
				t.Fatal("execute succeeded on a killed connection")
			}
			t.Logf("error: %v", err)
			b.db.SetMaxIdleConns(0) // our own pool may hold killed connections too
			b.db.SetMaxIdleConns(2)
			if after := b.snapshot(t); after != before {
				t.Fatal("partial change")
			}
			if n, _, _ := b.store.CountFixImages(ctx, a.ID); n != 0 {
				t.Fatalf("%d images of a rolled-back change", n)
			}
		})
	}
}
