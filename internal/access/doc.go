// Package access owns just-in-time database access: profiles resolved from
// config, grants issued through the action pipeline (kind access.grant) as a
// dedicated login role per grant whose password is handed to the requester
// once and never stored, break-glass grants, and revocation in separate,
// recorded, idempotent steps (block logins, terminate sessions, confirm none
// remain, drop the role, prove a login fails) run at expiry by a sweeper,
// which also finishes what a crash interrupted. The standing-privilege scan
// lives in scan*.go; the emergency kit in internal/kit.
package access
