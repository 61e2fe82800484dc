// Package audit owns Steward's tamper-evident audit log: events hashed over a
// documented canonical encoding and chained to their predecessor (SHA-256),
// a group-commit writer that appends them through internal/store, signed
// checkpoints in the C2SP signed-note format that can be published outside
// Steward, verification of a live store or an offline JSONL export, and the
// export itself.
//
// docs/audit.md specifies the canonical encoding, the checkpoint format and
// the verification rules precisely enough to re-implement them elsewhere.
package audit
