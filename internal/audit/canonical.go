package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// ZeroHash is the prev_hash of the first event of a log.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// timeLayout is the canonical time: UTC, microseconds, fixed width. It is the
// layout the store keeps (store.FormatTime).
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Event is one committed audit event.
type Event struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`
	Target   string          `json:"target"`
	Outcome  string          `json:"outcome"`
	Details  json.RawMessage `json:"details"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

// Canonical returns the bytes hashed for e (docs/audit.md, "Canonical
// encoding"): a JSON object of every field but hash, keys in byte order, no
// insignificant whitespace, strings escaped minimally, details canonicalized
// (keys sorted, numbers kept exactly as written). Empty details encode as {};
// details that are not valid JSON encode as a JSON string of their bytes.
func Canonical(e Event) []byte {
	b, _ := appendCanonicalEvent(make([]byte, 0, 256+len(e.Details)), &e)
	return b
}

// HashEvent returns the hex SHA-256 of Canonical(e).
func HashEvent(e Event) string {
	b, _ := appendCanonicalEvent(make([]byte, 0, 256+len(e.Details)), &e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// appendCanonicalEvent appends the canonical encoding of e to dst. It reports
// an error when the details are not valid JSON; the bytes appended are then
// those of Canonical (details as a JSON string).
func appendCanonicalEvent(dst []byte, e *Event) ([]byte, error) {
	dst = append(dst, `{"action":`...)
	dst = appendString(dst, e.Action)
	dst = append(dst, `,"actor":`...)
	dst = appendString(dst, e.Actor)
	dst = append(dst, `,"details":`...)
	var derr error
	if len(bytes.TrimLeft(e.Details, " \t\r\n")) == 0 {
		dst = append(dst, "{}"...)
	} else {
		var out []byte
		out, derr = appendCanonicalJSON(dst, e.Details)
		if derr != nil {
			dst = appendString(dst, string(e.Details))
		} else {
			dst = out
		}
	}
	dst = append(dst, `,"outcome":`...)
	dst = appendString(dst, e.Outcome)
	dst = append(dst, `,"prev_hash":`...)
	dst = appendString(dst, e.PrevHash)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, e.Seq, 10)
	dst = append(dst, `,"target":`...)
	dst = appendString(dst, e.Target)
	dst = append(dst, `,"time":"`...)
	dst = e.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `"}`...)
	return dst, derr
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a canonical JSON string: '"' and '\' escaped
// with a backslash, U+0008, U+0009, U+000A, U+000C, U+000D as \b \t \n \f \r,
// other code points below U+0020 as \u00xx (lowercase hex), everything else
// as literal UTF-8. Invalid UTF-8 bytes become U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = appendEscapedASCII(dst, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendEscapedASCII appends the canonical escape of c, which is '"', '\' or
// a control character.
func appendEscapedASCII(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// appendRune appends r in canonical string form (without quotes).
func appendRune(dst []byte, r rune) []byte {
	if r < 0x20 || r == '"' || r == '\\' {
		return appendEscapedASCII(dst, byte(r))
	}
	return utf8.AppendRune(dst, r)
}

// maxDepth bounds the nesting of details so hostile input cannot exhaust the
// stack.
const maxDepth = 200

var errDepth = errors.New("nested too deeply")

// canonicalizer parses JSON from src and appends its canonical form to dst in
// one pass. Objects whose keys arrive sorted are never copied twice.
type canonicalizer struct {
	src   []byte
	i     int
	dst   []byte
	depth int
	tmp   []byte // scratch for reordering object members
}

// appendCanonicalJSON appends the canonical form of the JSON value in src to
// dst. On error the returned slice is dst unchanged (its spare capacity may
// have been written).
func appendCanonicalJSON(dst, src []byte) ([]byte, error) {
	c := canonicalizer{src: src, dst: dst}
	c.ws()
	if err := c.value(); err != nil {
		return dst, err
	}
	c.ws()
	if c.i != len(c.src) {
		return dst, c.errf("unexpected %q after the value", c.src[c.i])
	}
	return c.dst, nil
}

func (c *canonicalizer) errf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", c.i, fmt.Sprintf(format, args...))
}

func (c *canonicalizer) ws() {
	for c.i < len(c.src) {
		switch c.src[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *canonicalizer) value() error {
	if c.i >= len(c.src) {
		return c.errf("unexpected end of input")
	}
	switch b := c.src[c.i]; {
	case b == '{':
		return c.object()
	case b == '[':
		return c.array()
	case b == '"':
		return c.str()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	default:
		return c.errf("invalid character %q", b)
	}
}

func (c *canonicalizer) literal(lit string) error {
	if !bytes.HasPrefix(c.src[c.i:], []byte(lit)) {
		return c.errf("invalid literal")
	}
	c.i += len(lit)
	c.dst = append(c.dst, lit...)
	return nil
}

// number validates a JSON number and copies it verbatim.
func (c *canonicalizer) number() error {
	start := c.i
	s := c.src
	i := c.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		c.i = i
		return c.errf("invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			c.i = i
			return c.errf("invalid number")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			c.i = i
			return c.errf("invalid number")
		}
	}
	c.i = i
	c.dst = append(c.dst, s[start:i]...)
	return nil
}

// str parses a JSON string and appends it in canonical form.
func (c *canonicalizer) str() error {
	s := c.src
	i := c.i + 1 // opening quote
	c.dst = append(c.dst, '"')
	start := i
	for {
		for i < len(s) && plainByte[s[i]] {
			i++
		}
		if i >= len(s) {
			c.i = i
			return c.errf("unterminated string")
		}
		b := s[i]
		switch {
		case b == '"':
			c.dst = append(c.dst, s[start:i]...)
			c.dst = append(c.dst, '"')
			c.i = i + 1
			return nil
		case b == '\\':
			c.dst = append(c.dst, s[start:i]...)
			n, err := c.escape(i)
			if err != nil {
				return err
			}
			i += n
			start = i
		case b < 0x20:
			c.i = i
			return c.errf("control character in string")
		case b < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				c.dst = append(c.dst, s[start:i]...)
				c.dst = append(c.dst, "\uFFFD"...)
				i++
				start = i
				continue
			}
			i += size
		}
	}
}

// escape decodes the escape sequence at s[i] (a backslash), appends its
// canonical form and returns its length.
func (c *canonicalizer) escape(i int) (int, error) {
	s := c.src
	if i+1 >= len(s) {
		c.i = i
		return 0, c.errf("unterminated escape")
	}
	switch s[i+1] {
	case '"', '\\', '/':
		c.dst = appendRune(c.dst, rune(s[i+1]))
		return 2, nil
	case 'b':
		c.dst = append(c.dst, '\\', 'b')
		return 2, nil
	case 'f':
		c.dst = append(c.dst, '\\', 'f')
		return 2, nil
	case 'n':
		c.dst = append(c.dst, '\\', 'n')
		return 2, nil
	case 'r':
		c.dst = append(c.dst, '\\', 'r')
		return 2, nil
	case 't':
		c.dst = append(c.dst, '\\', 't')
		return 2, nil
	case 'u':
		r, ok := hex4(s[i+2:])
		if !ok {
			c.i = i
			return 0, c.errf("invalid \\u escape")
		}
		n := 6
		if utf16.IsSurrogate(r) {
			// A high surrogate followed by a low one is one code point;
			// anything else is replaced, as encoding/json does.
			r2, ok2 := rune(-1), false
			if len(s) >= i+12 && s[i+6] == '\\' && s[i+7] == 'u' {
				r2, ok2 = hex4(s[i+8:])
			}
			if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
				r = dec
				n = 12
			} else {
				r = utf8.RuneError
			}
		}
		c.dst = appendRune(c.dst, r)
		return n, nil
	}
	c.i = i
	return 0, c.errf("invalid escape \\%c", s[i+1])
}

// plainByte marks the bytes a canonical string carries through unchanged
// without a closer look: printable ASCII other than '"' and '\'.
var plainByte = func() (t [256]bool) {
	for b := 0x20; b < 0x80; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, ch := range b[:4] {
		var v byte
		switch {
		case ch >= '0' && ch <= '9':
			v = ch - '0'
		case ch >= 'a' && ch <= 'f':
			v = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			v = ch - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

func (c *canonicalizer) array() error {
	if c.depth++; c.depth > maxDepth {
		return c.errf("%v", errDepth)
	}
	c.i++
	c.dst = append(c.dst, '[')
	c.ws()
	if c.i < len(c.src) && c.src[c.i] == ']' {
		c.i++
		c.dst = append(c.dst, ']')
		c.depth--
		return nil
	}
	for {
		c.ws()
		if err := c.value(); err != nil {
			return err
		}
		c.ws()
		if c.i >= len(c.src) {
			return c.errf("unterminated array")
		}
		switch c.src[c.i] {
		case ',':
			c.i++
			c.dst = append(c.dst, ',')
		case ']':
			c.i++
			c.dst = append(c.dst, ']')
			c.depth--
			return nil
		default:
			return c.errf("expected , or ] in array")
		}
	}
}

// member locates one object member in dst: the key token is
// dst[start:colon], the value dst[colon+1:end].
type member struct{ start, colon, end int }

func (c *canonicalizer) object() error {
	if c.depth++; c.depth > maxDepth {
		return c.errf("%v", errDepth)
	}
	c.i++
	c.dst = append(c.dst, '{')
	c.ws()
	if c.i < len(c.src) && c.src[c.i] == '}' {
		c.i++
		c.dst = append(c.dst, '}')
		c.depth--
		return nil
	}
	var stack [8]member
	members := stack[:0]
	sorted := true
	for {
		c.ws()
		if c.i >= len(c.src) || c.src[c.i] != '"' {
			return c.errf("expected a string key")
		}
		start := len(c.dst)
		if err := c.str(); err != nil {
			return err
		}
		colon := len(c.dst)
		c.ws()
		if c.i >= len(c.src) || c.src[c.i] != ':' {
			return c.errf("expected : after key")
		}
		c.i++
		c.dst = append(c.dst, ':')
		c.ws()
		if err := c.value(); err != nil {
			return err
		}
		m := member{start, colon, len(c.dst)}
		if n := len(members); n > 0 && sorted {
			p := members[n-1]
			switch compareKeys(c.dst[p.start:p.colon], c.dst[m.start:m.colon]) {
			case 0:
				return c.errf("duplicate key %s", c.dst[m.start:m.colon])
			case 1:
				sorted = false
			}
		}
		members = append(members, m)
		c.ws()
		if c.i >= len(c.src) {
			return c.errf("unterminated object")
		}
		if c.src[c.i] == ',' {
			c.i++
			c.dst = append(c.dst, ',')
			continue
		}
		if c.src[c.i] != '}' {
			return c.errf("expected , or } in object")
		}
		c.i++
		break
	}
	if !sorted {
		if err := c.sortMembers(members); err != nil {
			return err
		}
	}
	c.dst = append(c.dst, '}')
	c.depth--
	return nil
}

// sortMembers rewrites the members (which end dst) in key order.
func (c *canonicalizer) sortMembers(members []member) error {
	base := members[0].start
	c.tmp = append(c.tmp[:0], c.dst[base:]...)
	tmp := c.tmp
	key := func(m member) []byte { return tmp[m.start-base : m.colon-base] }
	ms := slices.Clone(members)
	slices.SortStableFunc(ms, func(a, b member) int { return compareKeys(key(a), key(b)) })
	for i := 1; i < len(ms); i++ {
		if compareKeys(key(ms[i-1]), key(ms[i])) == 0 {
			return c.errf("duplicate key %s", key(ms[i]))
		}
	}
	c.dst = c.dst[:base]
	for i, m := range ms {
		if i > 0 {
			c.dst = append(c.dst, ',')
		}
		c.dst = append(c.dst, tmp[m.start-base:m.end-base]...)
	}
	return nil
}

// compareKeys orders two canonical string tokens by the UTF-8 bytes of the
// strings they encode.
func compareKeys(a, b []byte) int {
	if bytes.IndexByte(a, '\\') < 0 && bytes.IndexByte(b, '\\') < 0 {
		return bytes.Compare(a[1:len(a)-1], b[1:len(b)-1])
	}
	return bytes.Compare([]byte(unquoteCanonical(a)), []byte(unquoteCanonical(b)))
}

// unquoteCanonical decodes a canonical string token (as produced by
// appendString or canonicalizer.str).
func unquoteCanonical(tok []byte) string {
	body := tok[1 : len(tok)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body)
	}
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			out = append(out, body[i])
			continue
		}
		i++
		switch body[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := hex4(body[i+1:])
			out = append(out, byte(r))
			i += 4
		default: // '"' or '\\'
			out = append(out, body[i])
		}
	}
	return string(out)
}
