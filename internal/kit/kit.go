package kit

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/stewardhq/steward/internal/config"
)

// Version is the kit format version written to kit.json and the bundle.
const Version = 1

// File names inside a kit directory.
const (
	ManifestFile = "kit.json"
	BundleFile   = "bundle.age"
	ReadmeFile   = "README.md"
	HTMLFile     = "index.html"
)

// DrillInterval is how often readiness wants the kit drilled.
const DrillInterval = 180 * 24 * time.Hour

// Errors to branch on.
var (
	// ErrNotEmpty: the output directory already has files.
	ErrNotEmpty = errors.New("kit directory is not empty")
	// ErrChecksum: a kit file does not match kit.json (tampered or damaged).
	ErrChecksum = errors.New("kit file does not match its checksum")
	// ErrTooFewShares: fewer distinct shares than the threshold.
	ErrTooFewShares = errors.New("too few shares")
	// ErrBadShare: a share file is not a readable share of this kit.
	ErrBadShare = errors.New("bad share")
	// ErrWrongKey: the shares do not combine into the kit key.
	ErrWrongKey = errors.New("shares do not combine into the kit key")
	// ErrMissingSecret: a kit credential's secret cannot be resolved.
	ErrMissingSecret = errors.New("kit credential secret not available")
)

// Credential is one emergency credential in the sealed bundle.
type Credential struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Value       string `json:"value"`
}

// Bundle is the content of bundle.age.
type Bundle struct {
	Version     int          `json:"version"`
	Kit         string       `json:"kit"`
	CreatedAt   time.Time    `json:"created_at"`
	Credentials []Credential `json:"credentials"`
}

// Names lists the bundle's credential names in order.
func (b *Bundle) Names() []string {
	out := make([]string, len(b.Credentials))
	for i, c := range b.Credentials {
		out[i] = c.Name
	}
	return out
}

// CredentialInfo describes a sealed credential without its value.
type CredentialInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// Holder keeps one share.
type Holder struct {
	Share       int    `json:"share"`
	Name        string `json:"name"`
	Recipient   string `json:"recipient"`
	Fingerprint string `json:"fingerprint"`
	File        string `json:"file"`
}

// Manifest is kit.json: what the kit is and the SHA-256 of every other file
// in it.
type Manifest struct {
	Version   int       `json:"version"`
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	Threshold int       `json:"threshold"`
	Shares    int       `json:"shares"`
	// KitRecipient is the public half of the kit key: the shares must
	// combine into its identity.
	KitRecipient string            `json:"kit_recipient"`
	Holders      []Holder          `json:"holders"`
	Credentials  []CredentialInfo  `json:"credentials"`
	Files        map[string]string `json:"files"` // name → SHA-256, hex
}

// HolderSpec names a share holder and the age recipient their share is
// encrypted to.
type HolderSpec struct {
	Name      string
	Recipient string
}

// Runbook is a restore runbook for the kit: the Markdown from the last
// passed drill, or a note saying why there is none.
type Runbook struct {
	Service  string
	Drill    string
	Markdown string
	Note     string
}

// Contact is one way to reach someone about a service.
type Contact struct {
	Role, Name, Phone, Email, URL string
}

// ServiceContacts is whom to call for one service.
type ServiceContacts struct {
	Service  string
	Owners   []string
	Contacts []Contact
}

// Spec is everything a kit is created from.
type Spec struct {
	Threshold   int
	Holders     []HolderSpec
	Credentials []Credential
	CreatedBy   string
	Runbooks    []Runbook
	Contacts    []ServiceContacts
	// AuditKey is the audit checkpoint verifier key text (audit.pub);
	// AuditKeyNote says why it is missing when it is empty.
	AuditKey     string
	AuditKeyNote string
	// Now defaults to time.Now.
	Now time.Time
}

var holderNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ResolveCredentials resolves every kit credential's secret reference. It
// reports every credential that cannot be resolved at once, by name.
func ResolveCredentials(k config.Kit) ([]Credential, error) {
	var out []Credential
	var errs []error
	for _, c := range k.Credentials {
		v, err := c.Secret.Resolve()
		if err == nil && v == "" {
			err = errors.New("empty value")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("kit credential %q (%s): %w", c.Name, refName(c.Secret), err))
			continue
		}
		out = append(out, Credential{Name: c.Name, Description: c.Description, Value: v})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w; set it and try again (nothing was written)", ErrMissingSecret, errors.Join(errs...))
	}
	return out, nil
}

// refName shows a secret reference without ever showing an inline value.
func refName(s config.Secret) string {
	if s.IsRef() {
		return string(s)
	}
	return "inline value"
}

// Fingerprint is a short, comparable digest of an age recipient, for
// reading over the phone.
func Fingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	h := hex.EncodeToString(sum[:8])
	return "SHA256:" + h[:4] + "-" + h[4:8] + "-" + h[8:12] + "-" + h[12:16]
}

// shareFile is the name of share i's encrypted file.
func shareFile(i int, holder string) string { return fmt.Sprintf("share-%d-%s.age", i, holder) }

// Validate checks the spec without writing anything: threshold, holders
// and their recipients, credentials.
func (s *Spec) Validate() error {
	_, err := s.recipients()
	return err
}

func (s *Spec) recipients() ([]age.Recipient, error) {
	n := len(s.Holders)
	switch {
	case s.Threshold < 2:
		return nil, fmt.Errorf("threshold %d: must be at least 2 (with 1, every share alone opens the kit)", s.Threshold)
	case n < s.Threshold:
		return nil, fmt.Errorf("%d holders is fewer than the threshold %d: the kit could never be opened", n, s.Threshold)
	case n > MaxShares:
		return nil, fmt.Errorf("%d holders: at most %d", n, MaxShares)
	case len(s.Credentials) == 0:
		return nil, errors.New("no credentials to seal: list them under kit.credentials in the config")
	}
	recips := make([]age.Recipient, n)
	seen := map[string]int{}
	for i, h := range s.Holders {
		if !holderNameRE.MatchString(h.Name) {
			return nil, fmt.Errorf("holder %d name %q: use lowercase letters, digits, '.', '_' and '-'", i+1, h.Name)
		}
		if j, dup := seen[h.Name]; dup {
			return nil, fmt.Errorf("holder name %q given for shares %d and %d: names must be unique", h.Name, j, i+1)
		}
		seen[h.Name] = i + 1
		rs, err := age.ParseRecipients(strings.NewReader(h.Recipient))
		if err != nil || len(rs) != 1 {
			if err == nil {
				err = errors.New("want exactly one recipient")
			}
			return nil, fmt.Errorf("recipient of holder %s (share %d): %v; want an age public key like age1…", h.Name, i+1, err)
		}
		recips[i] = rs[0]
	}
	names := map[string]bool{}
	for _, c := range s.Credentials {
		if names[c.Name] {
			return nil, fmt.Errorf("credential %q listed twice", c.Name)
		}
		names[c.Name] = true
	}
	return recips, nil
}

// Create seals spec into a new kit directory at dir: bundle.age (the
// credentials, encrypted to a fresh kit key), one share of the kit key per
// holder encrypted to the holder, the printable runbook (README.md,
// index.html) and kit.json. It writes into a temporary directory next to
// dir and renames it into place, so dir appears complete or not at all; it
// refuses a dir that exists and is not empty.
func Create(dir string, spec Spec) (*Manifest, error) {
	recips, err := spec.recipients()
	if err != nil {
		return nil, err
	}
	if err := checkEmpty(dir); err != nil {
		return nil, err
	}
	now := spec.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	idb := make([]byte, 8)
	if _, err := io.ReadFull(rand.Reader, idb); err != nil {
		return nil, fmt.Errorf("kit id: %w", err)
	}
	key, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("kit key: %w", err)
	}
	m := &Manifest{Version: Version, ID: hex.EncodeToString(idb), CreatedAt: now, CreatedBy: spec.CreatedBy,
		Threshold: spec.Threshold, Shares: len(spec.Holders), KitRecipient: key.Recipient().String(), Files: map[string]string{}}
	for _, c := range spec.Credentials {
		m.Credentials = append(m.Credentials, CredentialInfo{Name: c.Name, Description: c.Description})
	}

	parent := filepath.Dir(filepath.Clean(dir))
	tmp, err := os.MkdirTemp(parent, ".kit-*")
	if err != nil {
		return nil, fmt.Errorf("create kit: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	write := func(name string, data []byte) error {
		sum := sha256.Sum256(data)
		m.Files[name] = hex.EncodeToString(sum[:])
		return writeFileSync(filepath.Join(tmp, name), data)
	}

	bundle, err := json.MarshalIndent(Bundle{Version: Version, Kit: m.ID, CreatedAt: now, Credentials: spec.Credentials}, "", "  ")
	if err != nil {
		return nil, err
	}
	sealed, err := encrypt(bundle, key.Recipient())
	clear(bundle)
	if err != nil {
		return nil, fmt.Errorf("encrypt bundle: %w", err)
	}
	if err := write(BundleFile, sealed); err != nil {
		return nil, err
	}

	secret := []byte(key.String())
	shares, err := Split(secret, len(spec.Holders), spec.Threshold, rand.Reader)
	clear(secret)
	if err != nil {
		return nil, err
	}
	for i, h := range spec.Holders {
		holder := Holder{Share: i + 1, Name: h.Name, Recipient: h.Recipient, Fingerprint: Fingerprint(h.Recipient), File: shareFile(i+1, h.Name)}
		text := formatShare(m, holder, shares[i])
		clear(shares[i].Y)
		enc, err := encrypt(text, recips[i])
		clear(text)
		if err != nil {
			return nil, fmt.Errorf("encrypt share %d to %s: %w", i+1, h.Name, err)
		}
		if err := write(holder.File, enc); err != nil {
			return nil, err
		}
		m.Holders = append(m.Holders, holder)
	}

	doc := newDocument(m, spec)
	md, err := doc.markdown()
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", ReadmeFile, err)
	}
	if err := write(ReadmeFile, md); err != nil {
		return nil, err
	}
	html, err := doc.html()
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", HTMLFile, err)
	}
	if err := write(HTMLFile, html); err != nil {
		return nil, err
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(filepath.Join(tmp, ManifestFile), append(mj, '\n')); err != nil {
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	// An empty dir may stand where the kit goes (checked above): make way.
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create kit: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("create kit: %w", err)
	}
	done = true
	if err := syncDir(parent); err != nil {
		return nil, err
	}
	return m, nil
}

func checkEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("kit directory %s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("%w: %s has %d entries; choose a new directory (a kit is never written over another)", ErrNotEmpty, dir, len(entries))
	}
	return nil
}

func encrypt(plain []byte, r age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ReadManifest reads and checks dir/kit.json.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("not a kit directory: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	switch {
	case m.Version != Version:
		return nil, fmt.Errorf("%s: kit format version %d; this steward reads version %d", ManifestFile, m.Version, Version)
	case m.Threshold < 2 || m.Shares < m.Threshold || m.Shares > MaxShares || len(m.Holders) != m.Shares:
		return nil, fmt.Errorf("%s: inconsistent threshold %d, shares %d, holders %d", ManifestFile, m.Threshold, m.Shares, len(m.Holders))
	case m.Files[BundleFile] == "":
		return nil, fmt.Errorf("%s lists no checksum for %s", ManifestFile, BundleFile)
	}
	for i, h := range m.Holders {
		if h.Share != i+1 {
			return nil, fmt.Errorf("%s: holder %d has share %d", ManifestFile, i+1, h.Share)
		}
	}
	return &m, nil
}

// Verify checks every file listed in kit.json against its SHA-256.
func Verify(dir string, m *Manifest) error {
	names := make([]string, 0, len(m.Files))
	for name := range m.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		if name != filepath.Base(name) || name == ManifestFile {
			return fmt.Errorf("%s lists %q: not a kit file", ManifestFile, name)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrChecksum, name, err))
			continue
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != m.Files[name] {
			errs = append(errs, fmt.Errorf("%w: %s has SHA-256 %x, kit.json says %s", ErrChecksum, name, sum, m.Files[name]))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; the kit was altered or damaged: use another copy of it", errors.Join(errs...))
	}
	return nil
}

// Opened is an opened kit.
type Opened struct {
	Manifest *Manifest `json:"kit"`
	Bundle   *Bundle   `json:"bundle"`
	// Used are the share numbers the kit key was combined from;
	// Disagreeing are shares given that are not shares of this kit key
	// (corrupted, or altered) and were left out.
	Used        []int `json:"used"`
	Disagreeing []int `json:"disagreeing,omitempty"`
}

// ShareInput is a decrypted share file: its name (for messages) and text.
type ShareInput struct {
	Name string
	Data []byte
}

// Open verifies the kit in dir against kit.json, combines the decrypted
// shares into the kit key, and decrypts the bundle. It refuses fewer
// distinct shares than the threshold. When more are given and some do not
// agree with the others, it opens the kit from the ones that do and reports
// the rest in Disagreeing.
func Open(dir string, inputs []ShareInput) (*Opened, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if err := Verify(dir, m); err != nil {
		return nil, err
	}
	var parsed []ParsedShare
	from := map[int]string{}
	for _, in := range inputs {
		p, err := ParseShare(in.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Name, err)
		}
		switch {
		case p.Kit != m.ID:
			return nil, fmt.Errorf("%w: %s is a share of kit %s, not of this kit %s", ErrBadShare, in.Name, p.Kit, m.ID)
		case int(p.Share.X) > m.Shares:
			return nil, fmt.Errorf("%w: %s is share %d, but this kit has %d", ErrBadShare, in.Name, p.Share.X, m.Shares)
		}
		if prev, dup := from[int(p.Share.X)]; dup {
			return nil, fmt.Errorf("%w: share %d given twice (%s and %s)", ErrBadShare, p.Share.X, prev, in.Name)
		}
		from[int(p.Share.X)] = in.Name
		parsed = append(parsed, p)
	}
	if len(parsed) < m.Threshold {
		var missing []string
		for _, h := range m.Holders {
			if _, ok := from[h.Share]; !ok {
				missing = append(missing, fmt.Sprintf("%d (%s)", h.Share, h.Name))
			}
		}
		return nil, fmt.Errorf("%w: %d given, this kit needs %d of its %d; ask holders of shares %s to decrypt theirs",
			ErrTooFewShares, len(parsed), m.Threshold, m.Shares, strings.Join(missing, ", "))
	}
	shares := make([]Share, len(parsed))
	for i, p := range parsed {
		shares[i] = p.Share
	}
	id, used, bad, err := combineKey(shares, m.Threshold, m.KitRecipient)
	if err != nil {
		return nil, err
	}
	b, err := decryptBundle(dir, id)
	if err != nil {
		return nil, err
	}
	if b.Kit != m.ID {
		return nil, fmt.Errorf("%s belongs to kit %s, not %s", BundleFile, b.Kit, m.ID)
	}
	return &Opened{Manifest: m, Bundle: b, Used: used, Disagreeing: bad}, nil
}

// combineKey combines all shares into the kit identity. When that does not
// give the kit key and more than threshold shares were given, it looks for
// threshold of them that do, and then tests every other share against that
// set.
func combineKey(shares []Share, threshold int, kitRecipient string) (*age.X25519Identity, []int, []int, error) {
	if id := tryKey(shares, kitRecipient); id != nil {
		return id, xs(shares), nil, nil
	}
	if len(shares) > threshold && binomial(len(shares), threshold) <= maxSubsets {
		for _, idx := range combinations(len(shares), threshold) {
			subset := pick(shares, idx)
			id := tryKey(subset, kitRecipient)
			if id == nil {
				continue
			}
			var bad []int
			for i, s := range shares {
				if slices.Contains(idx, i) {
					continue
				}
				// Swap s in for one member of the good set.
				alt := append(pick(shares, idx[1:]), s)
				if tryKey(alt, kitRecipient) == nil {
					bad = append(bad, int(s.X))
				}
			}
			return id, xs(subset), bad, nil
		}
	}
	return nil, nil, nil, fmt.Errorf("%w: at least one share is corrupted or altered; "+
		"ask the holders to decrypt their share files again (`age -d`) and retry, or bring more shares", ErrWrongKey)
}

// maxSubsets bounds the search for a good subset among more shares than
// the threshold.
const maxSubsets = 5000

// binomial is n choose k, saturating above maxSubsets.
func binomial(n, k int) int {
	c := 1
	for i := 1; i <= k; i++ {
		c = c * (n - k + i) / i
		if c > maxSubsets {
			return maxSubsets + 1
		}
	}
	return c
}

// tryKey combines shares and returns the identity when it is the kit key.
func tryKey(shares []Share, kitRecipient string) *age.X25519Identity {
	secret, err := Combine(shares)
	if err != nil {
		return nil
	}
	defer clear(secret)
	id, err := age.ParseX25519Identity(string(secret))
	if err != nil || id.Recipient().String() != kitRecipient {
		return nil
	}
	return id
}

func xs(shares []Share) []int {
	out := make([]int, len(shares))
	for i, s := range shares {
		out[i] = int(s.X)
	}
	slices.Sort(out)
	return out
}

func pick(shares []Share, idx []int) []Share {
	out := make([]Share, 0, len(idx)+1)
	for _, i := range idx {
		out = append(out, shares[i])
	}
	return out
}

// combinations lists the k-element subsets of 0…n-1 in lexicographic order.
func combinations(n, k int) [][]int {
	var out [][]int
	cur := make([]int, 0, k)
	var rec func(start int)
	rec = func(start int) {
		if len(cur) == k {
			out = append(out, slices.Clone(cur))
			return
		}
		for i := start; i <= n-(k-len(cur)); i++ {
			cur = append(cur, i)
			rec(i + 1)
			cur = cur[:len(cur)-1]
		}
	}
	rec(0)
	return out
}

func decryptBundle(dir string, id age.Identity) (*Bundle, error) {
	f, err := os.Open(filepath.Join(dir, BundleFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := age.Decrypt(f, id)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w", BundleFile, err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w", BundleFile, err)
	}
	defer clear(data)
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", BundleFile, err)
	}
	if b.Version != Version {
		return nil, fmt.Errorf("%s: bundle version %d; this steward reads version %d", BundleFile, b.Version, Version)
	}
	return &b, nil
}
