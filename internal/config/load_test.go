package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFiles writes files (path -> content) under a new temp dir and
// returns the dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustLoad(t *testing.T, path string, opts LoadOptions) *Config {
	t.Helper()
	cfg, err := Load(path, opts)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", path, err)
	}
	return cfg
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"steward.yaml": "services:\n  - name: shop\n    contacts: {oncall: shop on-call}\n"})
	cfg := mustLoad(t, filepath.Join(dir, "steward.yaml"), LoadOptions{})
	tests := []struct{ name, got, want string }{
		{"path", cfg.Path, filepath.Join(dir, "steward.yaml")},
		{"listen", cfg.Steward.Listen, "127.0.0.1:8080"},
		{"data_dir", cfg.Steward.DataDir, filepath.Join(dir, "steward-data")},
		{"store", cfg.Steward.Store, "sqlite://" + filepath.ToSlash(filepath.Join(dir, "steward-data", "steward.db"))},
		{"StoreURL", cfg.StoreURL(), cfg.Steward.Store},
		{"origin", cfg.Steward.Audit.Origin, "steward.local/audit"},
		{"contact shorthand", cfg.Services[0].Contacts.Oncall.Name, "shop on-call"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if s := cfg.Service("shop"); s == nil || s.Tier != 3 {
		t.Errorf(`Service("shop") = %+v, want tier 3 by default`, s)
	}
	if s := cfg.Service("nope"); s != nil {
		t.Errorf(`Service("nope") = %+v, want nil`, s)
	}
}

func TestStoreURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, store, want string
	}{
		{"relative sqlite", "sqlite://state/steward.db", "sqlite://{dir}/state/steward.db"},
		{"absolute sqlite", "sqlite:///var/lib/steward/s.db", "sqlite:///var/lib/steward/s.db"},
		{"postgres", "postgres://steward@db.internal/steward?sslmode=require", "postgres://steward@db.internal/steward?sslmode=require"},
		{"reference", "env:STEWARD_STORE_URL", "env:STEWARD_STORE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, map[string]string{"steward.yaml": "steward:\n  store: " + tt.store + "\n"})
			cfg := mustLoad(t, filepath.Join(dir, "steward.yaml"), LoadOptions{})
			want := strings.ReplaceAll(tt.want, "{dir}", filepath.ToSlash(dir))
			if got := cfg.StoreURL(); got != want {
				t.Errorf("StoreURL() = %q, want %q", got, want)
			}
		})
	}
	if got := (&Config{Steward: Steward{DataDir: "/d"}}).StoreURL(); got != "sqlite:///d/steward.db" {
		t.Errorf("StoreURL of a hand-made config = %q", got)
	}
}

func TestIncludes(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"steward.yaml": `include: [teams/*.yaml, teams/a.yaml, conf.d/*.yaml]
services:
  - name: main
`,
		"teams/a.yaml": `include: [../shared/roles.yaml]
services:
  - name: a
    databases:
      - {name: db, engine: postgres, url: file:secrets/a-url}
`,
		"teams/b.yaml": `include: [../shared/roles.yaml]
users: [{name: bob, roles: [dba]}]
services: [{name: b}]
`,
		"shared/roles.yaml": "roles: [{name: dba}]\n",
	})
	cfg := mustLoad(t, filepath.Join(dir, "steward.yaml"), LoadOptions{})
	var names []string
	for _, s := range cfg.Services {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "main,a,b" {
		t.Errorf("services = %s, want main,a,b (own entries first, then includes in order)", got)
	}
	if len(cfg.Roles) != 1 {
		t.Errorf("roles = %+v, want dba once (a file included twice is loaded once)", cfg.Roles)
	}
	// A relative file: reference is resolved against its own file's directory.
	want := Secret("file:" + filepath.Join(dir, "teams", "secrets", "a-url"))
	if got := cfg.Service("a").Databases[0].URL; got != want {
		t.Errorf("url = %q, want %q", got, want)
	}
}

func TestResolveSecrets(t *testing.T) {
	// Not parallel: uses t.Setenv.
	dir := writeFiles(t, map[string]string{
		"db-url":  "postgres://shop:s3cret@db/shop\n",
		"bad-url": "mysql://nope@db/shop\n",
		"steward.yaml": `services:
  - name: shop
    databases:
      - {name: main, engine: postgres, url: env:STEWARD_TEST_SHOP_URL, replica_url: file:db-url}
`,
		"bad.yaml": `services:
  - name: shop
    databases:
      - {name: main, engine: postgres, url: file:bad-url}
`,
	})
	t.Setenv("STEWARD_TEST_SHOP_URL", "postgres://shop:pw@primary/shop")
	cfg := mustLoad(t, filepath.Join(dir, "steward.yaml"), LoadOptions{ResolveSecrets: true})
	db := cfg.Service("shop").Databases[0]
	if got, err := db.ReplicaURL.Resolve(); err != nil || got != "postgres://shop:s3cret@db/shop" {
		t.Errorf("ReplicaURL.Resolve() = %q, %v", got, err)
	}
	if db.URL != "env:STEWARD_TEST_SHOP_URL" {
		t.Errorf("URL = %q, want the reference kept", db.URL)
	}
	_, err := Load(filepath.Join(dir, "bad.yaml"), LoadOptions{ResolveSecrets: true})
	if err == nil || strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "url (from file:") {
		t.Errorf("Load(bad.yaml) error = %v, want a shape error that does not echo the secret", err)
	}
}

func TestSecret(t *testing.T) {
	t.Setenv("STEWARD_TEST_SECRET", "from-env")
	t.Setenv("STEWARD_TEST_EMPTY", "")
	dir := writeFiles(t, map[string]string{"key": "from-file\r\n", "empty": "\n"})
	tests := []struct {
		s       Secret
		ref     bool
		want    string
		wantErr string
	}{
		{"env:STEWARD_TEST_SECRET", true, "from-env", ""},
		{"env:STEWARD_TEST_NEVER_SET_X", true, "", "env var STEWARD_TEST_NEVER_SET_X is not set"},
		{"env:STEWARD_TEST_EMPTY", true, "", "env var STEWARD_TEST_EMPTY is empty"},
		{Secret("file:" + filepath.Join(dir, "key")), true, "from-file", ""},
		{Secret("file:" + filepath.Join(dir, "empty")), true, "", "is empty"},
		{Secret("file:" + filepath.Join(dir, "missing")), true, "", "read secret file " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"file:", true, "", "empty path"},
		{"literal", false, "literal", ""},
	}
	for _, tt := range tests {
		if got := tt.s.IsRef(); got != tt.ref {
			t.Errorf("%q.IsRef() = %v, want %v", tt.s, got, tt.ref)
		}
		got, err := tt.s.Resolve()
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("%q.Resolve() = %q, %v; want %q", tt.s, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%q.Resolve() error = %v, want it to contain %q", tt.s, err, tt.wantErr)
		}
	}
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		check      func(*Config) bool
	}{
		{"empty file", "", func(c *Config) bool { return len(c.Services) == 0 }},
		{"null sections", "steward:\nservices:\n", func(c *Config) bool { return c.Steward.Listen == "127.0.0.1:8080" }},
		{"merge key and x- anchor", "x-base: &b {tier: 1, owners: [t]}\nservices:\n  - <<: *b\n    name: s\n    tier: 2\n",
			func(c *Config) bool { return c.Services[0].Tier == 2 && c.Services[0].Owners[0] == "t" }},
		{"inline secrets allowed", "steward:\n  allow_inline_secrets: true\n  store: postgres://u:p@h/db\nservices:\n  - name: s\n    databases: [{name: m, engine: mysql, url: \"u:p@tcp(h:3306)/db\"}]\n",
			func(c *Config) bool { return c.Steward.Store == "postgres://u:p@h/db" }},
		{"glob matching nothing", "include: [nothing-here/*.yaml]\n", func(c *Config) bool { return true }},
		{"ipv6 listen", "steward: {listen: \"[::1]:9000\"}\n", func(c *Config) bool { return c.Steward.Listen == "[::1]:9000" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg, err := Parse(filepath.Join(dir, "steward.yaml"), []byte(tt.yaml), LoadOptions{})
			if err != nil {
				t.Fatalf("Parse:\n%v", err)
			}
			if !tt.check(cfg) {
				t.Errorf("unexpected config: %+v", cfg)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	_, err := Parse("s.yaml", []byte("services:\n  - name: B\n    tier: 9\nbogus: 1\n"), LoadOptions{})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %T is not Errors", err)
	}
	want := `s.yaml:2:11: invalid service name "B": must start with a lowercase letter or digit and contain only lowercase letters, digits, '-' and '_'
s.yaml:3:11: tier must be between 1 and 4, got 9
s.yaml:4:1: unknown key "bogus" at top level`
	if err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
	var one Error
	if !errors.As(err, &one) || one.Line != 2 || one.Col != 11 {
		t.Errorf("errors.As(Error) = %+v", one)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "read config: no such file or directory") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestBuiltinRoles(t *testing.T) {
	t.Parallel()
	r := BuiltinRoles()
	r[0] = "changed"
	if BuiltinRoles()[0] != "viewer" || !IsBuiltinRole("auditor") || IsBuiltinRole("dba") {
		t.Error("BuiltinRoles must return a copy of viewer, operator, approver, admin, auditor")
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"tire", "tier"}, {"engin", "engine"}, {"servics", "services"}, {"frobnicate", ""}, {"x", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, []string{"name", "tier", "engine", "services", "url"}); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
