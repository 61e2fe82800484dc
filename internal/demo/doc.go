// Package demo builds the demo workspace of `steward demo`: a steward.yaml
// with two services, and SQLite application databases seeded with realistic,
// deterministic data. Later capabilities extend the workspace with theirs.
package demo
