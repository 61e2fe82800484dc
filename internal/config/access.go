package config

import (
	"fmt"
	"net"
	"slices"
)

// Access is an access profile: what a just-in-time grant on one of the
// service's databases allows.
type Access struct {
	Database        string   `yaml:"database" required:"true" doc:"Name of the service's database."`
	Profile         string   `yaml:"profile" required:"true" pattern:"name" doc:"Profile name, unique per database, e.g. read-only."`
	Description     string   `yaml:"description" doc:"What the profile is for."`
	Grants          []string `yaml:"grants" doc:"Privileges granted, in the engine's GRANT syntax without GRANT and TO: PostgreSQL \"SELECT ON ALL TABLES IN SCHEMA public\", MySQL \"SELECT ON shop.*\"."`
	Max             string   `yaml:"max" default:"4h" doc:"Longest grant that may be requested."`
	BreakGlass      bool     `yaml:"break_glass" default:"false" doc:"Whether break-glass may issue this profile without approval."`
	BreakGlassMax   string   `yaml:"break_glass_max" default:"1h" doc:"Longest break-glass grant."`
	ConnectionLimit int      `yaml:"connection_limit" default:"2" minimum:"1" maximum:"100" doc:"Most concurrent sessions of one grant."`
	Network         string   `yaml:"network" doc:"MySQL/MariaDB: client network the grant's user may connect from, as a host pattern like 10.0.% (default %)."`
}

// Kit configures the offline emergency kit.
type Kit struct {
	Credentials []KitCredential `yaml:"credentials" doc:"Emergency credentials sealed into the kit (secret references)."`
}

// KitCredential is one credential sealed into the emergency kit.
type KitCredential struct {
	Name        string `yaml:"name" required:"true" pattern:"name" doc:"Name, e.g. shop-superuser."`
	Secret      Secret `yaml:"secret" required:"true" doc:"The credential, as a secret reference (env:NAME, file:PATH)."`
	Description string `yaml:"description" doc:"What it opens and how to use it."`
}

func (l *loader) validateAccess(cfg *Config, i int) {
	s := cfg.Services[i]
	path := fmt.Sprintf("services[%d]", i)
	engines := map[string]string{}
	var dbNames []string
	for _, d := range s.Databases {
		engines[d.Name] = d.Engine
		dbNames = append(dbNames, d.Name)
	}
	seen := map[string]int{}
	for j, a := range s.Access {
		ap := fmt.Sprintf("%s.access[%d]", path, j)
		engine, ok := engines[a.Database]
		if a.Database != "" && !ok {
			l.errorf(l.at(ap+".database"), "unknown database %s%s", quoteShort(a.Database), knownHint(a.Database, dbNames, "databases"))
		}
		key := a.Database + "/" + a.Profile
		if k, dup := seen[key]; dup && a.Profile != "" {
			l.errorf(l.at(ap+".profile"), "duplicate profile %q for database %q (first defined at %s)", a.Profile, a.Database, l.at(fmt.Sprintf("%s.access[%d].profile", path, k)))
		} else {
			seen[key] = j
		}
		if ok && engine == "sqlite" {
			l.errorf(l.at(ap+".database"), "database %q is SQLite, which has no logins to grant; access profiles need postgres or mysql", a.Database)
		}
		if len(a.Grants) == 0 {
			l.errorf(l.at(ap+".profile"), "profile %q grants nothing: list privileges under grants", a.Profile)
		}
		maxD, err1 := ParseDuration(a.Max)
		if err1 != nil {
			l.errorf(l.at(ap+".max"), "%v", err1)
		}
		bgD, err2 := ParseDuration(a.BreakGlassMax)
		if err2 != nil {
			l.errorf(l.at(ap+".break_glass_max"), "%v", err2)
		}
		if a.BreakGlass && err1 == nil && err2 == nil && bgD > maxD {
			l.errorf(l.at(ap+".break_glass_max"), "break_glass_max %s is longer than max %s", a.BreakGlassMax, a.Max)
		}
		if a.Network != "" && engine == "postgres" {
			if _, _, err := net.ParseCIDR(a.Network); err != nil {
				l.errorf(l.at(ap+".network"), "network for postgres must be a CIDR like 10.0.0.0/8 (enforced through pg_hba.conf by the DBA)")
			}
		}
	}
	for j, d := range s.Databases {
		if d.AdminURL != "" && d.AdminURL.IsRef() {
			l.checkRef(d.AdminURL, "admin_url", l.at(fmt.Sprintf("%s.databases[%d].admin_url", path, j)))
		}
		for k, r := range d.StandingAccess {
			if r == "" {
				l.errorf(l.at(fmt.Sprintf("%s.databases[%d].standing_access[%d]", path, j, k)), "standing_access entries must not be empty")
			}
		}
	}
}

func (l *loader) validateKit(cfg *Config) {
	var names []string
	for i, c := range cfg.Kit.Credentials {
		p := fmt.Sprintf("kit.credentials[%d]", i)
		if slices.Contains(names, c.Name) {
			l.errorf(l.at(p+".name"), "duplicate kit credential %q", c.Name)
		}
		names = append(names, c.Name)
		if c.Secret != "" && !c.Secret.IsRef() && !cfg.Steward.AllowInlineSecrets {
			l.errorf(l.at(p+".secret"), "inline secret in kit credential %q; %s", c.Name, inlineHint)
		} else if c.Secret.IsRef() {
			l.checkRef(c.Secret, "secret", l.at(p+".secret"))
		}
	}
}

// AccessProfile returns the service's profile for a database.
func (s *Service) AccessProfile(database, profile string) *Access {
	for i := range s.Access {
		if s.Access[i].Database == database && s.Access[i].Profile == profile {
			return &s.Access[i]
		}
	}
	return nil
}
