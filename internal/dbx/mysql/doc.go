// Package mysql is the MySQL/MariaDB engine: dumps with mariadb-dump (or
// mysqldump) --single-transaction, restores by streaming the dump into the
// mariadb (or mysql) client, scratch databases (a throwaway MariaDB server
// made with mariadb-install-db, or a database on a server) and leftover
// cleanup.
//
// Row counts and freshness are read in a consistent-snapshot transaction
// opened just before the dump, not in the dump's own snapshot: MySQL and
// MariaDB cannot share a snapshot between sessions (there is no
// pg_export_snapshot), so rows committed between the two reads are in the
// dump but not in the counts. Dump.SameSnapshot is false, and the counts are
// a lower bound of what the dump holds.
package mysql
