// Package backup owns the backups Steward takes and the ones it only reads.
//
// Steward runs pg_dump, mysqldump and SQLite backups through the dbx engines
// and stores them in a repository (a gocloud.dev/blob bucket: file://, s3://,
// gs://, azblob://), one folder per backup holding its objects and, written
// last, a manifest.json: a backup without a manifest does not exist. Objects
// are optionally encrypted with age; every object's SHA-256 is in the
// manifest. Retention, "latest" and staleness are decided from manifest
// times, never from file times. pgBackRest stanzas and user commands are
// read (listed and fetched), not run.
package backup
