package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/robfig/cron/v3"
)

// Check is an integrity check of operative data.
type Check struct {
	Name         string            `yaml:"name" required:"true" pattern:"name" doc:"Check name, unique within the service."`
	Database     string            `yaml:"database" required:"true" doc:"Name of the service's database the check runs on."`
	Type         string            `yaml:"type" required:"true" enum:"not_null,unique,foreign_key,accepted_values,row_predicate,freshness,row_count,sql,reconcile,amcheck,check_table" doc:"What the check verifies."`
	Table        string            `yaml:"table" doc:"Table checked (all types but sql, reconcile, amcheck)."`
	Column       string            `yaml:"column" doc:"Column checked: not_null, foreign_key, accepted_values, freshness."`
	Columns      []string          `yaml:"columns" doc:"unique: the column(s) that must be unique together."`
	References   string            `yaml:"references" doc:"foreign_key: the parent as table.column."`
	Values       []string          `yaml:"values" doc:"accepted_values: the allowed values."`
	Predicate    string            `yaml:"predicate" doc:"row_predicate: an SQL boolean expression every row must satisfy."`
	Where        string            `yaml:"where" doc:"SQL condition scoping the rows checked (e.g. recent rows only)."`
	MaxAge       string            `yaml:"max_age" doc:"freshness: the newest value of column may be at most this old, like 1h."`
	Min          int               `yaml:"min" default:"-1" doc:"row_count: fewest rows allowed (-1: no minimum)."`
	Max          int               `yaml:"max" default:"-1" doc:"row_count: most rows allowed (-1: no maximum)."`
	Deviation    string            `yaml:"deviation" doc:"row_count: largest change from the average of the check's recent runs, like 20%."`
	SQL          string            `yaml:"sql" doc:"sql: a query returning the violating rows."`
	Left         Side              `yaml:"left" doc:"reconcile: the first query."`
	Right        Side              `yaml:"right" doc:"reconcile: the second query; both must return the same aggregate row or the same key set."`
	Mode         string            `yaml:"mode" default:"aggregate" enum:"aggregate,keys" doc:"reconcile: compare one aggregate row, or the sets of keys (first column) the queries return."`
	Severity     string            `yaml:"severity" default:"fail" enum:"warn,fail" doc:"warn or fail."`
	Owner        string            `yaml:"owner" doc:"Who fixes violations."`
	Key          []string          `yaml:"key" doc:"Primary key column(s) reported for violating rows; default id."`
	Sample       int               `yaml:"sample" default:"10" minimum:"0" maximum:"1000" doc:"How many violating rows to keep as a sample."`
	Show         []string          `yaml:"show" doc:"Extra columns kept in samples (besides the key)."`
	Mask         []string          `yaml:"mask" doc:"Sample columns whose values are hashed before they are stored."`
	Remedy       string            `yaml:"remedy" doc:"Name of the fix that repairs a violation."`
	RemedyParams map[string]string `yaml:"remedy_params" doc:"Fix parameter name -> sample column that supplies it (default: the parameter of the same name)."`
	Schedule     string            `yaml:"schedule" doc:"When to run the check: cron expression or descriptor. Empty: with steward check run only."`
	Timeout      string            `yaml:"timeout" default:"60s" doc:"Statement timeout of the check's queries."`
	Replica      bool              `yaml:"replica" default:"false" doc:"Run on the database's replica_url."`
	Chunk        int               `yaml:"chunk" default:"0" minimum:"0" doc:"Scan very large tables in key-ordered chunks of this many rows (0: one scan)."`
}

// Side is one query of a reconcile check.
type Side struct {
	Database string `yaml:"database" doc:"Database name; default: the check's database."`
	SQL      string `yaml:"sql" doc:"Query."`
}

// Fix is a reviewed, parameterized data repair.
type Fix struct {
	Name     string            `yaml:"name" required:"true" pattern:"name" doc:"Fix name, unique within the service."`
	Database string            `yaml:"database" required:"true" doc:"Name of the service's database."`
	Params   map[string]string `yaml:"params" doc:"Parameter name -> type: int, string, uuid, timestamp, or a list like []int."`
	Select   string            `yaml:"select" required:"true" doc:"Query selecting the rows the fix changes, with their key columns; parameters as :name."`
	Apply    string            `yaml:"apply" required:"true" doc:"One UPDATE, DELETE or INSERT statement, with the same :name parameters."`
	Key      []string          `yaml:"key" doc:"Primary key column(s) of the selected rows; default id."`
	MaxRows  int               `yaml:"max_rows" default:"1" minimum:"1" doc:"Most rows one application may change."`
	Mask     []string          `yaml:"mask" doc:"Columns hashed in previews and notifications (before/after images keep real values)."`
}

var paramTypeRE = regexp.MustCompile(`^(\[\])?(int|string|uuid|timestamp)$`)

func (l *loader) validateIntegrity(cfg *Config, i int) {
	s := cfg.Services[i]
	path := fmt.Sprintf("services[%d]", i)
	var dbNames []string
	for _, d := range s.Databases {
		dbNames = append(dbNames, d.Name)
	}
	var fixes []string
	firstFix := map[string]int{}
	for j, f := range s.Fixes {
		fp := fmt.Sprintf("%s.fixes[%d]", path, j)
		if k, dup := firstFix[f.Name]; dup && f.Name != "" {
			l.errorf(l.at(fp+".name"), "duplicate fix %q in service %q (first defined at %s)", f.Name, s.Name, l.at(fmt.Sprintf("%s.fixes[%d].name", path, k)))
		} else {
			firstFix[f.Name] = j
			fixes = append(fixes, f.Name)
		}
		if f.Database != "" && !slices.Contains(dbNames, f.Database) {
			l.errorf(l.at(fp+".database"), "unknown database %s%s", quoteShort(f.Database), knownHint(f.Database, dbNames, "databases"))
		}
		for name, typ := range f.Params {
			if !paramTypeRE.MatchString(typ) {
				l.errorf(l.at(fp+".params."+name), "parameter %s has type %s: want int, string, uuid, timestamp or a list like []int", quoteShort(name), quoteShort(typ))
			}
		}
		verb := strings.ToUpper(strings.Fields(f.Apply + " x")[0])
		if f.Apply != "" && verb != "UPDATE" && verb != "DELETE" && verb != "INSERT" {
			l.errorf(l.at(fp+".apply"), "apply must be one UPDATE, DELETE or INSERT statement, not %s", quoteShort(verb))
		}
	}
	first := map[string]int{}
	for j, c := range s.Checks {
		cp := fmt.Sprintf("%s.checks[%d]", path, j)
		if k, dup := first[c.Name]; dup && c.Name != "" {
			l.errorf(l.at(cp+".name"), "duplicate check %q in service %q (first defined at %s)", c.Name, s.Name, l.at(fmt.Sprintf("%s.checks[%d].name", path, k)))
		} else {
			first[c.Name] = j
		}
		if c.Database != "" && !slices.Contains(dbNames, c.Database) {
			l.errorf(l.at(cp+".database"), "unknown database %s%s", quoteShort(c.Database), knownHint(c.Database, dbNames, "databases"))
		}
		need := func(ok bool, key, what string) {
			if !ok {
				l.errorf(l.at(cp+".type"), "%s check %q needs %s (%s)", c.Type, c.Name, key, what)
			}
		}
		switch c.Type {
		case "not_null", "accepted_values", "freshness":
			need(c.Table != "", "table", "the table checked")
			need(c.Column != "", "column", "the column checked")
		case "unique":
			need(c.Table != "", "table", "the table checked")
			need(len(c.Columns) > 0 || c.Column != "", "columns", "the column(s) that must be unique")
		case "foreign_key":
			need(c.Table != "" && c.Column != "", "table and column", "the child side")
			need(strings.Count(c.References, ".") == 1, "references", "the parent as table.column")
		case "row_predicate":
			need(c.Table != "", "table", "the table checked")
			need(c.Predicate != "", "predicate", "an SQL boolean expression")
		case "row_count", "check_table":
			need(c.Table != "", "table", "the table checked")
		case "sql":
			need(c.SQL != "", "sql", "a query returning violating rows")
		case "reconcile":
			need(c.Left.SQL != "" && c.Right.SQL != "", "left.sql and right.sql", "the two queries to compare")
			for _, side := range []struct{ key, db string }{{"left", c.Left.Database}, {"right", c.Right.Database}} {
				if side.db != "" && !slices.Contains(dbNames, side.db) {
					l.errorf(l.at(cp+"."+side.key+".database"), "unknown database %s%s", quoteShort(side.db), knownHint(side.db, dbNames, "databases"))
				}
			}
		}
		if c.Type == "accepted_values" && len(c.Values) == 0 {
			l.errorf(l.at(cp+".type"), "accepted_values check %q needs values", c.Name)
		}
		if c.MaxAge != "" {
			if _, err := ParseDuration(c.MaxAge); err != nil {
				l.errorf(l.at(cp+".max_age"), "%v", err)
			}
		} else if c.Type == "freshness" {
			l.errorf(l.at(cp+".type"), "freshness check %q needs max_age (like 1h)", c.Name)
		}
		if c.Deviation != "" {
			if _, err := ParsePercent(c.Deviation); err != nil {
				l.errorf(l.at(cp+".deviation"), "invalid deviation %s: want a percentage like 20%%", quoteShort(c.Deviation))
			}
		}
		if _, err := ParseDuration(c.Timeout); err != nil {
			l.errorf(l.at(cp+".timeout"), "%v", err)
		}
		if c.Schedule != "" {
			if _, err := cron.ParseStandard(c.Schedule); err != nil {
				l.errorf(l.at(cp+".schedule"), "invalid schedule %s: %v", quoteShort(c.Schedule), err)
			}
		}
		if c.Remedy != "" && !slices.Contains(fixes, c.Remedy) {
			l.errorf(l.at(cp+".remedy"), "unknown fix %s%s", quoteShort(c.Remedy), knownHint(c.Remedy, fixes, "fixes"))
		}
	}
}

// Check returns the service's check by name.
func (s *Service) Check(name string) *Check {
	for i := range s.Checks {
		if s.Checks[i].Name == name {
			return &s.Checks[i]
		}
	}
	return nil
}

// Fix returns the service's fix by name.
func (s *Service) Fix(name string) *Fix {
	for i := range s.Fixes {
		if s.Fixes[i].Name == name {
			return &s.Fixes[i]
		}
	}
	return nil
}
