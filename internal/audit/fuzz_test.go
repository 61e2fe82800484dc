package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// FuzzVerifyJSONL: any bytes given as an export yield a report or an error,
// never a panic; the parallel verifier agrees with the event-at-a-time path.
func FuzzVerifyJSONL(f *testing.F) {
	good := exportLines(memChain(5))
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"seq":3`), []byte(`"seq":4`), 1))
	f.Add([]byte(`{"seq":1,"time":"2025-03-01T12:00:00Z","actor":"\ud800","action":"a","target":"","outcome":"","details":{"b":[1,{"a":null}],"a":-0.5e+3},"prev_hash":"` + ZeroHash + `","hash":"` + ZeroHash + `"}`))
	f.Add([]byte("\n\r\n{}\n[]\n\"x\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		rep, err := Verify(ctx, JSONLSource(bytes.NewReader(data)), []Checkpoint{{Size: 2, Hash: ZeroHash}})
		if err != nil {
			t.Fatalf("reading bytes from memory is not an I/O error: %v", err)
		}
		if rep.OK != (rep.Problem == "") {
			t.Fatalf("inconsistent report %+v", rep)
		}
		// When every line parses, verifying the parsed events gives the same
		// report.
		var evs []Event
		if err := JSONLSource(bytes.NewReader(data)).Scan(ctx, 1, func(e Event) error {
			evs = append(evs, e)
			return nil
		}); err != nil {
			return
		}
		slow, err := Verify(ctx, sliceSource(evs), []Checkpoint{{Size: 2, Hash: ZeroHash}})
		if err != nil {
			t.Fatal(err)
		}
		if slow != rep {
			t.Fatalf("paths disagree:\njsonl  %+v\nevents %+v", rep, slow)
		}
	})
}

type sliceSource []Event

func (s sliceSource) Scan(_ context.Context, from int64, fn func(Event) error) error {
	for _, e := range s {
		if e.Seq >= from {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// FuzzCanonical: the canonical encoding is JSON that decodes back to the
// event; canonicalization is idempotent and keeps the meaning of details;
// an exported line parses back to an event with the same hash.
func FuzzCanonical(f *testing.F) {
	f.Add(int64(1), int64(1740830400123456), "alice", "user.add", "bob", "ok", []byte(`{"b":1,"a":[true,null,"x\u00e9\n"]}`), ZeroHash)
	f.Add(int64(42), int64(0), "a\"\\\x00", "\xff", "</>", "\u2028", []byte(` {"z":{"y":1e400,"x":-0}} `), "zz")
	f.Add(int64(-5), int64(-62135596800000000), "", "", "", "", []byte(`[`), "")
	f.Fuzz(func(t *testing.T, seq, usec int64, actor, action, target, outcome string, details []byte, prev string) {
		e := Event{Seq: seq, Time: time.UnixMicro(usec).UTC(), Actor: actor, Action: action, Target: target, Outcome: outcome, Details: details, PrevHash: prev}
		if y := e.Time.Year(); y < 0 || y > 9999 {
			return // outside the documented range of the time format
		}
		c := Canonical(e)
		if !json.Valid(c) {
			t.Fatalf("canonical encoding is not JSON: %s", c)
		}
		var back struct {
			Seq                                      int64
			Time                                     time.Time
			Actor, Action, Target, Outcome, PrevHash string
			Details                                  json.RawMessage
		}
		dec := json.NewDecoder(bytes.NewReader(c))
		if err := dec.Decode(&back); err != nil {
			t.Fatal(err)
		}
		for _, p := range [][2]string{{back.Actor, actor}, {back.Action, action}, {back.Target, target}, {back.Outcome, outcome}} {
			if p[0] != toValidUTF8(p[1]) {
				t.Fatalf("string %q came back as %q", p[1], p[0])
			}
		}
		if back.Seq != seq || !back.Time.Equal(e.Time) {
			t.Fatalf("seq/time came back as %d %v", back.Seq, back.Time)
		}
		canon, err := appendCanonicalJSON(nil, details)
		if err == nil {
			again, err := appendCanonicalJSON(nil, canon)
			if err != nil || !bytes.Equal(again, canon) {
				t.Fatalf("not idempotent: %s -> %s (%v)", canon, again, err)
			}
			var a, b any
			if sameJSON(details, &a) && sameJSON(canon, &b) && !reflect.DeepEqual(a, b) {
				t.Fatalf("meaning changed: %s -> %s", details, canon)
			}
			if !bytes.Equal(back.Details, canon) && len(bytes.TrimSpace(details)) > 0 {
				t.Fatalf("details %s, want %s", back.Details, canon)
			}
		} else if json.Valid(details) {
			var v any
			if dupFree(details) && json.Unmarshal(details, &v) == nil && depth(details) <= maxDepth {
				t.Fatalf("valid JSON rejected: %s: %v", details, err)
			}
		}
		// Export line round trip.
		e.Hash = HashEvent(e)
		line := bytes.TrimSuffix(appendEventLine(nil, e), []byte{'\n'})
		var p lineParser
		got, err := p.event(line)
		if err != nil {
			if seq >= 1 {
				t.Fatalf("exported line does not parse: %v\n%s", err, line)
			}
			return
		}
		if HashEvent(got) != e.Hash && err == nil && appendErr(details) == nil {
			t.Fatalf("exported line hashes differently:\n%s", line)
		}
		var ck checked
		p.check(line, &ck)
		if ck.match != (HashEvent(got) == got.Hash) {
			t.Fatalf("fast and slow hash paths disagree on\n%s", line)
		}
	})
}

func appendErr(details []byte) error {
	if len(bytes.TrimSpace(details)) == 0 {
		return nil
	}
	_, err := appendCanonicalJSON(nil, details)
	return err
}

// toValidUTF8 replaces each invalid byte with U+FFFD, as the encoding does.
func toValidUTF8(s string) string { return string([]rune(s)) }

func sameJSON(b []byte, v *any) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v) == nil
}

// dupFree reports whether no object in b repeats a key (encoding/json keeps
// the last; the canonical form rejects them).
func dupFree(b []byte) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	var walk func() bool
	walk = func() bool {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return false
				}
				ks, _ := k.(string)
				if seen[ks] {
					return false
				}
				seen[ks] = true
				if !walk() {
					return false
				}
			}
			_, err = d.Token()
			return err == nil
		case json.Delim('['):
			for d.More() {
				if !walk() {
					return false
				}
			}
			_, err = d.Token()
			return err == nil
		}
		return true
	}
	return walk()
}

func depth(b []byte) int {
	max, cur := 0, 0
	inStr, esc := false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '{' || c == '['):
			cur++
			if cur > max {
				max = cur
			}
		case !inStr && (c == '}' || c == ']'):
			cur--
		}
	}
	return max
}
