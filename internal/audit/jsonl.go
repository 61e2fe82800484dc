package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// maxLine bounds one line of a JSONL export.
const maxLine = 16 << 20

// Export writes the events with seq >= since to w as JSONL, one Event per
// line in the field order of Event, and returns how many it wrote. The caller
// records the audit.export event.
func Export(ctx context.Context, s *store.Store, since int64, w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	var n int64
	var line []byte
	err := s.ScanAudit(ctx, since, func(r store.AuditRecord) error {
		line = appendEventLine(line[:0], eventFromRecord(r))
		if _, err := bw.Write(line); err != nil {
			return fmt.Errorf("export audit: %w", err)
		}
		n++
		return nil
	})
	if err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("export audit: %w", err)
	}
	return n, nil
}

// appendEventLine appends e as one JSONL line. Details are written in
// canonical form, or as a JSON string when they are not valid JSON (so a
// damaged row still exports, and verifies as bad).
func appendEventLine(dst []byte, e Event) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, e.Seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = e.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `","actor":`...)
	dst = appendString(dst, e.Actor)
	dst = append(dst, `,"action":`...)
	dst = appendString(dst, e.Action)
	dst = append(dst, `,"target":`...)
	dst = appendString(dst, e.Target)
	dst = append(dst, `,"outcome":`...)
	dst = appendString(dst, e.Outcome)
	dst = append(dst, `,"details":`...)
	if len(bytes.TrimLeft(e.Details, " \t\r\n")) == 0 {
		dst = append(dst, "{}"...)
	} else if out, err := appendCanonicalJSON(dst, e.Details); err == nil {
		dst = out
	} else {
		dst = appendString(dst, string(e.Details))
	}
	dst = append(dst, `,"prev_hash":`...)
	dst = appendString(dst, e.PrevHash)
	dst = append(dst, `,"hash":`...)
	dst = appendString(dst, e.Hash)
	return append(dst, "}\n"...)
}

func eventFromRecord(r store.AuditRecord) Event {
	return Event{
		Seq: r.Seq, Time: r.Time, Actor: r.Actor, Action: r.Action, Target: r.Target,
		Outcome: r.Outcome, Details: []byte(r.Details), PrevHash: r.PrevHash, Hash: r.Hash,
	}
}

// JSONLSource reads an export written by Export, for offline verification.
// Verify reads it in large chunks and parses and hashes them on every core.
func JSONLSource(r io.Reader) Source { return &jsonlSource{r: r} }

type jsonlSource struct{ r io.Reader }

// Scan calls fn for each event with seq >= fromSeq, in file order. A line
// that is not an event is an error naming the line.
func (j *jsonlSource) Scan(ctx context.Context, fromSeq int64, fn func(Event) error) error {
	br := bufio.NewReaderSize(j.r, 1<<20)
	var p lineParser
	var lineNo int64
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			lineNo++
			if lineNo%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if len(bytes.TrimSpace(line)) > 0 {
				e, perr := p.event(line)
				if perr != nil {
					return fmt.Errorf("audit export line %d: %w", lineNo, perr)
				}
				if e.Seq >= fromSeq {
					if err := fn(e); err != nil {
						return err
					}
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit export line %d: %w", lineNo+1, err)
		}
	}
}

var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLine)

// readLine returns the next line without its newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > maxLine {
				return nil, errLineTooLong
			}
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	return bytes.TrimSuffix(line, []byte{'\n'}), err
}

// Fields of an export line, as bits.
const (
	fSeq = 1 << iota
	fTime
	fActor
	fAction
	fTarget
	fOutcome
	fDetails
	fPrevHash
	fHash
	fAll = 1<<iota - 1
)

var fieldNames = []struct {
	tok  string
	name string
	bit  int
}{
	{`"seq"`, "seq", fSeq}, {`"time"`, "time", fTime}, {`"actor"`, "actor", fActor},
	{`"action"`, "action", fAction}, {`"target"`, "target", fTarget}, {`"outcome"`, "outcome", fOutcome},
	{`"details"`, "details", fDetails}, {`"prev_hash"`, "prev_hash", fPrevHash}, {`"hash"`, "hash", fHash},
}

type span struct{ start, end int }

// lineParser parses export lines; it reuses its buffers between lines and is
// not safe for concurrent use.
type lineParser struct {
	c   canonicalizer
	buf []byte // canonical encoding being hashed
	seq int64
	t   time.Time
	// tmCanonical: the time token is already in timeLayout
	tmCanonical bool
	// canonical tokens of the string fields and details, in c.dst
	actor, action, target, outcome, details, prevHash, hash, tm span
}

// parse reads one line into p. The canonical tokens of its fields are left
// in p.c.dst.
func (p *lineParser) parse(line []byte) error {
	c := &p.c
	c.src, c.i, c.dst, c.depth = line, 0, c.dst[:0], 0
	c.ws()
	if c.i >= len(line) || line[c.i] != '{' {
		return errors.New("not a JSON object")
	}
	c.i++
	seen := 0
	for {
		c.ws()
		if c.i >= len(line) || line[c.i] != '"' {
			return c.errf("expected a field name")
		}
		k := len(c.dst)
		if err := c.str(); err != nil {
			return err
		}
		key := c.dst[k:]
		bit, name := 0, ""
		for _, f := range fieldNames {
			if string(key) == f.tok {
				bit, name = f.bit, f.name
				break
			}
		}
		if bit == 0 {
			return c.errf("unknown field %s", key)
		}
		if seen&bit != 0 {
			return c.errf("duplicate field %s", key)
		}
		seen |= bit
		c.dst = c.dst[:k]
		c.ws()
		if c.i >= len(line) || line[c.i] != ':' {
			return c.errf("expected : after %s", name)
		}
		c.i++
		c.ws()
		if c.i >= len(line) {
			return c.errf("missing value of %s", name)
		}
		start := len(c.dst)
		switch bit {
		case fSeq:
			if err := c.number(); err != nil {
				return err
			}
			v, err := strconv.ParseInt(string(c.dst[start:]), 10, 64)
			if err != nil || v < 1 {
				return fmt.Errorf("seq %s is not a positive integer", c.dst[start:])
			}
			p.seq = v
			c.dst = c.dst[:start]
		case fDetails:
			if err := c.value(); err != nil {
				return fmt.Errorf("details: %w", err)
			}
			p.details = span{start, len(c.dst)}
		default:
			if line[c.i] != '"' {
				return c.errf("%s must be a string", name)
			}
			if err := c.str(); err != nil {
				return err
			}
			sp := span{start, len(c.dst)}
			switch bit {
			case fTime:
				raw := c.dst[start+1 : len(c.dst)-1]
				if t, ok := parseCanonicalTime(raw); ok {
					p.t, p.tmCanonical = t, true
				} else {
					t, err := time.Parse(time.RFC3339Nano, unquoteCanonical(c.dst[start:]))
					if err != nil {
						return fmt.Errorf("time: %w", err)
					}
					p.t, p.tmCanonical = t, false
				}
				p.tm = sp
			case fActor:
				p.actor = sp
			case fAction:
				p.action = sp
			case fTarget:
				p.target = sp
			case fOutcome:
				p.outcome = sp
			case fPrevHash:
				p.prevHash = sp
			case fHash:
				p.hash = sp
			}
		}
		c.ws()
		if c.i >= len(line) {
			return c.errf("unterminated object")
		}
		if line[c.i] == ',' {
			c.i++
			continue
		}
		if line[c.i] != '}' {
			return c.errf("expected , or }")
		}
		c.i++
		break
	}
	c.ws()
	if c.i != len(line) {
		return c.errf("unexpected data after the event")
	}
	if seen != fAll {
		for _, f := range fieldNames {
			if seen&f.bit == 0 {
				return fmt.Errorf("missing field %s", f.name)
			}
		}
	}
	return nil
}

func (p *lineParser) tok(s span) []byte { return p.c.dst[s.start:s.end] }

// check parses a line and checks the event's own hash.
func (p *lineParser) check(line []byte, out *checked) {
	if err := p.parse(line); err != nil {
		out.problem = "cannot read event: " + err.Error()
		return
	}
	out.seq = p.seq
	b := append(p.buf[:0], `{"action":`...)
	b = append(b, p.tok(p.action)...)
	b = append(b, `,"actor":`...)
	b = append(b, p.tok(p.actor)...)
	b = append(b, `,"details":`...)
	b = append(b, p.tok(p.details)...)
	b = append(b, `,"outcome":`...)
	b = append(b, p.tok(p.outcome)...)
	b = append(b, `,"prev_hash":`...)
	b = append(b, p.tok(p.prevHash)...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, p.seq, 10)
	b = append(b, `,"target":`...)
	b = append(b, p.tok(p.target)...)
	b = append(b, `,"time":"`...)
	if p.tmCanonical {
		tm := p.tok(p.tm)
		b = append(b, tm[1:len(tm)-1]...) // parseCanonicalTime accepted it: formats back identically
	} else {
		b = p.t.UTC().AppendFormat(b, timeLayout)
	}
	b = append(b, `"}`...)
	p.buf = b
	out.prev, out.prevOK = decodeHash(p.tok(p.prevHash))
	out.hash, out.hashOK = decodeHash(p.tok(p.hash))
	if !out.hashOK {
		out.why = "hash is not 64 lowercase hex digits (edited?)"
		return
	}
	out.match = sha256.Sum256(b) == out.hash
}

// event parses a line into an Event that owns its memory.
func (p *lineParser) event(line []byte) (Event, error) {
	if err := p.parse(line); err != nil {
		return Event{}, err
	}
	return Event{
		Seq:      p.seq,
		Time:     p.t,
		Actor:    unquoteCanonical(p.tok(p.actor)),
		Action:   unquoteCanonical(p.tok(p.action)),
		Target:   unquoteCanonical(p.tok(p.target)),
		Outcome:  unquoteCanonical(p.tok(p.outcome)),
		Details:  bytes.Clone(p.tok(p.details)),
		PrevHash: unquoteCanonical(p.tok(p.prevHash)),
		Hash:     unquoteCanonical(p.tok(p.hash)),
	}, nil
}

// parseCanonicalTime parses YYYY-MM-DDTHH:MM:SS.ffffffZ exactly; it accepts
// only what time.Parse with timeLayout accepts and formats back identically.
func parseCanonicalTime(b []byte) (time.Time, bool) {
	if len(b) != len(timeLayout) || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' ||
		b[16] != ':' || b[19] != '.' || b[26] != 'Z' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, ch := range s {
			if ch < '0' || ch > '9' {
				return 0, false
			}
			n = n*10 + int(ch-'0')
		}
		return n, true
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	us, ok7 := num(b[20:26])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59 {
		return time.Time{}, false
	}
	if d > daysIn(time.Month(mo), y) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, s, us*1000, time.UTC), true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// decodeHash decodes a canonical string token holding 64 lowercase hex
// digits.
func decodeHash(tok []byte) ([32]byte, bool) {
	if len(tok) != 66 {
		return [32]byte{}, false
	}
	return decodeHex64(tok[1:65])
}

func decodeHashString(s string) ([32]byte, bool) {
	if len(s) != 64 {
		return [32]byte{}, false
	}
	return decodeHex64(s)
}

func decodeHex64[T string | []byte](s T) ([32]byte, bool) {
	var h [32]byte
	bad := byte(0)
	for i := range h {
		hi, lo := unhexTable[s[2*i]], unhexTable[s[2*i+1]]
		bad |= hi | lo
		h[i] = hi<<4 | lo&0x0f
	}
	return h, bad&0xf0 == 0
}

// unhexTable maps lowercase hex digits to their value and everything else
// to 0xff.
var unhexTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()
