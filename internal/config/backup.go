package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/robfig/cron/v3"
)

// Objectives are a service's recovery objectives.
type Objectives struct {
	RTO string `yaml:"rto" doc:"Recovery time objective: the longest a restore may take, like 30m."`
	RPO string `yaml:"rpo" doc:"Recovery point objective: the most data (as time) a restore may lose, like 24h."`
}

// Backup is a backup of one of the service's databases.
type Backup struct {
	Name             string    `yaml:"name" required:"true" pattern:"name" doc:"Backup name, unique within the service."`
	Database         string    `yaml:"database" required:"true" doc:"Name of the service's database that is backed up."`
	Method           string    `yaml:"method" required:"true" enum:"pg_dump,mysqldump,sqlite,pgbackrest,command" doc:"pg_dump, mysqldump and sqlite are run by Steward; pgbackrest and command are read from an existing tool."`
	Schedule         string    `yaml:"schedule" doc:"When Steward runs the backup: a 5-field cron expression or @daily-style descriptor. Empty: only on demand."`
	Repository       string    `yaml:"repository" doc:"Where Steward stores the backups it takes: a gocloud.dev/blob URL (file:///var/backups/shop, s3://bucket/prefix, gs://…, azblob://…). A relative file path is resolved against the config file."`
	Format           string    `yaml:"format" default:"custom" enum:"custom,directory" doc:"pg_dump: custom (one file) or directory (parallel dump and restore with jobs)."`
	Jobs             int       `yaml:"jobs" default:"2" minimum:"1" maximum:"64" doc:"Parallel jobs for pg_dump directory format and for restores."`
	Freshness        string    `yaml:"freshness" doc:"SQL returning the newest data point, captured in the backup's snapshot (e.g. SELECT max(updated_at) FROM orders); used to measure RPO."`
	Encrypt          Encrypt   `yaml:"encrypt" doc:"Encrypt backups with age."`
	Retention        Retention `yaml:"retention" doc:"Which backups to keep; older ones are deleted after each run."`
	Stanza           string    `yaml:"stanza" doc:"pgbackrest: the stanza name."`
	PgbackrestConfig string    `yaml:"pgbackrest_config" doc:"pgbackrest: path of pgbackrest.conf (default: pgbackrest's own default)."`
	List             string    `yaml:"list" doc:"command: a command printing the available backups as JSON lines {\"id\",\"time\",\"size\"}."`
	Fetch            string    `yaml:"fetch" doc:"command: a command that writes backup $STEWARD_BACKUP_ID into directory $STEWARD_FETCH_DIR in a format the engine restores (a pg_dump custom file, a SQL dump, or a SQLite file)."`
}

// Encrypt configures age encryption of backups.
type Encrypt struct {
	Recipients []string `yaml:"recipients" doc:"age recipients (age1… public keys) backups are encrypted to."`
	Identity   Secret   `yaml:"identity" doc:"age identity (AGE-SECRET-KEY-…) to decrypt, as a secret reference."`
}

// Retention says which backups to keep.
type Retention struct {
	KeepLast int `yaml:"keep_last" default:"7" minimum:"1" doc:"Always keep the newest N backups."`
	Daily    int `yaml:"daily" default:"0" minimum:"0" doc:"Also keep the newest backup of each of the last N days."`
	Weekly   int `yaml:"weekly" default:"0" minimum:"0" doc:"Also keep the newest backup of each of the last N ISO weeks."`
	Monthly  int `yaml:"monthly" default:"0" minimum:"0" doc:"Also keep the newest backup of each of the last N months."`
}

// Drill is a scheduled rehearsal of a restore.
type Drill struct {
	Name      string   `yaml:"name" required:"true" pattern:"name" doc:"Drill name, unique within the service."`
	Backup    string   `yaml:"backup" required:"true" doc:"Name of the service's backup to restore."`
	Schedule  string   `yaml:"schedule" doc:"When to run the drill: cron expression or descriptor. Empty: only on demand."`
	Pick      string   `yaml:"pick" default:"latest" enum:"latest,random" doc:"Which backup to restore: the latest, or a random one within 'within'."`
	Within    string   `yaml:"within" default:"7d" doc:"For pick: random, how far back to choose from."`
	Scratch   Scratch  `yaml:"scratch" doc:"Where the drill restores to."`
	Freshness string   `yaml:"freshness" doc:"SQL run on the restored copy returning its newest data point; RPO is measured from it. Defaults to the backup's freshness query."`
	Verify    []Verify `yaml:"verify" doc:"SQL assertions run on the restored copy."`
	RowCounts string   `yaml:"row_counts" default:"exact" doc:"Compare per-table row counts with the manifest: exact, off, or a tolerance like 1% ."`
	Amcheck   bool     `yaml:"amcheck" default:"false" doc:"PostgreSQL: run pg_amcheck on the restored copy."`
	Timeout   string   `yaml:"timeout" default:"2h" doc:"Longest a single phase may take before the drill fails."`
}

// Scratch is where a drill restores to.
type Scratch struct {
	Kind      string `yaml:"kind" default:"ephemeral" enum:"ephemeral,server,command" doc:"ephemeral: a throwaway server (PostgreSQL via initdb, MariaDB via mariadb-install-db) or SQLite file; server: a scratch database created on url and dropped after; command: hooks that provision and destroy."`
	URL       Secret `yaml:"url" doc:"server: admin URL of the server that hosts scratch databases."`
	Provision string `yaml:"provision" doc:"command: prints the URL of a fresh scratch database on stdout."`
	Destroy   string `yaml:"destroy" doc:"command: destroys the scratch database $STEWARD_SCRATCH_URL."`
}

// Verify is one SQL assertion.
type Verify struct {
	Name   string `yaml:"name" doc:"Short name for reports; defaults to the SQL."`
	SQL    string `yaml:"sql" required:"true" doc:"A query returning one value."`
	Expect string `yaml:"expect" required:"true" doc:"An expression the value must satisfy, with the value as 'value' or a leading operator: \"== 0\", \"> 1000\", \"value != ''\"."`
}

func (l *loader) validateRecovery(cfg *Config, i int) {
	s := cfg.Services[i]
	path := fmt.Sprintf("services[%d]", i)
	for _, o := range []struct{ key, v string }{{"rto", s.Objectives.RTO}, {"rpo", s.Objectives.RPO}} {
		if o.v == "" {
			continue
		}
		if _, err := ParseDuration(o.v); err != nil {
			l.errorf(l.at(path+".objectives."+o.key), "%v", err)
		}
	}
	dbs := map[string]string{}
	var dbNames []string
	for _, d := range s.Databases {
		dbs[d.Name] = d.Engine
		dbNames = append(dbNames, d.Name)
	}
	var backups []string
	first := map[string]int{}
	for j, b := range s.Backups {
		bp := fmt.Sprintf("%s.backups[%d]", path, j)
		if k, dup := first[b.Name]; dup && b.Name != "" {
			l.errorf(l.at(bp+".name"), "duplicate backup %q in service %q (first defined at %s)", b.Name, s.Name, l.at(fmt.Sprintf("%s.backups[%d].name", path, k)))
		} else {
			first[b.Name] = j
			backups = append(backups, b.Name)
		}
		engine, ok := dbs[b.Database]
		if b.Database != "" && !ok {
			l.errorf(l.at(bp+".database"), "unknown database %s%s", quoteShort(b.Database), knownHint(b.Database, dbNames, "databases"))
		}
		want := map[string]string{"pg_dump": "postgres", "pgbackrest": "postgres", "mysqldump": "mysql", "sqlite": "sqlite"}[b.Method]
		if ok && want != "" && engine != want {
			l.errorf(l.at(bp+".method"), "method %s backs up %s databases, but %q is %s", b.Method, want, b.Database, engine)
		}
		switch b.Method {
		case "pg_dump", "mysqldump", "sqlite":
			if b.Repository == "" {
				l.errorf(l.at(bp+".name"), "backup %q needs repository: where Steward stores what it takes (e.g. file:///var/backups/%s)", b.Name, s.Name)
			}
		case "pgbackrest":
			if b.Stanza == "" {
				l.errorf(l.at(bp+".name"), "pgbackrest backup %q needs stanza", b.Name)
			}
		case "command":
			if b.List == "" || b.Fetch == "" {
				l.errorf(l.at(bp+".name"), "command backup %q needs list and fetch commands", b.Name)
			}
		}
		if b.Schedule != "" {
			if _, err := cron.ParseStandard(b.Schedule); err != nil {
				l.errorf(l.at(bp+".schedule"), "invalid schedule %s: %v", quoteShort(b.Schedule), err)
			}
		}
		for k, r := range b.Encrypt.Recipients {
			if !strings.HasPrefix(r, "age1") {
				l.errorf(l.at(fmt.Sprintf("%s.encrypt.recipients[%d]", bp, k)), "invalid age recipient %s: want an age1… public key", quoteShort(r))
			}
		}
		if b.Encrypt.Identity != "" {
			p := l.at(bp + ".encrypt.identity")
			if b.Encrypt.Identity.IsRef() {
				l.checkRef(b.Encrypt.Identity, "encrypt.identity", p)
			} else if !cfg.Steward.AllowInlineSecrets {
				l.errorf(p, "inline secret in encrypt.identity; %s", inlineHint)
			}
		}
	}
	firstDrill := map[string]int{}
	for j, d := range s.Drills {
		dp := fmt.Sprintf("%s.drills[%d]", path, j)
		if k, dup := firstDrill[d.Name]; dup && d.Name != "" {
			l.errorf(l.at(dp+".name"), "duplicate drill %q in service %q (first defined at %s)", d.Name, s.Name, l.at(fmt.Sprintf("%s.drills[%d].name", path, k)))
		} else {
			firstDrill[d.Name] = j
		}
		if d.Backup != "" && !slices.Contains(backups, d.Backup) {
			l.errorf(l.at(dp+".backup"), "unknown backup %s%s", quoteShort(d.Backup), knownHint(d.Backup, backups, "backups"))
		}
		if d.Schedule != "" {
			if _, err := cron.ParseStandard(d.Schedule); err != nil {
				l.errorf(l.at(dp+".schedule"), "invalid schedule %s: %v", quoteShort(d.Schedule), err)
			}
		}
		for _, f := range []struct{ key, v string }{{"within", d.Within}, {"timeout", d.Timeout}} {
			if _, err := ParseDuration(f.v); err != nil {
				l.errorf(l.at(dp+"."+f.key), "%v", err)
			}
		}
		if rc := d.RowCounts; rc != "exact" && rc != "off" {
			if _, err := ParsePercent(rc); err != nil {
				l.errorf(l.at(dp+".row_counts"), "invalid row_counts %s: want exact, off, or a tolerance like 1%%", quoteShort(rc))
			}
		}
		switch d.Scratch.Kind {
		case "server":
			if d.Scratch.URL == "" {
				l.errorf(l.at(dp+".scratch.kind"), "scratch kind server needs url (admin URL of the scratch server)")
			} else if d.Scratch.URL.IsRef() {
				l.checkRef(d.Scratch.URL, "scratch.url", l.at(dp+".scratch.url"))
			}
		case "command":
			if d.Scratch.Provision == "" || d.Scratch.Destroy == "" {
				l.errorf(l.at(dp+".scratch.kind"), "scratch kind command needs provision and destroy commands")
			}
		}
	}
}

// ParsePercent parses a tolerance like "1%" or "0.5%" into a fraction.
func ParsePercent(s string) (float64, error) {
	v, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	if !ok {
		return 0, fmt.Errorf("invalid percentage %q", s)
	}
	var f float64
	if _, err := fmt.Sscanf(v, "%g", &f); err != nil || f < 0 || f > 100 {
		return 0, fmt.Errorf("invalid percentage %q", s)
	}
	return f / 100, nil
}

// Backup returns the service's backup by name.
func (s *Service) Backup(name string) *Backup {
	for i := range s.Backups {
		if s.Backups[i].Name == name {
			return &s.Backups[i]
		}
	}
	return nil
}

// Drill returns the service's drill by name.
func (s *Service) Drill(name string) *Drill {
	for i := range s.Drills {
		if s.Drills[i].Name == name {
			return &s.Drills[i]
		}
	}
	return nil
}

// Database returns the service's database by name.
func (s *Service) Database(name string) *Database {
	for i := range s.Databases {
		if s.Databases[i].Name == name {
			return &s.Databases[i]
		}
	}
	return nil
}
