package integrity

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

// toInt64 converts what drivers return for a count or a sum.
func toInt64(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case int64:
		return x, nil
	case int32:
		return int64(x), nil
	case int:
		return int64(x), nil
	case uint64:
		return int64(x), nil
	case float64:
		return int64(x), nil
	case []byte:
		return parseInt(string(x))
	case string:
		return parseInt(x)
	}
	return 0, fmt.Errorf("unexpected count %T", v)
}

func parseInt(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	// DECIMAL sums: "12" or "12.0000"
	r, ok := new(big.Rat).SetString(s)
	if !ok || !r.IsInt() {
		return 0, fmt.Errorf("unexpected count %q", s)
	}
	return r.Num().Int64(), nil
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02",
}

// toTime reads the newest value of a freshness column: a timestamp, a text
// timestamp (SQLite; UTC when it has no zone), or Unix seconds.
func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case int64:
		return time.Unix(x, 0), nil
	case float64:
		return time.Unix(0, int64(x*1e9)), nil
	case []byte:
		return toTime(string(x))
	case string:
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, x); err == nil {
				return t, nil
			}
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.Unix(n, 0), nil
		}
		return time.Time{}, fmt.Errorf("%q is not a timestamp", x)
	}
	return time.Time{}, fmt.Errorf("%T is not a timestamp", v)
}

// maxValue keeps the newer of two max() results across chunks.
func maxValue(a, b any) any {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	ta, ea := toTime(a)
	tb, eb := toTime(b)
	if ea == nil && eb == nil && tb.After(ta) {
		return b
	}
	return a
}

// normalize turns driver values into JSON-friendly ones: text as strings,
// MySQL integers read as text back into numbers.
func normalize(v any, dbType string) any {
	b, ok := v.([]byte)
	if !ok {
		return v
	}
	s := string(b)
	switch strings.ToUpper(dbType) {
	case "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "MEDIUMINT", "UNSIGNED INT", "UNSIGNED BIGINT", "UNSIGNED SMALLINT", "UNSIGNED TINYINT", "UNSIGNED MEDIUMINT", "INT2", "INT4", "INT8":
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}

// mask replaces a value with a short SHA-256 prefix; NULL stays NULL.
func mask(v any) any {
	if v == nil {
		return nil
	}
	var s string
	switch x := v.(type) {
	case time.Time:
		s = x.UTC().Format(time.RFC3339Nano)
	default:
		s = fmt.Sprint(x)
	}
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])[:16]
}

// rowKey is the canonical key of a row: its key columns as a JSON object.
func rowKey(row map[string]any, key []string) string {
	m := make(map[string]any, len(key))
	for _, k := range key {
		m[k] = row[k]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// finishSample masks the violating rows, derives their keys, and keeps the
// first Sample of them as the result's sample.
func finishSample(c *config.Check, r *Result) {
	r.Sample = []map[string]any{}
	r.keys = nil
	for _, row := range r.rows {
		out := make(map[string]any, len(row))
		for col, v := range row {
			if slices.Contains(c.Mask, col) {
				v = mask(v)
			}
			out[col] = v
		}
		if !r.noKeys {
			key := keyCols(c)
			if r.keyOverride != nil {
				key = r.keyOverride
			}
			r.keys = append(r.keys, rowKey(out, key))
		}
		if len(r.Sample) < c.Sample {
			r.Sample = append(r.Sample, out)
		}
		r.violating = append(r.violating, out)
	}
	r.rows = nil
}
