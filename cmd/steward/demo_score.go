package main

import (
	"context"
	"fmt"
	"io"

	"github.com/stewardhq/steward/internal/readiness"
)

// demoScore evaluates the readiness scorecard of the demo services from the
// evidence the demo just produced, stores it in the history and prints it.
func demoScore(ctx context.Context, r *running, out io.Writer) error {
	a := r.App
	card, err := newEvaluator(a, nil).Evaluate(ctx, "")
	if err != nil {
		return err
	}
	if err := readiness.Record(ctx, a.store, card); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nReadiness scorecard (steward score; steward score --output md for a pull request):")
	printScorecardTable(out, card)
	return nil
}
