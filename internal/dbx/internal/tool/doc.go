// Package tool runs the external programs the database engines drive
// (pg_dump, pg_restore, mariadb-dump, ...): it finds them, passes secrets
// through the environment only, renders the exact command for runbooks with
// secrets redacted, and turns a failure into an error carrying the tool's own
// message.
package tool
