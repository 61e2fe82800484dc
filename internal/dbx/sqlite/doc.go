// Package sqlite is the SQLite engine: consistent online dumps with VACUUM
// INTO (safe while the application writes; row counts and freshness are
// read from the copy, so they are the dump's own snapshot), restores that
// copy the file into place atomically, and ephemeral scratch files. It uses
// modernc.org/sqlite (no cgo) and opens databases read-only for queries.
package sqlite
