package fix

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stewardhq/steward/internal/dbx"
)

// querier is a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// rowset is a query result with values normalized for JSON: int64,
// float64, bool, string, nil, or {"base64": …} for binary data. Times are
// UTC text (RFC 3339 on PostgreSQL, YYYY-MM-DD HH:MM:SS.ffffff on MySQL
// and SQLite, which take no zone), so that an
// image read twice compares equal and can be written back.
type rowset struct {
	cols []string
	rows [][]any
}

func queryRows(ctx context.Context, q querier, engine, query string, args ...any) (rowset, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return rowset{}, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return rowset{}, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return rowset{}, err
	}
	rs := rowset{cols: cols}
	raw := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return rowset{}, err
		}
		row := make([]any, len(cols))
		for i, v := range raw {
			row[i] = normalize(engine, v, types[i])
		}
		rs.rows = append(rs.rows, row)
	}
	return rs, rows.Err()
}

func normalize(engine string, v any, ct *sql.ColumnType) any {
	switch v := v.(type) {
	case nil, int64, bool, string:
		return v
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return strconv.FormatFloat(v, 'g', -1, 64)
		}
		return v
	case []byte:
		st := ct.ScanType()
		if st != nil {
			switch st.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
					return n
				}
			case reflect.Float32, reflect.Float64:
				if f, err := strconv.ParseFloat(string(v), 64); err == nil {
					return f
				}
			case reflect.Slice: // bytea, BLOB: keep the bytes exactly
				return map[string]any{"base64": base64.StdEncoding.EncodeToString(v)}
			}
			if st == reflect.TypeOf(sql.NullInt64{}) || st == reflect.TypeOf(sql.NullInt32{}) || st == reflect.TypeOf(sql.NullInt16{}) {
				if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
					return n
				}
			}
		}
		if utf8.Valid(v) {
			return string(v)
		}
		return map[string]any{"base64": base64.StdEncoding.EncodeToString(v)}
	case time.Time:
		switch engine {
		case dbx.SQLite:
			return v.UTC().Format("2006-01-02 15:04:05.999999999")
		case dbx.MySQL: // DATETIME takes no zone; the driver reads and writes UTC
			return v.UTC().Format("2006-01-02 15:04:05.999999")
		}
		return v.UTC().Format(time.RFC3339Nano)
	case int32:
		return int64(v)
	case float32:
		return normalize(engine, float64(v), ct)
	default:
		return fmt.Sprint(v)
	}
}

// bindValue turns a value decoded from an image (UseNumber) back into a
// driver argument.
func bindValue(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		return v.String()
	case map[string]any:
		if s, ok := v["base64"].(string); ok && len(v) == 1 {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				return b
			}
		}
		b, _ := json.Marshal(v)
		return string(b)
	default:
		return v
	}
}

// object is one row as a JSON object (column -> value).
func (rs rowset) object(i int) map[string]any {
	m := make(map[string]any, len(rs.cols))
	for j, c := range rs.cols {
		m[c] = rs.rows[i][j]
	}
	return m
}

// colIndex finds the key columns in the result, case-insensitively.
func (rs rowset) colIndex(keyCols []string) ([]int, error) {
	idx := make([]int, len(keyCols))
	for k, kc := range keyCols {
		idx[k] = -1
		for j, c := range rs.cols {
			if strings.EqualFold(c, kc) {
				idx[k] = j
				break
			}
		}
		if idx[k] < 0 {
			return nil, fmt.Errorf("%w: the rows have no key column %q (columns: %s); select the key, or set key: in the fix", ErrStatement, kc, strings.Join(rs.cols, ", "))
		}
	}
	return idx, nil
}

// keyOf is the canonical text of a row's key: a JSON array of its values.
func keyOf(row []any, idx []int) string {
	b := make([]byte, 0, 16)
	b = append(b, '[')
	for k, j := range idx {
		if k > 0 {
			b = append(b, ',')
		}
		b = appendJSON(b, row[j])
	}
	return string(append(b, ']'))
}

// appendArray appends a row as a JSON array of its values, in column
// order: the compact form images are stored in (the columns are stored
// once per set).
func appendArray(b []byte, row []any) []byte {
	b = append(b, '[')
	for j, v := range row {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendJSON(b, v)
	}
	return append(b, ']')
}

// appendJSON appends a normalized value as encoding/json writes it, byte
// for byte (TestAppendJSONMatchesEncodingJSON), without its reflection on
// the common types.
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case bool:
		return strconv.AppendBool(b, v)
	case string:
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return append(b, mustJSON(v)...) // escaping: leave it to encoding/json
			}
		}
		b = append(b, '"')
		b = append(b, v...)
		return append(b, '"')
	default:
		return append(b, mustJSON(v)...)
	}
}

// keyArgs decodes a canonical key back into bind arguments.
func keyArgs(key string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(key))
	dec.UseNumber()
	var vals []any
	if err := dec.Decode(&vals); err != nil {
		return nil, fmt.Errorf("bad row key %q: %w", key, err)
	}
	for i, v := range vals {
		vals[i] = bindValue(v)
	}
	return vals, nil
}

// keysHash identifies a set of keys, whatever their order.
func keysHash(keys []string) string {
	s := append([]string(nil), keys...)
	sort.Strings(s)
	h := sha256.New()
	for _, k := range s {
		h.Write([]byte(k))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// maskValue hashes a value for previews.
func maskValue(v any) any {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:8])
}

// keyChunk is how many keys one IN list holds.
const keyChunk = 1000

// selectByKeys reads the full rows of table whose key is in keys, in
// chunks; forUpdate locks them (PostgreSQL, MySQL).
func selectByKeys(ctx context.Context, q querier, engine, table string, keyCols, keys []string, forUpdate bool) (rowset, error) {
	var all rowset
	err := byKeys(engine, table, keyCols, keys, forUpdate, len(keys), func(_ []string, query string, args []any) error {
		rs, err := queryRows(ctx, q, engine, query, args...)
		if err != nil {
			return fmt.Errorf("read rows of %s: %w", table, err)
		}
		if all.cols == nil {
			all.cols = rs.cols
		}
		all.rows = append(all.rows, rs.rows...)
		return nil
	})
	return all, err
}

// byKeys builds the queries that read the full rows of table whose key is
// in keys, at most chunk keys per query (and at most keyChunk in an IN
// list), in the order of keys, and passes each with its part of keys to
// fn.
func byKeys(engine, table string, keyCols, keys []string, forUpdate bool, chunk int, fn func(part []string, query string, args []any) error) error {
	lock := ""
	if forUpdate && engine != dbx.SQLite {
		lock = " FOR UPDATE"
	}
	if arr, ok := keyArray(engine, keyCols, keys); ok {
		// k = ANY($1), with the keys as one array: one round trip a chunk.
		query := "SELECT * FROM " + table + " WHERE " + dbx.QuoteIdent(engine, keyCols[0]) + " = ANY($1)" + lock
		chunk = max(chunk, 1)
		for start := 0; start < len(keys); start += chunk {
			end := min(start+chunk, len(keys))
			var part any
			switch a := arr.(type) {
			case []int64:
				part = a[start:end]
			case []string:
				part = a[start:end]
			}
			if err := fn(keys[start:end], query, []any{part}); err != nil {
				return err
			}
		}
		return nil
	}
	chunk = max(min(chunk, keyChunk), 1)
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(start+chunk, len(keys))]
		cond, args, err := keyCondition(engine, keyCols, part, 0)
		if err != nil {
			return err
		}
		if err := fn(part, "SELECT * FROM "+table+" WHERE "+cond+lock, args); err != nil {
			return err
		}
	}
	return nil
}

// encodedRows are rows as images: each row's canonical key and its JSON
// array of values, encoded while scanning so that no row is kept as Go
// values.
type encodedRows struct {
	cols []string
	keys []string
	docs []string // nil when not asked for
}

// queryEncoded runs query and encodes each row's key (keyCols) and, with
// docs, the row itself as a JSON array.
func queryEncoded(ctx context.Context, q querier, engine string, keyCols []string, docs bool, query string, args ...any) (encodedRows, error) {
	var er encodedRows
	cols, err := scanEncoded(ctx, q, engine, keyCols, docs, query, args, func(key, doc string) error {
		er.keys = append(er.keys, key)
		if docs {
			er.docs = append(er.docs, doc)
		}
		return nil
	})
	if err != nil {
		return encodedRows{}, err
	}
	er.cols = cols
	return er, nil
}

// scanEncoded runs query and passes each row, as it is scanned, to fn:
// its key (keyCols) and, with docs, the row as a JSON array. No row is
// kept as Go values. It returns the columns.
func scanEncoded(ctx context.Context, q querier, engine string, keyCols []string, docs bool, query string, args []any, fn func(key, doc string) error) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	idx, err := rowset{cols: cols}.colIndex(keyCols)
	if err != nil {
		return nil, err
	}
	raw := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	norm := make([]any, len(cols))
	var buf []byte
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range raw {
			norm[i] = normalize(engine, v, types[i])
		}
		var doc string
		if docs {
			buf = appendArray(buf[:0], norm)
			doc = string(buf)
		}
		if err := fn(keyOf(norm, idx), doc); err != nil {
			return nil, err
		}
	}
	return cols, rows.Err()
}

// keyArray returns the keys as one PostgreSQL array argument, when there
// is one key column and its values are all integers or all strings.
func keyArray(engine string, keyCols, keys []string) (any, bool) {
	if engine != dbx.Postgres || len(keyCols) != 1 || len(keys) < 2 {
		return nil, false
	}
	var ints []int64
	var strs []string
	for _, k := range keys {
		v, ok := plainKey(k)
		if !ok {
			vals, err := keyArgs(k)
			if err != nil || len(vals) != 1 {
				return nil, false
			}
			v = vals[0]
		}
		switch v := v.(type) {
		case int64:
			if strs != nil {
				return nil, false
			}
			ints = append(ints, v)
		case string:
			if ints != nil {
				return nil, false
			}
			strs = append(strs, v)
		default:
			return nil, false
		}
	}
	if ints != nil {
		return ints, true
	}
	return strs, true
}

// plainKey decodes the common one-value keys, [123] and ["abc"] (no
// escapes), without a JSON decoder; ok is false for any other key.
func plainKey(k string) (any, bool) {
	if len(k) < 3 || k[0] != '[' || k[len(k)-1] != ']' {
		return nil, false
	}
	in := k[1 : len(k)-1]
	if len(in) >= 2 && in[0] == '"' && in[len(in)-1] == '"' {
		s := in[1 : len(in)-1]
		if strings.ContainsAny(s, `"\`) {
			return nil, false
		}
		return s, true
	}
	n, err := strconv.ParseInt(in, 10, 64)
	if err != nil {
		return nil, false
	}
	return n, true
}

// keyCondition is "k IN (…)" or "(k1, k2) IN ((…), …)" for keys, with
// placeholders numbered from offset+1.
func keyCondition(engine string, keyCols, keys []string, offset int) (string, []any, error) {
	var b strings.Builder
	var args []any
	n := offset
	cols := make([]string, len(keyCols))
	for i, c := range keyCols {
		cols[i] = dbx.QuoteIdent(engine, c)
	}
	if len(cols) == 1 {
		b.WriteString(cols[0] + " IN (")
	} else {
		b.WriteString("(" + strings.Join(cols, ", ") + ") IN (")
	}
	for i, k := range keys {
		vals, err := keyArgs(k)
		if err != nil {
			return "", nil, err
		}
		if len(vals) != len(keyCols) {
			return "", nil, fmt.Errorf("row key %s has %d values for %d key columns", k, len(vals), len(keyCols))
		}
		if i > 0 {
			b.WriteByte(',')
		}
		if len(cols) > 1 {
			b.WriteByte('(')
		}
		for j, v := range vals {
			if j > 0 {
				b.WriteByte(',')
			}
			n++
			b.WriteString(dbx.Placeholder(engine, n))
			args = append(args, v)
		}
		if len(cols) > 1 {
			b.WriteByte(')')
		}
	}
	b.WriteByte(')')
	return b.String(), args, nil
}

// keyEquals is "k1 = ? AND k2 = ?" numbered from offset+1.
func keyEquals(engine string, keyCols []string, offset int) string {
	parts := make([]string, len(keyCols))
	for i, c := range keyCols {
		parts[i] = dbx.QuoteIdent(engine, c) + " = " + dbx.Placeholder(engine, offset+i+1)
	}
	return strings.Join(parts, " AND ")
}

// primaryKey discovers the primary key columns of table.
func primaryKey(ctx context.Context, q querier, engine, table string) ([]string, error) {
	schema, name := "", unquote(table)
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		schema, name = name[:i], name[i+1:]
	}
	var query string
	var args []any
	switch engine {
	case dbx.Postgres:
		query = `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indisprimary AND i.indrelid = to_regclass($1) ORDER BY array_position(i.indkey, a.attnum)`
		args = []any{table} // as written: to_regclass folds and unquotes like the statement does
	case dbx.MySQL:
		query = `SELECT column_name FROM information_schema.key_column_usage WHERE constraint_name = 'PRIMARY' AND table_name = ? AND table_schema = COALESCE(NULLIF(?, ''), DATABASE()) ORDER BY ordinal_position`
		args = []any{name, schema}
	case dbx.SQLite:
		query = `SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`
		args = []any{name}
	}
	rs, err := queryRows(ctx, q, engine, query, args...)
	if err != nil {
		return nil, fmt.Errorf("find the primary key of %s: %w", table, err)
	}
	var out []string
	for _, r := range rs.rows {
		out = append(out, fmt.Sprint(r[0]))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: table %s has no primary key; guarded changes need one to keep before-images", ErrStatement, table)
	}
	return out, nil
}

// unquote strips identifier quotes from a (maybe qualified) table name.
func unquote(t string) string {
	return strings.NewReplacer(`"`, "", "`", "", "[", "", "]", "").Replace(t)
}
