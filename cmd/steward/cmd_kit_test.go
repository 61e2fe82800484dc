package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

var kitCLISecrets = map[string]string{
	"shop-superuser": "postgres://postgres:Kit-S3cret-Superuser@db.internal:5432/app",
	"backup-key":     "AGE-SECRET-KEY-1KITTESTBACKUPKEYTHATMUSTNOTLEAKANYWHERE0000000000000000",
}

type kitCLI struct {
	cfg, dir string
	ids      []*age.X25519Identity
	args     []string // kit create flags for the five holders
}

// setupKitCLI is the drill CLI setup plus provider contacts, two kit
// credentials in secret files, a passed drill and five holders.
func setupKitCLI(t *testing.T) *kitCLI {
	t.Helper()
	cfg, dir := setupDrillCLI(t, "10m")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := strings.Replace(string(raw), `escalation: {name: Dana, phone: "+49 30 1234567"}}`,
		`escalation: {name: Dana, phone: "+49 30 1234567"}, provider_noc: {name: Hoster NOC, phone: "+1 555 0199", url: "https://noc.example"}, provider_sirt: {name: Hoster SIRT, email: sirt@example.com}}`, 1)
	c += "kit:\n  credentials:\n"
	for _, name := range []string{"shop-superuser", "backup-key"} {
		p := filepath.Join(dir, name+".secret")
		if err := os.WriteFile(p, []byte(kitCLISecrets[name]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c += fmt.Sprintf("    - {name: %s, secret: \"file:%s\", description: \"the %s credential\"}\n", name, p, name)
	}
	if err := os.WriteFile(cfg, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := steward(t, "-c", cfg, "drill", "run", "app/weekly"); r.code != 0 {
		t.Fatalf("drill run: %+v", r)
	}
	k := &kitCLI{cfg: cfg, dir: dir, args: []string{"--shares", "5", "--threshold", "3"}}
	for i := range 5 {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		k.ids = append(k.ids, id)
		k.args = append(k.args, "--recipient", id.Recipient().String(), "--holder", fmt.Sprintf("h%d", i+1))
	}
	return k
}

// decryptShares decrypts the listed shares (1-based) as their holders
// would and returns the share text files.
func (k *kitCLI) decryptShares(t *testing.T, kitDir string, shares ...int) []string {
	t.Helper()
	var out []string
	for _, n := range shares {
		f, err := os.Open(filepath.Join(kitDir, fmt.Sprintf("share-%d-h%d.age", n, n)))
		if err != nil {
			t.Fatal(err)
		}
		r, err := age.Decrypt(f, k.ids[n-1])
		if err != nil {
			t.Fatal(err)
		}
		text, err := io.ReadAll(r)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(k.dir, fmt.Sprintf("share-%d.txt", n))
		if err := os.WriteFile(p, text, 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestKitCLIRoundTrip(t *testing.T) {
	t.Parallel()
	k := setupKitCLI(t)
	kitDir := filepath.Join(k.dir, "kit")
	r := steward(t, append([]string{"-c", k.cfg, "kit", "create", "--out", kitDir, "-o", "json"}, k.args...)...)
	var created kitCreateResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &created) != nil {
		t.Fatalf("kit create: %+v", r)
	}
	if created.Kit.Threshold != 3 || len(created.Kit.Holders) != 5 || created.Kit.Holders[4].Name != "h5" ||
		strings.Join(created.Runbooks, ",") != "app/weekly" || !created.AuditKey {
		t.Fatalf("created: %+v", created)
	}
	readme, err := os.ReadFile(filepath.Join(kitDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### Restore runbook: app / main", "SELECT count(*) FROM orders", "Hoster NOC", "Provider SIRT",
		"sirt@example.com", "Dana", "app on-call", "the shop-superuser credential", "steward.local/audit+"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md lacks %q", want)
		}
	}

	shares := k.decryptShares(t, kitDir, 1, 2, 3, 4, 5)
	// Any three open it, without a config or a store.
	for _, idx := range [][]int{{0, 2, 3}, {1, 3, 4}, {4, 0, 1}} {
		args := []string{"-c", filepath.Join(k.dir, "absent.yaml"), "kit", "open", kitDir}
		for _, i := range idx {
			args = append(args, shares[i])
		}
		r := steward(t, args...)
		if r.code != 0 {
			t.Fatalf("open %v: %+v", idx, r)
		}
		for _, v := range kitCLISecrets {
			if !strings.Contains(r.stdout, "    "+v+"\n") {
				t.Fatalf("open %v does not print %q:\n%s", idx, v, r.stdout)
			}
		}
		if !strings.Contains(r.stderr, "kit.open not recorded") {
			t.Fatalf("open without config: stderr %q", r.stderr)
		}
	}
	r = steward(t, "-c", k.cfg, "kit", "open", kitDir, shares[0], shares[1], shares[2], "-o", "json")
	var opened kitOpenResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &opened) != nil || !opened.Recorded || len(opened.Credentials) != 2 ||
		opened.Credentials[0].Value != kitCLISecrets["shop-superuser"] {
		t.Fatalf("open json: %+v", r)
	}

	// Two shares are refused, naming who else is needed.
	r = steward(t, "-c", k.cfg, "kit", "open", kitDir, shares[0], shares[4])
	if r.code != exitUsage || !strings.Contains(r.stderr, "too few shares: 2 given, this kit needs 3") || !strings.Contains(r.stderr, "2 (h2)") {
		t.Fatalf("two shares: %+v", r)
	}

	// The drill proves the kit opens without printing a value.
	r = steward(t, "-c", k.cfg, "kit", "drill", kitDir, shares[1], shares[2], shares[4])
	if r.code != 0 || !strings.Contains(r.stdout, "kit opens: 2 credentials recovered (shop-superuser, backup-key)") ||
		!strings.Contains(r.stdout, "drill recorded") {
		t.Fatalf("kit drill: %+v", r)
	}
	for _, v := range kitCLISecrets {
		if strings.Contains(r.stdout+r.stderr, v) {
			t.Fatal("kit drill printed a secret value")
		}
	}

	// The audit log has create, the failed and successful opens and the
	// drill, and no secret value.
	r = steward(t, "-c", k.cfg, "audit", "export", "--since", "1", "--output", "jsonl")
	if r.code != 0 {
		t.Fatalf("audit export: %+v", r)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev struct{ Action, Outcome string }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(ev.Action, "kit.") {
			got = append(got, ev.Action+":"+ev.Outcome)
		}
	}
	if want := "kit.create:ok,kit.open:ok,kit.open:failure,kit.drill:ok"; strings.Join(got, ",") != want {
		t.Fatalf("kit audit events %v, want %s", got, want)
	}
	for _, v := range kitCLISecrets {
		if strings.Contains(r.stdout, v) {
			t.Fatal("the audit log contains a secret value")
		}
	}
	if r := steward(t, "-c", k.cfg, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %+v", r)
	}

	// A tampered bundle fails verification (exit 1).
	bundle := filepath.Join(kitDir, "bundle.age")
	b, _ := os.ReadFile(bundle)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(bundle, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r = steward(t, "-c", k.cfg, "kit", "open", kitDir, shares[0], shares[1], shares[2])
	if r.code != exitFailed || !strings.Contains(r.stderr, "bundle.age has SHA-256") {
		t.Fatalf("tampered bundle: %+v", r)
	}
}

func TestKitCLICreateRefusals(t *testing.T) {
	t.Parallel()
	k := setupKitCLI(t)
	// A missing secret is named, and nothing is written.
	if err := os.Remove(filepath.Join(k.dir, "backup-key.secret")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(k.dir, "kit")
	r := steward(t, append([]string{"-c", k.cfg, "kit", "create", "--out", out}, k.args...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, `kit credential "backup-key"`) || !strings.Contains(r.stderr, "nothing was written") {
		t.Fatalf("missing secret: %+v", r)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("kit dir written despite a missing secret: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(k.dir, ".kit-*")); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	// Flag mistakes are usage errors.
	for _, args := range [][]string{
		{"--shares", "5", "--threshold", "3", "--recipient", k.ids[0].Recipient().String()},
		{"--shares", "2", "--threshold", "3"},
		{"--shares", "2", "--threshold", "1", "--recipient", "age1x", "--recipient", "age1y"},
	} {
		r := steward(t, append([]string{"-c", k.cfg, "kit", "create", "--out", out}, args...)...)
		if r.code != exitUsage {
			t.Errorf("%v: %+v", args, r)
		}
	}
	// A non-empty --out is refused and left alone.
	if err := os.WriteFile(filepath.Join(k.dir, "backup-key.secret"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = steward(t, append([]string{"-c", k.cfg, "kit", "create", "--out", out}, k.args...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("non-empty out: %+v", r)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 {
		t.Fatalf("non-empty out changed: %d entries", len(entries))
	}
}

func TestKitCLIOpenBadInput(t *testing.T) {
	t.Parallel()
	k := setupKitCLI(t)
	kitDir := filepath.Join(k.dir, "kit")
	if r := steward(t, append([]string{"-c", k.cfg, "kit", "create", "--out", kitDir}, k.args...)...); r.code != 0 {
		t.Fatalf("kit create: %+v", r)
	}
	shares := k.decryptShares(t, kitDir, 1, 2, 3)
	absent := filepath.Join(k.dir, "absent.yaml")
	for name, c := range map[string]struct {
		args []string
		code int
		want string
	}{
		"no kit":          {[]string{filepath.Join(k.dir, "nokit"), shares[0], shares[1], shares[2]}, exitUsage, "not a kit directory"},
		"missing share":   {[]string{kitDir, shares[0], filepath.Join(k.dir, "nope.txt"), shares[2]}, exitUsage, "share file"},
		"encrypted share": {[]string{kitDir, shares[0], shares[1], filepath.Join(kitDir, "share-4-h4.age")}, exitUsage, "still encrypted"},
	} {
		r := steward(t, append([]string{"-c", absent, "kit", "open"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: %+v", name, r)
		}
	}
	// A share altered so that it passes its own check does not combine.
	text, _ := os.ReadFile(shares[2])
	lines := strings.Split(string(text), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "data: ") {
			d := []byte(l)
			d[len(d)-6] = map[bool]byte{true: 'B', false: 'A'}[d[len(d)-6] == 'A']
			lines[i] = string(d)
		}
	}
	if err := os.WriteFile(shares[2], []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	r := steward(t, "-c", absent, "kit", "open", kitDir, shares[0], shares[1], shares[2])
	if r.code != exitUsage || !strings.Contains(r.stderr, "fails its check line") {
		t.Fatalf("damaged share: %+v", r)
	}
}
