package access

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// Grant states.
const (
	StateIssuing  = "issuing"  // the role is being created
	StateActive   = "active"   // the role exists and may log in
	StateRevoking = "revoking" // revocation started; retried until proven
	StateRevoked  = "revoked"  // the role is gone and a login was refused
	StateFailed   = "failed"   // issuing failed and nothing was left behind
)

// Sentinel errors.
var (
	ErrUnknownProfile      = errors.New("unknown access profile")
	ErrTooLong             = errors.New("duration over the profile's maximum")
	ErrBreakGlassForbidden = errors.New("profile does not allow break-glass")
	ErrNotRequester        = errors.New("only the requester receives a grant's credentials")
	ErrNotRevocable        = errors.New("grant cannot be revoked")
	ErrUnsupported         = errors.New("engine has no logins to grant")
	ErrRevocationPending   = errors.New("revocation in progress")
)

// Notifier queues an alert; notify.Outbox implements it.
type Notifier interface {
	Enqueue(ctx context.Context, m notify.Message) ([]int64, error)
}

// Deps is what grants, revocation and the sweeper need.
type Deps struct {
	// Config returns the current config (it follows reloads).
	Config   func() *config.Config
	Store    *store.Store
	Audit    auth.AuditFunc
	Notifier Notifier // optional
	Logger   *slog.Logger
	Now      func() time.Time

	// SessionWait bounds how long one revocation attempt waits for the
	// role's sessions to end after terminating them (default 10s).
	SessionWait time.Duration
	// Lease is how long a revocation attempt holds a grant before another
	// sweeper may take it over (default 2m): a crashed attempt resumes then.
	Lease time.Duration
	// Concurrency is how many grants one Sweep revokes at once (default 32).
	Concurrency int
	// AfterStep, when set, runs after each revocation step is recorded; an
	// error ends the attempt there without recording anything more, as if
	// Steward died between steps. For tests.
	AfterStep func(grantID int64, step string) error
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

func (d *Deps) log() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Deps) audit(ctx context.Context, actor, event, target, outcome string, details map[string]any) error {
	if d.Audit == nil {
		return nil
	}
	return d.Audit(ctx, actor, event, target, outcome, details)
}

func (d *Deps) notify(ctx context.Context, m notify.Message) {
	if d.Notifier == nil {
		return
	}
	if _, err := d.Notifier.Enqueue(ctx, m); err != nil {
		d.log().Error("enqueue notification", "event", m.Event, "err", err)
	}
}

// Params are the access.grant action's parameters.
type Params struct {
	Service  string `json:"service"`
	Database string `json:"database"`
	Profile  string `json:"profile"`
	For      string `json:"for"`
	// BreakGlass is set by `steward access break-glass`; the plan then
	// applies the profile's break-glass rules, and execution refuses a
	// mismatch with how the action was really run.
	BreakGlass bool `json:"break_glass,omitempty"`
}

// ParseTarget splits SERVICE/DATABASE/PROFILE.
func ParseTarget(s string) (service, database, profile string, err error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("%w: %q: want SERVICE/DATABASE/PROFILE, e.g. shop/main/read-only", action.ErrBadParams, s)
	}
	return parts[0], parts[1], parts[2], nil
}

// resolved is a profile with everything a grant needs from config.
type resolved struct {
	params   Params
	svc      *config.Service
	db       *config.Database
	prof     *config.Access
	duration time.Duration
	max      time.Duration
	privs    privileges
}

// resolve checks the parameters against the current config: the service,
// database and profile exist, the duration is within the maximum (the
// break-glass maximum for break-glass), and the engine has logins.
func (d *Deps) resolve(p Params) (*resolved, error) {
	cfg := d.Config()
	svc := cfg.Service(p.Service)
	if svc == nil {
		return nil, fmt.Errorf("%w %q", action.ErrUnknownService, p.Service)
	}
	db := svc.Database(p.Database)
	if db == nil {
		var names []string
		for _, x := range svc.Databases {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("%w: service %s has no database %q (databases: %s)", ErrUnknownProfile, p.Service, p.Database, strings.Join(names, ", "))
	}
	prof := svc.AccessProfile(p.Database, p.Profile)
	if prof == nil {
		var names []string
		for _, a := range svc.Access {
			if a.Database == p.Database {
				names = append(names, a.Profile)
			}
		}
		known := "none are configured; add one under services[].access"
		if len(names) > 0 {
			known = "known: " + strings.Join(names, ", ")
		}
		return nil, fmt.Errorf("%w %q for %s/%s (%s)", ErrUnknownProfile, p.Profile, p.Service, p.Database, known)
	}
	if db.Engine != dbx.Postgres && db.Engine != dbx.MySQL {
		return nil, fmt.Errorf("%w: %s/%s is %s", ErrUnsupported, p.Service, p.Database, db.Engine)
	}
	r := &resolved{params: p, svc: svc, db: db, prof: prof}
	if strings.TrimSpace(p.For) == "" {
		return nil, fmt.Errorf("%w: say how long the grant is for, e.g. --for 1h (at most %s)", action.ErrBadParams, prof.Max)
	}
	dur, err := config.ParseDuration(p.For)
	if err != nil || dur <= 0 {
		return nil, fmt.Errorf("%w: --for %q: use a duration like 30m, 1h or 2h30m", action.ErrBadParams, p.For)
	}
	r.duration = dur
	maxName, maxVal := "max", prof.Max
	if p.BreakGlass {
		if !prof.BreakGlass {
			return nil, fmt.Errorf("%w: profile %s of %s/%s sets break_glass: false; request it with `steward access request` and get approvals",
				ErrBreakGlassForbidden, p.Profile, p.Service, p.Database)
		}
		maxName, maxVal = "break_glass_max", prof.BreakGlassMax
	}
	r.max, err = config.ParseDuration(maxVal)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %s: %w", p.Profile, maxName, err)
	}
	if dur > r.max {
		return nil, fmt.Errorf("%w: %s asked, profile %s of %s/%s allows at most %s (%s); ask for %s or less",
			ErrTooLong, dur, p.Profile, p.Service, p.Database, r.max, maxName, r.max)
	}
	r.privs, err = classify(db.Engine, prof.Grants)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", p.Profile, err)
	}
	return r, nil
}

// privileges is what a profile's grants allow, for the plan and the risk.
type privileges struct {
	Statements []string // the profile's grants as configured
	Schemas    []string // PostgreSQL schemas the grants name (USAGE is granted)
	Writes     bool     // anything beyond reading
	DDL        bool     // creating, altering or dropping objects, or ALL
}

var (
	grantRE    = regexp.MustCompile(`(?is)^\s*(.+?)\s+ON\s+(.+?)\s*$`)
	inSchemaRE = regexp.MustCompile(`(?i)\bIN\s+SCHEMA\s+(.+)$`)
	// Privileges that only read.
	readOnly = []string{"SELECT", "USAGE", "CONNECT", "SHOW VIEW", "SHOW DATABASES", "PROCESS"}
	ddlPrivs = []string{"ALL", "ALL PRIVILEGES", "CREATE", "ALTER", "DROP", "TRUNCATE", "REFERENCES", "TRIGGER", "INDEX", "CREATE VIEW",
		"CREATE ROUTINE", "ALTER ROUTINE", "CREATE TEMPORARY TABLES", "EVENT", "GRANT OPTION", "TEMPORARY", "TEMP", "MAINTAIN"}
)

// classify parses "PRIVS ON OBJECTS" statements. They come from the
// config, written by the people who own the database; statement separators
// and role clauses are refused so a grant cannot do more than one GRANT.
func classify(engine string, grants []string) (privileges, error) {
	var p privileges
	for _, g := range grants {
		low := strings.ToLower(g)
		if strings.ContainsAny(g, ";\\") || strings.Contains(low, "--") || strings.Contains(low, "/*") ||
			regexp.MustCompile(`(?i)\b(TO|FROM|WITH|IDENTIFIED)\b`).MatchString(g) {
			return p, fmt.Errorf("%w: grant %q: write it as PRIVILEGES ON OBJECTS, without TO, WITH or ';'", action.ErrBadParams, g)
		}
		m := grantRE.FindStringSubmatch(g)
		if m == nil {
			return p, fmt.Errorf("%w: grant %q: want PRIVILEGES ON OBJECTS, e.g. SELECT ON ALL TABLES IN SCHEMA public", action.ErrBadParams, g)
		}
		p.Statements = append(p.Statements, strings.TrimSpace(g))
		for _, priv := range strings.Split(m[1], ",") {
			// Column lists: SELECT (a, b) ON t.
			priv = strings.ToUpper(strings.Join(strings.Fields(strings.SplitN(priv, "(", 2)[0]), " "))
			if priv == "" {
				continue
			}
			if !slices.Contains(readOnly, priv) {
				p.Writes = true
			}
			if slices.Contains(ddlPrivs, priv) {
				p.DDL = true
			}
		}
		if engine == dbx.Postgres {
			obj := m[2]
			if s := inSchemaRE.FindStringSubmatch(obj); s != nil {
				for _, name := range strings.Split(s[1], ",") {
					addSchema(&p, name)
				}
			} else {
				f := strings.Fields(obj)
				last := f[len(f)-1]
				if i := strings.LastIndex(last, "."); i > 0 {
					addSchema(&p, last[:i])
				}
			}
		}
	}
	return p, nil
}

func addSchema(p *privileges, name string) {
	name = strings.Trim(strings.TrimSpace(name), `"`)
	if name != "" && !slices.Contains(p.Schemas, name) {
		p.Schemas = append(p.Schemas, name)
	}
}

func (p privileges) risk() string {
	if p.Writes || p.DDL {
		return action.RiskHigh
	}
	return action.RiskMedium
}

// newPassword returns 32 random bytes, hex encoded: safe in URLs, SQL
// literals and shells without quoting surprises.
func newPassword() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// credentialHash is what the store keeps of a password.
func credentialHash(password string) string {
	h := sha256.Sum256([]byte(password))
	return "sha256:" + hex.EncodeToString(h[:])
}

func randSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

// roleName is stw_<user>_<grant id>_<random>, at most 32 characters (the
// MySQL limit), lowercase so that PostgreSQL needs no quoting to read it.
func roleName(user string, grantID int64) string {
	u := nonAlnum.ReplaceAllString(strings.ToLower(user), "")
	if len(u) > 8 {
		u = u[:8]
	}
	if u == "" {
		u = "user"
	}
	return fmt.Sprintf("stw_%s_%d_%s", u, grantID, randSuffix())
}

// RolePrefix starts the name of every role Steward creates for a grant; the
// standing-privilege scan uses it with the grants table to recognize live
// grants.
const RolePrefix = "stw_"

// scramVerifier returns the SCRAM-SHA-256 secret of password in the form
// PostgreSQL stores (RFC 5802/7677): the server receives and keeps only
// this, never the password.
func scramVerifier(password string, salt []byte, iter int) string {
	salted, _ := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(stored[:]), b64(serverKey))
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// mysqlNativeHash is the mysql_native_password hash MariaDB keeps:
// "*" + HEX(SHA1(SHA1(password))).
func mysqlNativeHash(password string) string {
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	return "*" + strings.ToUpper(hex.EncodeToString(h2[:]))
}
