package dbx

import "errors"

// ErrNotEmpty is returned by Restore when the target database already holds
// tables: a restore never merges into or silently overwrites existing data.
// A real restore recreates the target (or provisions a fresh one) first.
var ErrNotEmpty = errors.New("target database is not empty")
