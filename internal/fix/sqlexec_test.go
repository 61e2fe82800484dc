package fix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func sqlParams(stmt string) string {
	b, _ := json.Marshal(SQLParams{Service: "shop", Database: "main", Statement: stmt})
	return string(b)
}

func TestGuardedSQL(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		k := NewSQLKind(b.deps)
		before := b.snapshot(t)
		for stmt, want := range map[string]string{
			"UPDATE orders SET status = 'x'":                                "without WHERE",
			"DELETE FROM orders; DELETE FROM orders WHERE id = 1":           "exactly one statement",
			"UPDATE orders SET status = 'x' WHERE id = :id":                 "not declared",
			"UPDATE orders SET status = 'x' WHERE id = 999":                 "changes no rows",
			"UPDATE orders SET note = 'x' WHERE customer = 'cust1' LIMIT 1": "single-table",
		} {
			if _, err := b.newAction(t, k, sqlParams(stmt)); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%q: %v, want %q", stmt, err, want)
			}
		}
		// The dry run changed nothing.
		if after := b.snapshot(t); after != before {
			t.Fatal("dry run changed the table")
		}
		a, err := b.newAction(t, k, sqlParams("UPDATE orders SET status = 'refunded' WHERE customer = 'cust1' AND status = 'paid'"))
		if err != nil {
			t.Fatal(err)
		}
		if a.Plan.Facts["rows_affected"] != 5 || a.Plan.Risk != "medium" {
			t.Fatalf("plan: %+v", a.Plan)
		}
		roundTrip(t, a)
		if _, err := k.Execute(ctx, a); err != nil {
			t.Fatal(err)
		}
		if s := b.status(t, 1); s != "refunded" {
			t.Fatalf("order 1: %s", s)
		}
		// Undoable like a fix.
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
			t.Fatal("undo did not restore the table")
		}

		// Rows change between review and execution: abort, no change.
		a2, err := b.newAction(t, k, sqlParams("DELETE FROM orders WHERE status = 'pending' AND id < 8"))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, a2)
		b.exec(t, "UPDATE orders SET status = 'pending' WHERE id = 1")
		mid := b.snapshot(t)
		if _, err := k.Execute(ctx, a2); !errors.Is(err, ErrDataChanged) {
			t.Fatalf("execute after rows changed: %v", err)
		}
		if b.snapshot(t) != mid {
			t.Fatal("partial change")
		}

		// An INSERT: after-images from RETURNING; undo deletes it.
		a3, err := b.newAction(t, k, sqlParams("INSERT INTO orders (id, customer, status, amount, updated_at) VALUES (100, 'c', 'new', 1, '2024-06-01 00:00:00')"))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, a3)
		if _, err := k.Execute(ctx, a3); err != nil {
			t.Fatal(err)
		}
		u3, err := b.newAction(t, undo, fmt.Sprintf(`{"action_id":%d}`, a3.ID))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, u3)
		if _, err := undo.Execute(ctx, u3); err != nil {
			t.Fatal(err)
		}
		if b.snapshot(t) != mid {
			t.Fatal("undo of the insert left the row")
		}
	})
}
