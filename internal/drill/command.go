package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/dbx"
)

// commandSteps drills a backup of method command: the list command names
// the backups, the fetch command writes the picked one into the work
// directory, and the database's engine restores it into scratch like a
// backup Steward took.
func (r *runner) commandSteps(ctx context.Context) (err error) {
	var m backup.Manifest
	if err := r.phase(ctx, PhasePick, func(ctx context.Context) (int64, error) {
		all, err := backup.ListCommand(ctx, r.b)
		if err != nil {
			return 0, err
		}
		m, err = r.pickListed(all, "the list command")
		return 0, err
	}); err != nil {
		if errors.Is(err, backup.ErrNoBackup) {
			return failf("no backup to restore: %v", err)
		}
		var f *failure
		if errors.As(err, &f) {
			return err
		}
		return failf("list backups: %v", err)
	}
	r.useManifest("list command: "+r.b.List, m)

	work, err := r.workDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	url, teardown, err := r.provision(ctx)
	if teardown != nil {
		defer func() {
			if terr := teardown(); terr != nil && err == nil {
				err = failf("teardown: %v (the scratch resource stays recorded and is removed at the next start)", terr)
			}
		}()
	}
	if err != nil {
		return err
	}

	var files []string
	if err := r.phaseGroup(ctx, PhaseFetch, func(ctx context.Context) ([]dbx.Phase, error) {
		f, ph, err := backup.FetchCommand(ctx, r.b, m.ID, work)
		if err != nil {
			return nil, err
		}
		files = f
		return []dbx.Phase{ph}, nil
	}); err != nil {
		return r.fetchFailure(err)
	}
	dump, err := fetchedDump(r.db.Engine, work, files)
	if err != nil {
		return failf("backup %s fetched by %q: %v", m.ID, r.b.Fetch, err)
	}
	dump.SnapshotTime = m.Time()
	return r.restoreAndVerify(ctx, dump, work, url, m)
}

// pgdmpMagic starts every pg_dump custom-format file.
var pgdmpMagic = []byte("PGDMP")

// fetchedDump describes what a fetch command wrote into work (files are
// absolute paths) so the engine can restore it: a SQLite file; a SQL dump
// for MariaDB/MySQL; a pg_dump custom-format file (it starts with PGDMP)
// or directory-format dump (a folder with toc.dat) for PostgreSQL.
func fetchedDump(engine, work string, files []string) (*dbx.Dump, error) {
	rel, err := relFiles(work, files)
	if err != nil {
		return nil, err
	}
	slices.Sort(rel)
	d := &dbx.Dump{Engine: engine, Files: rel}
	if engine == "postgres" {
		if top, ok := directoryDump(rel); ok {
			d.Format = "directory"
			if _, err := os.Stat(filepath.Join(work, top, "toc.dat")); err != nil {
				return nil, fmt.Errorf("directory-format dump %s: %w", top, err)
			}
			return d, nil
		}
	}
	if len(rel) != 1 {
		return nil, fmt.Errorf("the fetch command wrote %d files (%s); write one file (a pg_dump custom-format file, a SQL dump or a SQLite database) into $STEWARD_FETCH_DIR", len(rel), strings.Join(rel, ", "))
	}
	switch engine {
	case "sqlite":
		d.Format = "sqlite"
	case "postgres":
		custom, err := hasPrefix(filepath.Join(work, filepath.FromSlash(rel[0])), pgdmpMagic)
		if err != nil {
			return nil, err
		}
		if !custom {
			// The PostgreSQL engine restores pg_dump archives only: say so
			// before a restore fails on it.
			return nil, fmt.Errorf("%s is not a pg_dump custom-format file (it does not start with PGDMP); fetch a `pg_dump --format=custom` file or a directory-format dump: Steward restores PostgreSQL with pg_restore, not plain SQL", rel[0])
		}
		d.Format = "custom"
	default:
		d.Format = "sql"
	}
	return d, nil
}

// directoryDump reports whether the files form one pg_dump directory-format
// dump: all under one folder that holds toc.dat.
func directoryDump(rel []string) (string, bool) {
	top, _, nested := strings.Cut(rel[0], "/")
	if !nested {
		return "", false
	}
	hasTOC := false
	for _, f := range rel {
		if !strings.HasPrefix(f, top+"/") {
			return "", false
		}
		if path.Base(f) == "toc.dat" && path.Dir(f) == top {
			hasTOC = true
		}
	}
	return top, hasTOC
}

// hasPrefix reports whether the file at p starts with magic.
func hasPrefix(p string, magic []byte) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(magic))
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	return bytes.Equal(head[:n], magic), nil
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_@%+=:,./-", c)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// shellJoin renders argv as a shell command line.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
