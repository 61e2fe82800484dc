package value

import (
	"fmt"
	"strconv"
	"time"
)

// Format renders v, as scanned into an any by database/sql or pgx.
func Format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case time.Time:
		return Time(x)
	case []byte:
		return string(x)
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int:
		return strconv.Itoa(x)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	case fmt.Stringer:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

// Time renders t in RFC 3339, UTC, with fractional seconds when it has them.
func Time(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// sqliteLayouts are the text forms SQLite's date functions produce and
// applications commonly store.
var sqliteLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
}

// ParseSQLiteTime reports whether s is entirely a timestamp in one of
// SQLite's text forms (a naive one is taken as UTC), and returns it.
func ParseSQLiteTime(s string) (time.Time, bool) {
	if len(s) < 16 || len(s) > 40 || s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	for _, l := range sqliteLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
