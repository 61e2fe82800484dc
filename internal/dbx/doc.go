// Package dbx is Steward's view of the databases it protects: one Engine per
// kind (postgres, mysql, sqlite, in subpackages, registered in dbx/all) that
// can take a consistent dump, restore it, provision scratch databases for
// drills, and answer the queries verification needs. Every engine runs the
// same conformance suite (dbxtest).
package dbx
