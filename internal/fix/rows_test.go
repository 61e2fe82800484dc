package fix

import (
	"encoding/json"
	"math"
	"testing"
)

// The images and keys are written by appendJSON and read back through
// encoding/json: both must spell every normalized value the same way.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	vals := []any{nil, int64(0), int64(-42), int64(math.MaxInt64), true, false, 1.5, 0.1, 1e21, 1e-7, "inf",
		"", "plain text 123", `quote " and \ backslash`, "<b>&amp;</b>", "tab\tnew\nline", "\x00\x1f\x7f", "héllo wörld ✓",
		"\u2028\u2029", "bad \xff utf-8", "2024-05-01T10:00:00Z", map[string]any{"base64": "AAEC"}}
	for _, v := range vals {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(appendJSON(nil, v)); got != string(want) {
			t.Errorf("%#v: appendJSON %s, encoding/json %s", v, got, want)
		}
	}
	rs := rowset{cols: []string{"id", "zeta", "alpha", "<x>"}, rows: [][]any{{int64(7), "z\"", nil, map[string]any{"base64": "AA=="}}}}
	if got, want := keyOf(rs.rows[0], []int{0, 1}), mustJSON([]any{int64(7), "z\""}); got != want {
		t.Errorf("keyOf %s, want %s", got, want)
	}
}

// Stored images (column arrays, after-images as patches) read back as the
// objects the rows encode to.
func TestImagesExpandToObjects(t *testing.T) {
	t.Parallel()
	cols := []string{"id", "note", "blob", "status", "amount", "tags"}
	before := rowset{cols: cols, rows: [][]any{{int64(7), "a, [b] {c}", map[string]any{"base64": "AA=="}, "pending", 1.5, `say "hi", \ ok`}}}
	after := rowset{cols: cols, rows: [][]any{{int64(7), "a, [b] {c}", map[string]any{"base64": "AQ=="}, "cancelled", 1.5, nil}}}
	b, a := arrayOf(before, 0), arrayOf(after, 0)
	patch := patchOf(b, a)
	if patch != `{"2":{"base64":"AQ=="},"3":"cancelled","5":null}` {
		t.Fatalf("patch %s", patch)
	}
	for _, tc := range []struct{ name, before, after, wantBefore, wantAfter string }{
		{"update", b, patch, mustJSON(before.object(0)), mustJSON(after.object(0))},
		{"update, full after", b, a, mustJSON(before.object(0)), mustJSON(after.object(0))},
		{"no change", b, patchOf(b, b), mustJSON(before.object(0)), mustJSON(before.object(0))},
		{"insert", "null", a, "null", mustJSON(after.object(0))},
		{"delete", b, "null", mustJSON(before.object(0)), "null"},
	} {
		gb, ga, err := expandImage(cols, tc.before, tc.after)
		if err != nil || gb != tc.wantBefore || ga != tc.wantAfter {
			t.Errorf("%s: %s / %s (%v), want %s / %s", tc.name, gb, ga, err, tc.wantBefore, tc.wantAfter)
		}
	}
	for _, bad := range [][2]string{{`[1,2]`, "null"}, {b, `{"9":1}`}, {"null", `{"1":1}`}} {
		if _, _, err := expandImage(cols, bad[0], bad[1]); err == nil {
			t.Errorf("accepted %s / %s", bad[0], bad[1])
		}
	}
}

func TestPlainKey(t *testing.T) {
	t.Parallel()
	for k, want := range map[string]any{`[12]`: int64(12), `[-3]`: int64(-3), `["ab-c"]`: "ab-c", `[""]`: ""} {
		if got, ok := plainKey(k); !ok || got != want {
			t.Errorf("%s: %#v %v", k, got, ok)
		}
	}
	for _, k := range []string{`[1.5]`, `["a\"b"]`, `[1,2]`, `["a\u00e9"]`, `[]`, `12`, `[true]`} {
		if got, ok := plainKey(k); ok {
			// Anything plainKey accepts must decode the same as keyArgs.
			vals, err := keyArgs(k)
			if err != nil || len(vals) != 1 || vals[0] != got {
				t.Errorf("%s: plainKey %#v, keyArgs %#v %v", k, got, vals, err)
			}
		}
	}
}

// arrayOf is row i of rs as stored in an image.
func arrayOf(rs rowset, i int) string { return string(appendArray(nil, rs.rows[i])) }
