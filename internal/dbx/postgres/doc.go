// Package postgres is the PostgreSQL engine: consistent dumps with pg_dump
// under an exported snapshot (row counts and freshness read in the same
// snapshot), parallel restores with pg_restore split into a data and an
// index/constraint phase, scratch databases (a throwaway initdb cluster or a
// database on a server), leftover cleanup, and pg_amcheck.
package postgres
