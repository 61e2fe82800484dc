// Package dbxtest is the conformance suite every dbx.Engine runs: it seeds
// a realistic schema through the engine, dumps it (also while the
// application writes), restores into a scratch database, compares row
// counts, freshness and a checksum, destroys the scratch, cleans up a
// deliberately leaked one, and checks the failure cases (unreachable
// source, truncated dump, non-empty target, a query that is not one value).
package dbxtest
