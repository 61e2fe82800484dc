package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/robfig/cron/v3"
)

const inlineHint = "use a secret reference (env:NAME or file:PATH) or set steward.allow_inline_secrets: true"

var (
	envNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
)

// normalize makes relative paths absolute: data_dir, sqlite stores and
// databases and file: publish targets against the main file's directory,
// file: secret references against the directory of the file they are in.
func (l *loader) normalize(cfg *Config) {
	mainDir := filepath.Dir(cfg.Path)
	s := &cfg.Steward
	if s.DataDir != "" && !filepath.IsAbs(s.DataDir) {
		s.DataDir = filepath.Join(mainDir, s.DataDir)
	}
	if s.Store == "" && s.DataDir != "" {
		s.Store = cfg.StoreURL()
	}
	switch {
	case strings.HasPrefix(s.Store, "sqlite://"):
		s.Store = "sqlite://" + absSQLite(mainDir, strings.TrimPrefix(s.Store, "sqlite://"))
	case strings.HasPrefix(s.Store, "file:"):
		s.Store = string(l.absSecret(Secret(s.Store), "steward.store"))
	}
	for i, p := range s.Audit.Publish {
		if dir, ok := strings.CutPrefix(p, "file:"); ok && dir != "" && !filepath.IsAbs(dir) {
			s.Audit.Publish[i] = "file:" + filepath.Join(mainDir, dir)
		}
	}
	s.Audit.SigningKey = l.absSecret(s.Audit.SigningKey, "steward.audit.signing_key")
	for i := range cfg.Kit.Credentials {
		c := &cfg.Kit.Credentials[i]
		c.Secret = l.absSecret(c.Secret, fmt.Sprintf("kit.credentials[%d].secret", i))
	}
	for i := range cfg.Services {
		for j := range cfg.Services[i].Databases {
			db := &cfg.Services[i].Databases[j]
			db.AdminURL = l.absSecret(db.AdminURL, fmt.Sprintf("services[%d].databases[%d].admin_url", i, j))
		}
	}
	for i := range cfg.Notify.Channels {
		c := &cfg.Notify.Channels[i]
		path := fmt.Sprintf("notify.channels[%d]", i)
		c.URL = l.absSecret(c.URL, path+".url")
		c.Secret = l.absSecret(c.Secret, path+".secret")
		c.RoutingKey = l.absSecret(c.RoutingKey, path+".routing_key")
		c.SMTP.Password = l.absSecret(c.SMTP.Password, path+".smtp.password")
	}
	for i := range cfg.Services {
		svc := &cfg.Services[i]
		for j := range svc.Backups {
			b := &svc.Backups[j]
			path := fmt.Sprintf("services[%d].backups[%d]", i, j)
			b.Encrypt.Identity = l.absSecret(b.Encrypt.Identity, path+".encrypt.identity")
			if rest, ok := strings.CutPrefix(b.Repository, "file://"); ok && rest != "" && !strings.HasPrefix(rest, "/") {
				b.Repository = "file://" + filepath.ToSlash(filepath.Join(l.dirOf(path+".repository"), rest))
			} else if b.Repository != "" && !strings.Contains(b.Repository, "://") && !filepath.IsAbs(b.Repository) {
				b.Repository = "file://" + filepath.ToSlash(filepath.Join(l.dirOf(path+".repository"), b.Repository))
			}
		}
		for j := range svc.Drills {
			d := &svc.Drills[j]
			d.Scratch.URL = l.absSecret(d.Scratch.URL, fmt.Sprintf("services[%d].drills[%d].scratch.url", i, j))
		}
	}
	for i := range cfg.Services {
		for j := range cfg.Services[i].Databases {
			db := &cfg.Services[i].Databases[j]
			path := fmt.Sprintf("services[%d].databases[%d]", i, j)
			db.URL = l.absSecret(db.URL, path+".url")
			db.ReplicaURL = l.absSecret(db.ReplicaURL, path+".replica_url")
			if db.Engine == "sqlite" {
				dir := l.dirOf(path)
				for _, u := range []*Secret{&db.URL, &db.ReplicaURL} {
					switch {
					case *u == "" || u.IsRef():
					case strings.HasPrefix(string(*u), "sqlite://"):
						*u = Secret("sqlite://" + absSQLite(dir, strings.TrimPrefix(string(*u), "sqlite://")))
					default:
						*u = Secret(absSQLite(dir, string(*u)))
					}
				}
			}
		}
	}
}

// dirOf returns the absolute directory of the file the value at path is in.
func (l *loader) dirOf(path string) string {
	dir, err := filepath.Abs(filepath.Dir(l.at(path).File))
	if err != nil {
		return filepath.Dir(l.at(path).File)
	}
	return dir
}

// absSecret makes the path of a relative file: reference absolute.
func (l *loader) absSecret(s Secret, path string) Secret {
	p, ok := strings.CutPrefix(string(s), "file:")
	if !ok || p == "" || filepath.IsAbs(p) {
		return s
	}
	return Secret("file:" + filepath.Join(l.dirOf(path), p))
}

// absSQLite makes a SQLite path (with an optional ?query) absolute.
func absSQLite(dir, p string) string {
	path, query, hasQuery := strings.Cut(p, "?")
	if path == "" || path == ":memory:" || filepath.IsAbs(path) {
		return p
	}
	path = filepath.ToSlash(filepath.Join(dir, path))
	if hasQuery {
		return path + "?" + query
	}
	return path
}

// validate checks what the types and tags cannot express.
func (l *loader) validate(cfg *Config) {
	l.validateSteward(&cfg.Steward)

	roles := BuiltinRoles()
	firstRole := map[string]int{}
	for i, r := range cfg.Roles {
		path := fmt.Sprintf("roles[%d]", i)
		if r.Name == "" {
			continue
		}
		if IsBuiltinRole(r.Name) {
			l.errorf(l.at(path+".name"), "role %q is built in and cannot be redefined", r.Name)
			continue
		}
		if j, dup := firstRole[r.Name]; dup {
			l.errorf(l.at(path+".name"), "duplicate role %q (first defined at %s)", r.Name, l.at(fmt.Sprintf("roles[%d].name", j)))
			continue
		}
		firstRole[r.Name] = i
		roles = append(roles, r.Name)
	}

	firstUser := map[string]int{}
	for i, u := range cfg.Users {
		path := fmt.Sprintf("users[%d]", i)
		if u.Name != "" {
			if j, dup := firstUser[u.Name]; dup {
				l.errorf(l.at(path+".name"), "duplicate user %q (first defined at %s)", u.Name, l.at(fmt.Sprintf("users[%d].name", j)))
			} else {
				firstUser[u.Name] = i
			}
		}
		l.checkEmail(u.Email, path+".email")
		for k, r := range u.Roles {
			if !slices.Contains(roles, r) {
				l.errorf(l.at(fmt.Sprintf("%s.roles[%d]", path, k)), "unknown role %s%s", quoteShort(r), knownHint(r, roles, "roles"))
			}
		}
	}

	firstService := map[string]int{}
	var services []string
	for i := range cfg.Services {
		l.validateService(cfg, i, firstService)
		if n := cfg.Services[i].Name; n != "" && !slices.Contains(services, n) {
			services = append(services, n)
		}
	}

	l.validateProbeDeps(cfg)
	l.validatePolicies(cfg, roles, services)
	l.validateNotify(cfg, services)
	l.validateStatusPage(cfg.Steward.StatusPage, services)
	l.validateKit(cfg)
	l.validateReadiness(cfg)
}

// knownHint suggests a close name, or lists the known ones.
func knownHint(s string, known []string, what string) string {
	if h := didYouMean(s, known); h != "" {
		return h
	}
	if len(known) == 0 {
		return fmt.Sprintf(" (no %s are defined)", what)
	}
	return fmt.Sprintf(" (known %s: %s)", what, strings.Join(known, ", "))
}

func (l *loader) validateSteward(s *Steward) {
	if s.DataDir == "" {
		l.errorf(l.at("steward.data_dir"), "data_dir must not be empty")
	}
	l.checkListen(s.Listen)
	l.checkStore(s.Store, s.AllowInlineSecrets)

	a := s.Audit
	if a.Origin == "" || strings.ContainsAny(a.Origin, "\r\n") {
		l.errorf(l.at("steward.audit.origin"), "origin must be a single non-empty line")
	}
	if a.SigningKey != "" {
		p := l.at("steward.audit.signing_key")
		switch {
		case a.SigningKey.IsRef():
			l.checkRef(a.SigningKey, "signing_key", p)
		case !s.AllowInlineSecrets:
			l.errorf(p, "inline secret in steward.audit.signing_key; %s", inlineHint)
		}
	}
	if _, err := cron.ParseStandard(a.CheckpointSchedule); err != nil {
		l.errorf(l.at("steward.audit.checkpoint_schedule"), "invalid checkpoint_schedule %s: %v; want a cron expression like \"0 * * * *\" or @hourly", quoteShort(a.CheckpointSchedule), err)
	}
	for i, t := range a.Publish {
		p := l.at(fmt.Sprintf("steward.audit.publish[%d]", i))
		if dir, ok := strings.CutPrefix(t, "file:"); ok {
			if dir == "" {
				l.errorf(p, "invalid publish target %q: want file:DIR with a directory", t)
			}
			continue
		}
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.errorf(p, "invalid publish target %s: want file:DIR or an http:// or https:// webhook URL", quoteShort(t))
			continue
		}
		if _, has := u.User.Password(); has && !s.AllowInlineSecrets {
			l.errorf(p, "inline password in publish URL; %s", inlineHint)
		}
	}
}

func (l *loader) checkListen(addr string) {
	p := l.at("steward.listen")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		l.errorf(p, "invalid listen address %s: want host:port, like 127.0.0.1:8080", quoteShort(addr))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		l.errorf(p, "invalid listen address %s: port must be a number from 0 to 65535", quoteShort(addr))
	}
	if host != "" && net.ParseIP(host) == nil && !hostnameRE.MatchString(host) {
		l.errorf(p, "invalid listen address %s: %s is not an IP address or host name", quoteShort(addr), quoteShort(host))
	}
}

// checkStore validates the store URL, resolving it first if it is a
// reference and secrets are resolved.
func (l *loader) checkStore(store string, allowInline bool) {
	p := l.at("steward.store")
	if store == "" {
		return // only when data_dir is empty, which is reported
	}
	if Secret(store).IsRef() {
		v, ok := l.checkRef(Secret(store), "store", p)
		if ok && l.opts.ResolveSecrets {
			if msg := storeProblem(v, true, true); msg != "" {
				l.errorf(p, "store (from %s) %s", store, msg)
			}
		}
		return
	}
	if msg := storeProblem(store, allowInline, false); msg != "" {
		l.errorf(p, "%s", msg)
	}
}

// storeProblem describes what is wrong with a store URL, or returns "".
// A secret value is never echoed.
func storeProblem(s string, allowInline, secret bool) string {
	shown := " " + quoteShort(s)
	if secret {
		shown = ""
	}
	switch {
	case strings.HasPrefix(s, "sqlite://"):
		if strings.TrimPrefix(s, "sqlite://") == "" {
			return fmt.Sprintf("invalid store URL%s: sqlite:// needs a path", shown)
		}
		return ""
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Sprintf("invalid store URL%s: not a valid URL", shown)
		}
		if _, has := u.User.Password(); has && !allowInline {
			return "inline password in store URL; " + inlineHint
		}
		return ""
	}
	return fmt.Sprintf("invalid store URL%s: want sqlite://PATH, postgres://... or a secret reference (env:NAME, file:PATH)", shown)
}

// checkRef checks the syntax of a secret reference and, when secrets are
// resolved, resolves it. It returns the resolved value and whether it is
// usable.
func (l *loader) checkRef(s Secret, label string, p pos) (string, bool) {
	kind, rest, _ := strings.Cut(string(s), ":")
	if (kind == "env" && !envNameRE.MatchString(rest)) || rest == "" {
		l.errorf(p, "invalid secret reference %s in %s: want env:NAME or file:PATH", quoteShort(string(s)), label)
		return "", false
	}
	if !l.opts.ResolveSecrets {
		return "", true
	}
	v, err := s.Resolve()
	if err != nil {
		l.errorf(p, "resolve %s: %v", label, err)
		return "", false
	}
	return v, true
}

func (l *loader) checkEmail(s, path string) {
	if s == "" {
		return
	}
	if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
		l.errorf(l.at(path), "invalid email address %s: want a bare address like oncall@example.com", quoteShort(s))
	}
}

func (l *loader) checkWebURL(s, path string) {
	if s == "" {
		return
	}
	if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.errorf(l.at(path), "invalid URL %s: want an http:// or https:// URL", quoteShort(s))
	}
}

func (l *loader) validateService(cfg *Config, i int, first map[string]int) {
	s := cfg.Services[i]
	path := fmt.Sprintf("services[%d]", i)
	if s.Name != "" {
		if j, dup := first[s.Name]; dup {
			l.errorf(l.at(path+".name"), "duplicate service %q (first defined at %s)", s.Name, l.at(fmt.Sprintf("services[%d].name", j)))
		} else {
			first[s.Name] = i
		}
	}
	for k, o := range s.Owners {
		if strings.TrimSpace(o) == "" {
			l.errorf(l.at(fmt.Sprintf("%s.owners[%d]", path, k)), "owners entries must not be empty")
		}
	}
	contacts := []struct {
		key string
		c   Contact
	}{
		{"oncall", s.Contacts.Oncall},
		{"escalation", s.Contacts.Escalation},
		{"provider_noc", s.Contacts.ProviderNOC},
		{"provider_sirt", s.Contacts.ProviderSIRT},
	}
	for _, c := range contacts {
		cpath := path + ".contacts." + c.key
		l.checkEmail(c.c.Email, cpath+".email")
		l.checkWebURL(c.c.URL, cpath+".url")
	}
	firstDB := map[string]int{}
	for j, db := range s.Databases {
		dpath := fmt.Sprintf("%s.databases[%d]", path, j)
		if db.Name != "" {
			if k, dup := firstDB[db.Name]; dup {
				l.errorf(l.at(dpath+".name"), "duplicate database %q in service %q (first defined at %s)", db.Name, s.Name, l.at(fmt.Sprintf("%s.databases[%d].name", path, k)))
			} else {
				firstDB[db.Name] = j
			}
		}
		l.checkDBURL(db.Engine, db.URL, "url", dpath+".url", cfg.Steward.AllowInlineSecrets)
		l.checkDBURL(db.Engine, db.ReplicaURL, "replica_url", dpath+".replica_url", cfg.Steward.AllowInlineSecrets)
	}
	l.validateRecovery(cfg, i)
	l.validateIntegrity(cfg, i)
	l.validateAccess(cfg, i)
	l.validateProbes(cfg, i)
	l.checkSLO(cfg.Services[i].SLO, path+".slo")
	l.checkMaintenance(cfg.Services[i].Maintenance, path)
}

// checkDBURL validates a database URL, resolving it first if it is a
// reference and secrets are resolved.
func (l *loader) checkDBURL(engine string, s Secret, label, path string, allowInline bool) {
	if s == "" {
		return
	}
	p := l.at(path)
	if s.IsRef() {
		v, ok := l.checkRef(s, label, p)
		if ok && l.opts.ResolveSecrets {
			subject := fmt.Sprintf("%s (from %s)", label, string(s))
			if msg := dbURLProblem(engine, subject, v, true); msg != "" {
				l.errorf(p, "%s", msg)
			}
		}
		return
	}
	if msg := dbURLProblem(engine, label+" "+quoteShort(string(s)), string(s), allowInline); msg != "" {
		l.errorf(p, "%s", msg)
	}
}

// dbURLProblem describes what is wrong with connection string s for
// engine, or returns "". subject names s in messages, so that a resolved
// secret is never echoed.
func dbURLProblem(engine, subject, s string, allowInline bool) string {
	const inline = "inline password in database URL; " + inlineHint
	switch engine {
	case "postgres":
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return subject + " is not a postgres:// or postgresql:// URL"
		}
		if _, has := u.User.Password(); has && !allowInline {
			return inline
		}
	case "mysql":
		if strings.HasPrefix(s, "mysql://") {
			u, err := url.Parse(s)
			if err != nil {
				return subject + " is not a valid mysql:// URL"
			}
			if _, has := u.User.Password(); has && !allowInline {
				return inline
			}
			return ""
		}
		slash := strings.LastIndex(s, "/")
		if slash < 0 || strings.Contains(s, "://") {
			return subject + " is not a mysql:// URL or a DSN like user@tcp(host:3306)/db"
		}
		if at := strings.LastIndex(s[:slash], "@"); at >= 0 && strings.Contains(s[:at], ":") && !allowInline {
			return inline
		}
	case "sqlite":
		if strings.Contains(s, "://") && !strings.HasPrefix(s, "sqlite://") {
			return subject + " is not a path or a sqlite:// URL"
		}
		if strings.TrimPrefix(s, "sqlite://") == "" {
			return subject + " has no path"
		}
	}
	return ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
