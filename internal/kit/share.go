package kit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// A share file, as its holder gets it from `age -d`, is plain text:
//
//	steward-kit-share: 1
//	kit: 3f9c0a1b2c3d4e5f
//	share: 3 of 5
//	threshold: 3
//	holder: alice
//	data: <base64 of the share's bytes>
//	check: <first 8 bytes of SHA-256 over kit, share and data, hex>
//
// Lines starting with # and blank lines are ignored, so it can carry a
// comment for the holder. The check line catches a damaged or mistyped
// share before it spoils the combination; it is computed from the share
// alone and says nothing about the secret.

const shareMagic = "steward-kit-share"

// maxShareFile bounds what ParseShare reads.
const maxShareFile = 64 << 10

// ParsedShare is a share file's content.
type ParsedShare struct {
	Kit       string
	Shares    int
	Threshold int
	Holder    string
	Share     Share
}

func shareCheck(kit string, x byte, y []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", shareMagic, kit, x)
	h.Write(y)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func formatShare(m *Manifest, h Holder, s Share) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Steward emergency kit %s, share %d of %d, held by %s.\n", m.ID, s.X, m.Shares, h.Name)
	fmt.Fprintf(&b, "# Keep it secret. %d shares together open the kit: steward kit open KIT-DIR share-%d.txt …\n", m.Threshold, s.X)
	fmt.Fprintf(&b, "%s: %d\n", shareMagic, Version)
	fmt.Fprintf(&b, "kit: %s\n", m.ID)
	fmt.Fprintf(&b, "share: %d of %d\n", s.X, m.Shares)
	fmt.Fprintf(&b, "threshold: %d\n", m.Threshold)
	fmt.Fprintf(&b, "holder: %s\n", h.Name)
	fmt.Fprintf(&b, "data: %s\n", base64.StdEncoding.EncodeToString(s.Y))
	fmt.Fprintf(&b, "check: %s\n", shareCheck(m.ID, s.X, s.Y))
	return b.Bytes()
}

// ParseShare parses a decrypted share file. It recognizes a file that is
// still age-encrypted and says how to decrypt it.
func ParseShare(data []byte) (ParsedShare, error) {
	var p ParsedShare
	if len(data) > maxShareFile {
		return p, fmt.Errorf("%w: %d bytes is too large for a share file", ErrBadShare, len(data))
	}
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("age-encryption.org/")) || bytes.HasPrefix(trimmed, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		return p, fmt.Errorf("%w: still encrypted; its holder decrypts it first: age -d -i HOLDER-KEY share-N-NAME.age > share-N.txt", ErrBadShare)
	}
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxShareFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return p, fmt.Errorf("%w: not a share file (line without \"key: value\")", ErrBadShare)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, dup := fields[k]; dup {
			return p, fmt.Errorf("%w: %q appears twice", ErrBadShare, k)
		}
		fields[k] = v
	}
	if err := sc.Err(); err != nil {
		return p, fmt.Errorf("%w: %w", ErrBadShare, err)
	}
	if fields[shareMagic] == "" {
		return p, fmt.Errorf("%w: not a Steward kit share (no %q line)", ErrBadShare, shareMagic)
	}
	if fields[shareMagic] != strconv.Itoa(Version) {
		return p, fmt.Errorf("%w: share format %q; this steward reads %d", ErrBadShare, fields[shareMagic], Version)
	}
	for _, k := range []string{"kit", "share", "threshold", "data", "check"} {
		if fields[k] == "" {
			return p, fmt.Errorf("%w: no %q line", ErrBadShare, k)
		}
	}
	p.Kit, p.Holder = fields["kit"], fields["holder"]
	xs, ns, ok := strings.Cut(fields["share"], " of ")
	x, err1 := strconv.Atoi(strings.TrimSpace(xs))
	n, err2 := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err1 != nil || err2 != nil || x < 1 || x > n || n > MaxShares {
		return p, fmt.Errorf("%w: share line %q: want \"N of M\" with 1 ≤ N ≤ M ≤ %d", ErrBadShare, fields["share"], MaxShares)
	}
	k, err := strconv.Atoi(fields["threshold"])
	if err != nil || k < 2 || k > n {
		return p, fmt.Errorf("%w: threshold %q", ErrBadShare, fields["threshold"])
	}
	y, err := base64.StdEncoding.DecodeString(fields["data"])
	if err != nil || len(y) == 0 {
		return p, fmt.Errorf("%w: data line is not base64; the share was damaged or mistyped", ErrBadShare)
	}
	if shareCheck(p.Kit, byte(x), y) != strings.ToLower(fields["check"]) {
		return p, fmt.Errorf("%w: share %d fails its check line: the share was damaged or mistyped; decrypt the holder's .age file again", ErrBadShare, x)
	}
	p.Shares, p.Threshold = n, k
	p.Share = Share{X: byte(x), Y: y}
	return p, nil
}
