package main

import (
	"context"
	"testing"

	"github.com/stewardhq/steward/internal/store"
)

// sqlExec runs a statement directly on a store, bypassing Steward, the way
// an attacker with database access would.
func sqlExec(t *testing.T, url, q string) {
	t.Helper()
	s, err := store.Open(context.Background(), url, store.Options{NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.DB().Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
