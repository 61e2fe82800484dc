package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The example of docs/audit.md: an auditor's re-implementation must produce
// these bytes and this hash.
func TestCanonicalExample(t *testing.T) {
	t.Parallel()
	e := Event{
		Seq:      1,
		Time:     time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC),
		Actor:    "alice",
		Action:   "user.add",
		Target:   "bob",
		Outcome:  "ok",
		Details:  json.RawMessage(`{ "roles": ["sre"], "email": "bob@example.com", "n": 1.50 }`),
		PrevHash: ZeroHash,
	}
	want := `{"action":"user.add","actor":"alice","details":{"email":"bob@example.com","n":1.50,"roles":["sre"]},` +
		`"outcome":"ok","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","seq":1,` +
		`"target":"bob","time":"2025-03-01T12:00:00.123456Z"}`
	if got := string(Canonical(e)); got != want {
		t.Fatalf("canonical:\n got %s\nwant %s", got, want)
	}
	const wantHash = "4dc953d301cdd8fc6c897139423041ecd9151f708a949018036960cc0f3d0d84"
	if got := HashEvent(e); got != wantHash {
		t.Logf("hash %s (update the docs and this test if the example changed on purpose)", got)
		t.Fail()
	}
}

func TestCanonicalDetails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want, err string }{
		{name: "sorted keys", in: `{"b":1,"a":2,"c":{"z":1,"y":[3,{"k":1,"j":2}]}}`, want: `{"a":2,"b":1,"c":{"y":[3,{"j":2,"k":1}],"z":1}}`},
		{name: "whitespace", in: " {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\" : { } , \"c\":[ ]}\n", want: `{"a":[1,2],"b":{},"c":[]}`},
		{name: "numbers exact", in: `{"a":1.0,"b":1e5,"c":-0,"d":12345678901234567890123,"e":0.1E-7}`, want: `{"a":1.0,"b":1e5,"c":-0,"d":12345678901234567890123,"e":0.1E-7}`},
		{name: "escapes minimal", in: `{"s":"\u003c\/a\u003e \u00e9 \" \\ \n\t\b\f\r \u0001 \u001F \u007f"}`, want: "{\"s\":\"</a> é \\\" \\\\ \\n\\t\\b\\f\\r \\u0001 \\u001f \x7f\"}"},
		{name: "surrogate pair", in: `{"s":"\ud83d\ude00"}`, want: `{"s":"😀"}`},
		{name: "lone surrogate", in: `{"s":"\ud83d x"}`, want: `{"s":"` + "\uFFFD" + ` x"}`},
		{name: "invalid utf8", in: "{\"s\":\"a\xffb\"}", want: "{\"s\":\"a\uFFFDb\"}"},
		{name: "escaped keys sort by decoded bytes", in: `{"a!":1,"a\n":2}`, want: `{"a\n":2,"a!":1}`},
		{name: "literals", in: `[true,false,null]`, want: `[true,false,null]`},
		{name: "duplicate key", in: `{"a":1,"a":2}`, err: "duplicate key"},
		{name: "duplicate key unsorted", in: `{"b":1,"a":1,"b":2}`, err: "duplicate key"},
		{name: "trailing comma", in: `{"a":1,}`, err: "expected a string key"},
		{name: "leading zero", in: `{"a":01}`, err: "expected , or }"},
		{name: "bare dot", in: `{"a":1.}`, err: "invalid number"},
		{name: "control char", in: "{\"a\":\"x\x01\"}", err: "control character"},
		{name: "trailing data", in: `{} {}`, err: "after the value"},
		{name: "deep", in: strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), err: "nested too deeply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := appendCanonicalJSON(nil, []byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			again, err := appendCanonicalJSON(nil, got)
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("not idempotent: %s, %v", again, err)
			}
		})
	}
}

func TestCanonicalStrings(t *testing.T) {
	t.Parallel()
	e := Event{Actor: "a\"b\\c\x00\x1f\u2028</>", Details: []byte(`{}`)}
	c := Canonical(e)
	if !bytes.Contains(c, []byte(`"actor":"a\"b\\c\u0000\u001f`+"\u2028</>\"")) {
		t.Fatalf("actor not canonical: %s", c)
	}
	var back map[string]any
	if err := json.Unmarshal(c, &back); err != nil {
		t.Fatal(err)
	}
	if back["actor"] != e.Actor {
		t.Fatalf("round trip: %q", back["actor"])
	}
	// Empty details hash like {}, invalid ones as a string.
	if !bytes.Equal(Canonical(Event{}), Canonical(Event{Details: []byte("{}")})) {
		t.Fatal("empty details differ from {}")
	}
	if c := Canonical(Event{Details: []byte("{not json")}); !bytes.Contains(c, []byte(`"details":"{not json"`)) {
		t.Fatalf("invalid details: %s", c)
	}
}

// The export line parser and Canonical agree on every event.
func TestLineParserMatchesCanonical(t *testing.T) {
	t.Parallel()
	evs := memChain(50)
	evs[3].Actor = "weird \"actor\"\n\x01é"
	evs[3].Details = []byte(` { "z" : 1 , "a" : "\u00e9" } `)
	evs[3].Hash = HashEvent(evs[3])
	var p lineParser
	for _, e := range evs {
		line := bytes.TrimSuffix(appendEventLine(nil, e), []byte{'\n'})
		var c checked
		p.check(line, &c)
		if c.problem != "" || !c.match {
			t.Fatalf("event %d: %+v\n%s", e.Seq, c, line)
		}
		got, err := p.event(line)
		if err != nil {
			t.Fatal(err)
		}
		if HashEvent(got) != e.Hash || !got.Time.Equal(e.Time) || got.Actor != e.Actor {
			t.Fatalf("event %d differs after parsing: %+v", e.Seq, got)
		}
	}
	// A non-canonical but equivalent line verifies too.
	e := evs[0]
	line := []byte(`{ "hash":"` + e.Hash + `", "prev_hash":"` + e.PrevHash + `","details":{"ttl_s":3600,"scopes":["read","write"],"ip":"10.0.0.0","expires":"2025-04-01T00:00:00Z"},` +
		`"outcome":"ok","target":"service\/shop\/db-0","action":"token.create","actor":"token:ci-deploy","time":"2025-03-01T13:00:00+01:00","seq":1 }`)
	var c checked
	p.check(line, &c)
	if !c.match {
		t.Fatalf("equivalent line does not verify: %+v", c)
	}
	var got Event
	if err := json.Unmarshal(line, &got); err != nil || HashEvent(got) != e.Hash {
		t.Fatalf("encoding/json decode of a line hashes differently: %v", err)
	}
}
