package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
)

// pgbackrestBin is the pgBackRest executable, found on PATH.
const pgbackrestBin = "pgbackrest"

// pgbrStanza is the part of `pgbackrest info --output=json` Steward reads.
type pgbrStanza struct {
	Name   string `json:"name"`
	Status struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
	Backup []struct {
		Label     string `json:"label"`
		Type      string `json:"type"`
		Prior     string `json:"prior"`
		Error     bool   `json:"error"`
		Timestamp struct {
			Start int64 `json:"start"`
			Stop  int64 `json:"stop"`
		} `json:"timestamp"`
		Info struct {
			Size       int64 `json:"size"`
			Repository struct {
				Size  int64 `json:"size"`
				Delta int64 `json:"delta"`
			} `json:"repository"`
		} `json:"info"`
		Database struct {
			ID int `json:"id"`
		} `json:"database"`
		Backrest struct {
			Version string `json:"version"`
		} `json:"backrest"`
		Archive struct {
			Start string `json:"start"`
			Stop  string `json:"stop"`
		} `json:"archive"`
	} `json:"backup"`
	DB []struct {
		ID      int    `json:"id"`
		Version string `json:"version"`
	} `json:"db"`
}

// pgbackrestBase is the command prefix selecting the stanza and config.
func pgbackrestBase(b *config.Backup) []string {
	argv := []string{pgbackrestBin, "--stanza=" + b.Stanza}
	if b.PgbackrestConfig != "" {
		argv = append(argv, "--config="+b.PgbackrestConfig)
	}
	return argv
}

// ListPgBackRest lists the backups of the backup's pgBackRest stanza with
// `pgbackrest info --output=json`, oldest first. Each becomes a manifest
// with the label as id, the start and stop times (the stop time is the
// snapshot: the earliest point the backup restores to), the repository
// size, and no objects: pgBackRest restores them itself (see
// PgBackRestRestoreCommand). Service is left for the caller to set.
func ListPgBackRest(ctx context.Context, b *config.Backup) ([]Manifest, error) {
	if b.Stanza == "" {
		return nil, fmt.Errorf("backup %s: pgbackrest needs stanza", b.Name)
	}
	argv := append(pgbackrestBase(b), "--log-level-console=warn", "--log-level-file=off", "info", "--output=json")
	out, err := runCommand(ctx, nil, argv...)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", b.Name, err)
	}
	ms, err := parsePgBackRestInfo(out, b)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %s: %w", b.Name, strings.Join(argv, " "), err)
	}
	cmd := strings.Join(argv, " ")
	for i := range ms {
		ms[i].Commands = []string{cmd}
		ms[i].Dump.Commands = []string{cmd}
	}
	return ms, nil
}

func parsePgBackRestInfo(out []byte, b *config.Backup) ([]Manifest, error) {
	var stanzas []pgbrStanza
	if err := json.Unmarshal(out, &stanzas); err != nil {
		return nil, fmt.Errorf("parse output: %w", err)
	}
	var ms []Manifest
	for _, s := range stanzas {
		if s.Name != b.Stanza {
			continue
		}
		// Code 0 is ok and 2 "no valid backups": both are a list (maybe
		// empty); anything else means the stanza cannot be read.
		if s.Status.Code != 0 && s.Status.Code != 2 {
			return nil, fmt.Errorf("stanza %s: %s (status %d)", s.Name, s.Status.Message, s.Status.Code)
		}
		versions := map[int]string{}
		for _, d := range s.DB {
			versions[d.ID] = d.Version
		}
		for _, bk := range s.Backup {
			start, stop := time.Unix(bk.Timestamp.Start, 0).UTC(), time.Unix(bk.Timestamp.Stop, 0).UTC()
			m := Manifest{
				ID: bk.Label, Backup: b.Name, Database: b.Database, Method: "pgbackrest", Engine: "postgres",
				ServerVersion: versions[bk.Database.ID], ToolVersion: "pgBackRest " + bk.Backrest.Version,
				StartedAt: start, FinishedAt: stop, SnapshotTime: stop, Size: bk.Info.Repository.Size,
			}
			m.Dump = dbx.Dump{
				Engine: "postgres", Format: "pgbackrest-" + bk.Type, SnapshotTime: stop,
				ServerVersion: m.ServerVersion, ToolVersion: m.ToolVersion,
			}
			if bk.Error {
				m.Dump.Format += " (pgbackrest reported page checksum errors)"
			}
			ms = append(ms, m)
		}
		slices.SortFunc(ms, lessManifest)
		return ms, nil
	}
	return nil, fmt.Errorf("stanza %s not found", b.Stanza)
}

// PgBackRestRestoreCommand is the command that restores backup label of
// the backup's stanza into the empty data directory pgdata: recovery
// replays the archived WAL after the backup and then promotes, as a real
// restore does, and archiving is switched off in the restored cluster so
// that it never pushes WAL into the production stanza.
func PgBackRestRestoreCommand(b *config.Backup, label, pgdata string) []string {
	return append(pgbackrestBase(b), "--pg1-path="+pgdata, "--set="+label, "--archive-mode=off", "--log-level-console=warn", "--log-level-file=off", "restore")
}
