package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Config is a loaded and validated steward.yaml, with its includes merged in.
type Config struct {
	Include  []string  `yaml:"include" doc:"Files or glob patterns to include, relative to the including file's directory. Included files may define users, roles and services (lists are concatenated) and include further files; cycles are errors. A glob that matches nothing is allowed; a plain path that does not exist is an error."`
	Steward  Steward   `yaml:"steward" doc:"Settings of the Steward server itself. Only allowed in the main file."`
	Users    []User    `yaml:"users" doc:"People who use Steward and the roles they hold."`
	Roles    []Role    `yaml:"roles" doc:"Custom roles (for example dba or sre), in addition to the built-in roles viewer, operator, approver, admin and auditor."`
	Services []Service `yaml:"services" doc:"The services Steward watches over."`
	Policies Policies  `yaml:"policies" doc:"Policies applied to actions. Only allowed in the main file."`
	Notify   Notify    `yaml:"notify" doc:"Notification channels and routing. Only allowed in the main file."`
	Kit      Kit       `yaml:"kit" doc:"The offline emergency kit's contents. Only allowed in the main file."`
	// Readiness configures the readiness scorecard.
	Readiness Readiness `yaml:"readiness" doc:"The readiness scorecard: thresholds per tier, control weights, policy test files and waivers. Only allowed in the main file."`

	// Path is the absolute path of the main config file.
	Path string `yaml:"-"`
	// Files are the absolute paths of every file loaded: the main file
	// and its includes, sorted.
	Files []string `yaml:"-"`
}

// Steward holds the settings of the Steward server.
type Steward struct {
	Store              string     `yaml:"store" doc:"State database: sqlite:///abs/path.db, sqlite://relative.db (relative to the main file's directory), or postgres://... (postgresql:// also accepted). May be a secret reference (env:NAME, file:PATH). A password inline in the URL is an error unless allow_inline_secrets is set. Defaults to sqlite://<data_dir>/steward.db."`
	Listen             string     `yaml:"listen" default:"127.0.0.1:8080" doc:"Address (host:port) the HTTP server listens on."`
	DataDir            string     `yaml:"data_dir" default:"steward-data" doc:"Directory for local state (SQLite store, generated keys). A relative path is resolved against the main config file's directory."`
	Audit              Audit      `yaml:"audit" doc:"Tamper-evident audit log settings."`
	AllowInlineSecrets bool       `yaml:"allow_inline_secrets" default:"false" doc:"Allow secrets written inline in the config (passwords in URLs, a literal signing key). Meant for local experiments only."`
	StatusPage         StatusPage `yaml:"status_page" doc:"The optional public status page (/status, /status.json): read-only, no authentication, chosen services only."`
}

// Audit holds the audit log settings.
type Audit struct {
	SigningKey         Secret   `yaml:"signing_key" doc:"ed25519 key that signs audit checkpoints, as a secret reference. Empty: a key is generated in data_dir."`
	Origin             string   `yaml:"origin" default:"steward.local/audit" doc:"Origin line of signed checkpoints; identifies this log."`
	CheckpointSchedule string   `yaml:"checkpoint_schedule" default:"@hourly" doc:"When the server signs and publishes a checkpoint of the audit log: a 5-field cron expression or a descriptor such as @hourly or @every 15m."`
	Publish            []string `yaml:"publish" doc:"Where signed checkpoints are published outside Steward: file:/path/dir (a relative path is resolved against the main file's directory) or an http:// or https:// webhook URL."`
}

// User is a person who uses Steward.
type User struct {
	Name  string   `yaml:"name" required:"true" pattern:"name" doc:"Unique user name."`
	Email string   `yaml:"email" doc:"Email address."`
	Slack string   `yaml:"slack" doc:"Slack member ID (like U012AB3CD), so approvals from Slack buttons map to this user."`
	Roles []string `yaml:"roles" doc:"Roles held: built-in (viewer, operator, approver, admin, auditor) or defined under roles."`
}

// Role is a custom role.
type Role struct {
	Name        string   `yaml:"name" required:"true" pattern:"name" doc:"Unique role name; must not be the name of a built-in role."`
	Description string   `yaml:"description" doc:"What the role is for."`
	Permissions []string `yaml:"permissions" pattern:"permission" doc:"Permissions granted, such as fix.apply, sql.exec or access.*."`
}

// Service is a service Steward watches over.
type Service struct {
	Name        string            `yaml:"name" required:"true" pattern:"name" doc:"Unique service name."`
	Description string            `yaml:"description" doc:"What the service does."`
	Owners      []string          `yaml:"owners" doc:"Owning teams or people."`
	Tier        int               `yaml:"tier" default:"3" minimum:"1" maximum:"4" doc:"Criticality, 1 (most critical) to 4."`
	Labels      map[string]string `yaml:"labels" doc:"Free-form key/value labels."`
	Contacts    Contacts          `yaml:"contacts" doc:"Who to call."`
	Databases   []Database        `yaml:"databases" doc:"Databases of the service."`
	Objectives  Objectives        `yaml:"objectives" doc:"Recovery objectives that drills are measured against."`
	Backups     []Backup          `yaml:"backups" doc:"Backups of the service's databases."`
	Drills      []Drill           `yaml:"drills" doc:"Restore drills: scheduled rehearsals of restoring a backup."`
	Checks      []Check           `yaml:"checks" doc:"Integrity checks of the service's operative data."`
	Fixes       []Fix             `yaml:"fixes" doc:"Reviewed, parameterized data repairs, applied through the action pipeline."`
	Access      []Access          `yaml:"access" doc:"Just-in-time access profiles for the service's databases."`
	Probes      []Probe           `yaml:"probes" doc:"Synthetic probes that check from the outside that the service works for its users."`
	SLO         SLO               `yaml:"slo" doc:"Service level objectives of the service as a whole: every check of every probe of the service counts. Probes can have their own slo too."`
	Maintenance []Maintenance     `yaml:"maintenance" doc:"Planned maintenance windows: the service's probes open no alerts during them, and their checks are left out of every error budget."`
}

// Contacts lists who to call for a service.
type Contacts struct {
	Oncall       Contact `yaml:"oncall" doc:"On-call rotation or person."`
	Escalation   Contact `yaml:"escalation" doc:"Escalation contact."`
	ProviderNOC  Contact `yaml:"provider_noc" doc:"Network operations center of the hosting provider."`
	ProviderSIRT Contact `yaml:"provider_sirt" doc:"Security incident response team of the hosting provider."`
}

// Contact is a way to reach someone. In YAML it is either a mapping or a
// plain string, which is stored in Name.
type Contact struct {
	Name  string `yaml:"name" doc:"Person, team or rotation."`
	Phone string `yaml:"phone" pattern:"phone" doc:"Phone number."`
	Email string `yaml:"email" doc:"Email address."`
	URL   string `yaml:"url" doc:"Web page (http or https), such as a paging or support portal."`
}

// IsZero reports whether no field of the contact is set.
func (c Contact) IsZero() bool { return c == Contact{} }

// Database is a database of a service.
type Database struct {
	Name       string `yaml:"name" required:"true" pattern:"name" doc:"Database name, unique within the service."`
	Engine     string `yaml:"engine" required:"true" enum:"postgres,mysql,sqlite" doc:"Database engine."`
	URL        Secret `yaml:"url" required:"true" doc:"Connection URL, normally a secret reference. postgres: postgres:// URL; mysql: mysql:// URL or user@tcp(host:3306)/db DSN; sqlite: a path or sqlite:// URL."`
	ReplicaURL Secret `yaml:"replica_url" doc:"Connection URL of a read replica, same forms as url."`
	// AdminURL is what Steward uses to create and drop grant roles.
	AdminURL       Secret   `yaml:"admin_url" doc:"Connection URL with the privileges to create and drop login roles for grants (CREATEROLE, or CREATE USER in MySQL); defaults to url."`
	StandingAccess []string `yaml:"standing_access" doc:"Roles or users allowed to hold privileges permanently (the application, replication, monitoring); everything else found by the standing-privilege scan is a finding."`
	ReassignTo     string   `yaml:"reassign_owned_to" doc:"PostgreSQL: role that receives objects a grant's role created, when the grant is revoked (default: the admin role)."`
}

// builtinRoles are the roles Steward defines itself.
var builtinRoles = []string{"viewer", "operator", "approver", "admin", "auditor"}

// BuiltinRoles returns the names of the built-in roles.
func BuiltinRoles() []string { return slices.Clone(builtinRoles) }

// IsBuiltinRole reports whether name is a built-in role.
func IsBuiltinRole(name string) bool { return slices.Contains(builtinRoles, name) }

// Service returns the service with the given name, or nil.
func (c *Config) Service(name string) *Service {
	for i := range c.Services {
		if c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}

// StoreURL returns the effective store URL: steward.store, or the default
// sqlite://<data_dir>/steward.db. It may be a secret reference; resolve it
// with Secret(c.StoreURL()).Resolve().
func (c *Config) StoreURL() string {
	if c.Steward.Store != "" {
		return c.Steward.Store
	}
	return "sqlite://" + filepath.ToSlash(filepath.Join(c.Steward.DataDir, "steward.db"))
}

// Secret is a secret reference, "env:NAME" or "file:PATH", or, where
// allowed, an inline literal value.
type Secret string

// maxSecretSize bounds what Resolve reads from a secret file.
const maxSecretSize = 64 << 10

// IsRef reports whether s is a reference (env: or file:) rather than a literal.
func (s Secret) IsRef() bool {
	return strings.HasPrefix(string(s), "env:") || strings.HasPrefix(string(s), "file:")
}

// Resolve returns the value s refers to: the environment variable for
// env:NAME, the file content without its trailing newline for file:PATH, or s
// itself for an inline literal.
func (s Secret) Resolve() (string, error) {
	switch {
	case strings.HasPrefix(string(s), "env:"):
		name := strings.TrimPrefix(string(s), "env:")
		if name == "" {
			return "", fmt.Errorf("empty env var name in secret reference %q", string(s))
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("env var %s is not set", name)
		}
		if v == "" {
			return "", fmt.Errorf("env var %s is empty", name)
		}
		return v, nil
	case strings.HasPrefix(string(s), "file:"):
		path := strings.TrimPrefix(string(s), "file:")
		if path == "" {
			return "", fmt.Errorf("empty path in secret reference %q", string(s))
		}
		b, err := readLimited(path, maxSecretSize)
		if err != nil {
			return "", fmt.Errorf("read secret file %s: %w", path, err)
		}
		v := strings.TrimSuffix(string(b), "\n")
		v = strings.TrimSuffix(v, "\r")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", path)
		}
		return v, nil
	default:
		return string(s), nil
	}
}
