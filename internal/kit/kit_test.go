package kit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/testenv"
)

type fixture struct {
	dir    string // the kit
	m      *Manifest
	ids    []*age.X25519Identity
	creds  []Credential
	shares []ShareInput // decrypted, in share order
}

var secretValues = []string{
	"postgres://postgres:Sup3r-S3cret-pw@db.internal:5432/shop",
	"AGE-SECRET-KEY-1BACKUPKEYVALUEWHICHMUSTNEVERLEAK0000000000000000000000000",
}

func testSpec(t *testing.T, ids []*age.X25519Identity, k int) Spec {
	t.Helper()
	spec := Spec{Threshold: k, CreatedBy: "local:tester",
		Credentials: []Credential{
			{Name: "shop-superuser", Description: "PostgreSQL superuser DSN for <shop> | primary", Value: secretValues[0]},
			{Name: "backup-key", Description: "age identity that decrypts the backups", Value: secretValues[1]},
		},
		Runbooks: []Runbook{
			{Service: "shop", Drill: "nightly", Markdown: "# Restore runbook: shop / main\n\n## Who to call\n\n```sh\n# not a heading\npg_restore -d shop dump\n```\n"},
			{Service: "shop", Drill: "weekly", Note: "no passed run of drill shop/weekly yet"},
		},
		Contacts: []ServiceContacts{{Service: "shop", Owners: []string{"team-shop"}, Contacts: []Contact{
			{Role: "On-call", Name: "shop-oncall", Phone: "+1 555 0100"},
			{Role: "Provider NOC", Name: "Hoster NOC", Phone: "+1 555 0199", URL: "https://noc.example"},
			{Role: "Provider SIRT", Name: "Hoster SIRT", Email: "sirt@example.com"},
		}}},
		AuditKey: "steward.local/audit+1234abcd+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghij=",
	}
	for i, id := range ids {
		spec.Holders = append(spec.Holders, HolderSpec{Name: fmt.Sprintf("holder%d", i+1), Recipient: id.Recipient().String()})
	}
	return spec
}

func newIdentities(t *testing.T, n int) []*age.X25519Identity {
	t.Helper()
	ids := make([]*age.X25519Identity, n)
	for i := range ids {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// setup creates a 3-of-5 kit and decrypts every share as its holder would.
func setup(t *testing.T) *fixture {
	t.Helper()
	ids := newIdentities(t, 5)
	spec := testSpec(t, ids, 3)
	dir := filepath.Join(t.TempDir(), "kit")
	m, err := Create(dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, m: m, ids: ids, creds: spec.Credentials}
	for i, h := range m.Holders {
		f.shares = append(f.shares, ShareInput{Name: fmt.Sprintf("share-%d.txt", h.Share), Data: decryptFile(t, filepath.Join(dir, h.File), ids[i])})
	}
	return f
}

func decryptFile(t *testing.T, path string, id age.Identity) []byte {
	t.Helper()
	b, err := decryptWith(path, id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decryptWith(path string, id age.Identity) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := age.Decrypt(f, id)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func (f *fixture) pick(idx ...int) []ShareInput {
	var out []ShareInput
	for _, i := range idx {
		out = append(out, f.shares[i])
	}
	return out
}

func TestKitLayout(t *testing.T) {
	t.Parallel()
	f := setup(t)
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := "README.md bundle.age index.html kit.json share-1-holder1.age share-2-holder2.age share-3-holder3.age share-4-holder4.age share-5-holder5.age"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("kit files:\n%s\nwant\n%s", got, want)
	}
	m, err := ReadManifest(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Threshold != 3 || m.Shares != 5 || len(m.Files) != 8 || m.Holders[2].Fingerprint != Fingerprint(f.ids[2].Recipient().String()) {
		t.Fatalf("manifest: %+v", m)
	}
	// No temporary directory is left next to the kit.
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.dir), ".kit-*")); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestKitOpensWithAnyThreeOfFive(t *testing.T) {
	t.Parallel()
	f := setup(t)
	combos := combinations(5, 3)
	if len(combos) != 10 {
		t.Fatalf("%d combinations", len(combos))
	}
	for _, idx := range combos {
		o, err := Open(f.dir, f.pick(idx...))
		if err != nil {
			t.Fatalf("shares %v: %v", idx, err)
		}
		if len(o.Bundle.Credentials) != 2 || o.Bundle.Credentials[0].Value != secretValues[0] || o.Bundle.Credentials[1].Value != secretValues[1] {
			t.Fatalf("shares %v: bundle %+v", idx, o.Bundle)
		}
		if len(o.Used) != 3 || len(o.Disagreeing) != 0 {
			t.Fatalf("shares %v: used %v, disagreeing %v", idx, o.Used, o.Disagreeing)
		}
	}
	for _, idx := range [][]int{{0, 1, 2, 3}, {0, 1, 2, 3, 4}, {4, 2, 0}} {
		if _, err := Open(f.dir, f.pick(idx...)); err != nil {
			t.Fatalf("shares %v: %v", idx, err)
		}
	}
}

func TestKitRefusesTwoShares(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, idx := range combinations(5, 2) {
		_, err := Open(f.dir, f.pick(idx...))
		if !errors.Is(err, ErrTooFewShares) {
			t.Fatalf("shares %v: %v, want ErrTooFewShares", idx, err)
		}
		if !strings.Contains(err.Error(), "2 given, this kit needs 3 of its 5") {
			t.Fatalf("message: %v", err)
		}
	}
	if _, err := Open(f.dir, nil); !errors.Is(err, ErrTooFewShares) {
		t.Fatalf("no shares: %v", err)
	}
	// The same share twice is not two shares.
	_, err := Open(f.dir, f.pick(0, 0, 1))
	if !errors.Is(err, ErrBadShare) || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("duplicate: %v", err)
	}
}

// replaceData swaps the data line of a share text; with fixCheck the check
// line is recomputed so the damage passes the share's own check.
func replaceData(t *testing.T, text []byte, fixCheck bool) []byte {
	t.Helper()
	p, err := ParseShare(text)
	if err != nil {
		t.Fatal(err)
	}
	y := bytes.Clone(p.Share.Y)
	y[5] ^= 0x20
	s := regexp.MustCompile(`(?m)^data: .*$`).ReplaceAllString(string(text), "data: "+b64(y))
	if fixCheck {
		s = regexp.MustCompile(`(?m)^check: .*$`).ReplaceAllString(s, "check: "+shareCheck(p.Kit, p.Share.X, y))
	}
	return []byte(s)
}

func TestKitCorruptedShare(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// Damage that the share's check line catches names the file.
	bad := f.pick(0, 1, 2)
	bad[1].Data = replaceData(t, bad[1].Data, false)
	_, err := Open(f.dir, bad)
	if !errors.Is(err, ErrBadShare) || !strings.Contains(err.Error(), "share-2.txt") || !strings.Contains(err.Error(), "check line") {
		t.Fatalf("damaged share: %v", err)
	}
	// A share altered consistently passes its own check but does not
	// combine into the kit key.
	bad[1].Data = replaceData(t, f.shares[1].Data, true)
	_, err = Open(f.dir, bad)
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("altered share: %v, want ErrWrongKey", err)
	}
	// With a fourth, good share the kit still opens and names the bad one.
	o, err := Open(f.dir, append(bad, f.shares[4]))
	if err != nil {
		t.Fatalf("altered share plus a spare: %v", err)
	}
	if fmt.Sprint(o.Disagreeing) != "[2]" || fmt.Sprint(o.Used) != "[1 3 5]" || o.Bundle.Credentials[0].Value != secretValues[0] {
		t.Fatalf("used %v, disagreeing %v", o.Used, o.Disagreeing)
	}
}

func TestKitRejectsForeignAndEncryptedShares(t *testing.T) {
	t.Parallel()
	f := setup(t)
	other := setup(t)
	_, err := Open(f.dir, append(f.pick(0, 1), other.shares[2]))
	if !errors.Is(err, ErrBadShare) || !strings.Contains(err.Error(), "share of kit "+other.m.ID) {
		t.Fatalf("foreign share: %v", err)
	}
	enc, err := os.ReadFile(filepath.Join(f.dir, f.m.Holders[2].File))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(f.dir, append(f.pick(0, 1), ShareInput{Name: "share-3-holder3.age", Data: enc}))
	if !errors.Is(err, ErrBadShare) || !strings.Contains(err.Error(), "still encrypted") || !strings.Contains(err.Error(), "age -d") {
		t.Fatalf("encrypted share: %v", err)
	}
}

func TestKitTamperedBundle(t *testing.T) {
	t.Parallel()
	f := setup(t)
	path := filepath.Join(f.dir, BundleFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-10] ^= 1
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(f.dir, f.pick(0, 1, 2))
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), BundleFile) {
		t.Fatalf("tampered bundle: %v, want ErrChecksum naming %s", err, BundleFile)
	}
	// Whoever also rewrites kit.json's checksum still meets age's
	// authentication.
	m, err := ReadManifest(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Files[BundleFile] = sha256Hex(data)
	mj, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(f.dir, ManifestFile), mj, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(f.dir, f.pick(0, 1, 2))
	if err == nil || !strings.Contains(err.Error(), "decrypt bundle.age") {
		t.Fatalf("tampered bundle with matching checksum: %v", err)
	}
	// A missing file is a checksum error too.
	if err := os.Remove(filepath.Join(f.dir, ReadmeFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f.dir, f.pick(0, 1, 2)); !errors.Is(err, ErrChecksum) {
		t.Fatalf("missing README: %v", err)
	}
}

func TestKitWrongHolderKeyCannotDecryptShare(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, err := decryptWith(filepath.Join(f.dir, f.m.Holders[0].File), f.ids[1])
	var noMatch *age.NoIdentityMatchError
	if !errors.As(err, &noMatch) {
		t.Fatalf("share 1 with holder 2's key: %v, want age's NoIdentityMatchError", err)
	}
	// Nor can any holder decrypt the bundle directly.
	if _, err := decryptWith(filepath.Join(f.dir, BundleFile), f.ids[0]); !errors.As(err, &noMatch) {
		t.Fatalf("bundle with a holder key: %v", err)
	}
}

func TestKitCreateRefusals(t *testing.T) {
	t.Parallel()
	ids := newIdentities(t, 5)
	parent := t.TempDir()
	t.Run("missing secret", func(t *testing.T) {
		present := filepath.Join(t.TempDir(), "present")
		if err := os.WriteFile(present, []byte("value\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ResolveCredentials(config.Kit{Credentials: []config.KitCredential{
			{Name: "present", Secret: config.Secret("file:" + present)},
			{Name: "shop-superuser", Secret: "env:STEWARD_KIT_TEST_UNSET_A"},
			{Name: "backup-key", Secret: config.Secret("file:" + filepath.Join(parent, "nope"))},
		}})
		if !errors.Is(err, ErrMissingSecret) {
			t.Fatalf("%v, want ErrMissingSecret", err)
		}
		for _, want := range []string{`"shop-superuser"`, "STEWARD_KIT_TEST_UNSET_A", `"backup-key"`, "nothing was written"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %s: %v", want, err)
			}
		}
		if strings.Contains(err.Error(), `"present"`) {
			t.Errorf("error names a credential that resolved: %v", err)
		}
	})
	t.Run("bad specs write nothing", func(t *testing.T) {
		for name, mod := range map[string]func(*Spec){
			"threshold 1":       func(s *Spec) { s.Threshold = 1 },
			"threshold > n":     func(s *Spec) { s.Threshold = 6 },
			"bad recipient":     func(s *Spec) { s.Holders[3].Recipient = "AGE-SECRET-KEY-1NOTAPUBLICKEY" },
			"duplicate holder":  func(s *Spec) { s.Holders[1].Name = s.Holders[0].Name },
			"bad holder name":   func(s *Spec) { s.Holders[1].Name = "../x" },
			"no credentials":    func(s *Spec) { s.Credentials = nil },
			"duplicate secrets": func(s *Spec) { s.Credentials[1].Name = s.Credentials[0].Name },
		} {
			spec := testSpec(t, ids, 3)
			mod(&spec)
			if _, err := Create(filepath.Join(parent, "kit"), spec); err == nil {
				t.Errorf("%s: created", name)
			}
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Fatalf("refused creates left %d entries", len(entries))
		}
	})
	t.Run("non-empty out", func(t *testing.T) {
		dir := filepath.Join(parent, "full")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Create(dir, testSpec(t, ids, 3)); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("%v, want ErrNotEmpty", err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("non-empty dir now has %d entries", len(entries))
		}
		// An empty directory is fine.
		empty := filepath.Join(parent, "empty")
		if err := os.Mkdir(empty, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := Create(empty, testSpec(t, ids, 3)); err != nil {
			t.Fatalf("empty out: %v", err)
		}
	})
}

func TestKitDocuments(t *testing.T) {
	t.Parallel()
	f := setup(t)
	md := readFile(t, filepath.Join(f.dir, ReadmeFile))
	html := readFile(t, filepath.Join(f.dir, HTMLFile))
	for _, want := range []string{
		"What the kit contains", "shop-superuser", "backup-key", "age identity that decrypts the backups",
		"Who holds which share", "holder4", f.m.Holders[3].Fingerprint, f.ids[3].Recipient().String(),
		"Recover the credentials", "sha256sum -c", f.m.Files[BundleFile] + "  bundle.age",
		"age -d -i holder.key share-N-NAME.age", "steward kit open KIT-DIR share-1.txt share-2.txt share-3.txt",
		"Restore runbooks from the last successful drills", "Restore runbook: shop / main", "pg_restore -d shop dump",
		"no passed run of drill shop/weekly yet",
		"Contacts", "Provider NOC", "Hoster NOC", "+1 555 0199", "Provider SIRT", "sirt@example.com", "team-shop",
		"Audit log verifier key", "steward.local/audit+1234abcd+", "steward audit verify --file",
		"steward kit drill KIT-DIR", "180 days",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("README.md lacks %q", want)
		}
		if !strings.Contains(html, htmlEscape(want)) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	// The embedded runbook's headings sit under the kit's; code stays as is.
	if !strings.Contains(md, "\n### Restore runbook: shop / main\n") || !strings.Contains(md, "\n#### Who to call\n") || !strings.Contains(md, "\n# not a heading\n") {
		t.Errorf("runbook headings not shifted:\n%s", md)
	}
	// Config text is escaped in HTML and kept out of Markdown table syntax.
	if strings.Contains(html, "<shop>") || !strings.Contains(html, "&lt;shop&gt; | primary") {
		t.Errorf("index.html does not escape the description")
	}
	if !strings.Contains(md, `<shop> \| primary`) {
		t.Errorf("README.md table cell not escaped")
	}
	// No secret value appears in any file of the kit: only inside the
	// ciphertext, which does not contain it either.
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		data := readFile(t, filepath.Join(f.dir, e.Name()))
		for _, v := range secretValues {
			if strings.Contains(data, v) || strings.Contains(data, v[10:40]) {
				t.Errorf("%s contains a secret value", e.Name())
			}
		}
		if strings.HasSuffix(e.Name(), ".age") && !strings.HasPrefix(data, "age-encryption.org/v1\n") {
			t.Errorf("%s is not age ciphertext", e.Name())
		}
	}
}

func TestKitPlainAgeCLI(t *testing.T) {
	t.Parallel()
	ageBin, err := exec.LookPath("age")
	if err != nil {
		testenv.Skip(t, "the age command is not installed (apt-get install age): %v", err)
	}
	f := setup(t)
	tmp := t.TempDir()
	var inputs []ShareInput
	for _, i := range []int{1, 3, 4} {
		key := filepath.Join(tmp, fmt.Sprintf("holder%d.key", i+1))
		if err := os.WriteFile(key, []byte("# holder key\n"+f.ids[i].String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Exactly the command the README gives the holders.
		out, err := exec.Command(ageBin, "-d", "-i", key, filepath.Join(f.dir, f.m.Holders[i].File)).Output()
		if err != nil {
			t.Fatalf("age -d share %d: %v", i+1, err)
		}
		inputs = append(inputs, ShareInput{Name: fmt.Sprintf("share-%d.txt", i+1), Data: out})
	}
	o, err := Open(f.dir, inputs)
	if err != nil || o.Bundle.Credentials[1].Value != secretValues[1] {
		t.Fatalf("open with shares from age: %v", err)
	}
}

func FuzzParseShare(f *testing.F) {
	m := &Manifest{ID: "0123456789abcdef", Shares: 5, Threshold: 3}
	f.Add(formatShare(m, Holder{Name: "alice"}, Share{X: 2, Y: []byte("AGE-SECRET-KEY-1XYZ")}))
	f.Add([]byte("steward-kit-share: 1\nkit: x\nshare: 0 of 0\nthreshold: 9\ndata: ===\ncheck: zz\n"))
	f.Add([]byte("age-encryption.org/v1\n-> X25519 abc\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseShare(data)
		if err != nil {
			if !errors.Is(err, ErrBadShare) {
				t.Fatalf("error %v is not ErrBadShare", err)
			}
			return
		}
		if p.Share.X < 1 || int(p.Share.X) > p.Shares || p.Threshold < 2 || p.Threshold > p.Shares || len(p.Share.Y) == 0 {
			t.Fatalf("accepted an inconsistent share: %+v", p)
		}
		// What parses re-formats to a share that parses the same.
		again, err := ParseShare(formatShare(&Manifest{ID: p.Kit, Shares: p.Shares, Threshold: p.Threshold}, Holder{Name: p.Holder}, p.Share))
		if err != nil || again.Kit != p.Kit || !bytes.Equal(again.Share.Y, p.Share.Y) || again.Share.X != p.Share.X {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "+", "&#43;").Replace(s)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestKitPostQuantumHolder(t *testing.T) {
	t.Parallel()
	ids := newIdentities(t, 3)
	spec := testSpec(t, ids, 2)
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	spec.Holders[2].Recipient = pq.Recipient().String()
	dir := filepath.Join(t.TempDir(), "kit")
	m, err := Create(dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Open(dir, []ShareInput{
		{Name: "share-1.txt", Data: decryptFile(t, filepath.Join(dir, m.Holders[0].File), ids[0])},
		{Name: "share-3.txt", Data: decryptFile(t, filepath.Join(dir, m.Holders[2].File), pq)},
	})
	if err != nil || o.Bundle.Credentials[0].Value != secretValues[0] {
		t.Fatalf("open with a post-quantum holder's share: %v", err)
	}
}
