package fix

import (
	"errors"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/dbx"
)

func TestBind(t *testing.T) {
	t.Parallel()
	vals := Values{"id": int64(7), "ids": []any{int64(1), int64(2)}, "s": "x"}
	for _, tc := range []struct {
		engine, in, want string
		args             int
	}{
		{dbx.Postgres, "SELECT * FROM t WHERE id = :id AND k IN :ids", "SELECT * FROM t WHERE id = $1 AND k IN ($2,$3)", 3},
		{dbx.MySQL, "SELECT * FROM t WHERE id = :id AND k IN :ids", "SELECT * FROM t WHERE id = ? AND k IN (?,?)", 3},
		{dbx.Postgres, "SELECT ':id', \":id\", x::text FROM t -- :id\nWHERE /* :id /* nested :id */ :id */ a = :s", "SELECT ':id', \":id\", x::text FROM t -- :id\nWHERE /* :id /* nested :id */ :id */ a = $1", 1},
		{dbx.Postgres, "SELECT $$ :id $$, $tag$ :id $tag$, E'\\' :id' WHERE a = :id", "SELECT $$ :id $$, $tag$ :id $tag$, E'\\' :id' WHERE a = $1", 1},
		{dbx.MySQL, "SELECT ':id', `:id`, 'it\\'s :id' # :id\nWHERE a = :id", "SELECT ':id', `:id`, 'it\\'s :id' # :id\nWHERE a = ?", 1},
		{dbx.SQLite, "SELECT 'a '' :id', [:id] WHERE a = :id", "SELECT 'a '' :id', [:id] WHERE a = ?", 1},
	} {
		got, args, err := Bind(tc.engine, tc.in, vals)
		if err != nil || got != tc.want || len(args) != tc.args {
			t.Errorf("%s %q:\n got %q %v %v\nwant %q (%d args)", tc.engine, tc.in, got, args, err, tc.want, tc.args)
		}
	}
	for _, bad := range []string{"SELECT :nope", "SELECT ?", "SELECT :e"} {
		_, _, err := Bind(dbx.MySQL, bad, Values{"e": []any{}})
		if err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, _, err := Bind(dbx.Postgres, "SELECT $1", nil); !errors.Is(err, ErrStatement) {
		t.Errorf("$1: %v", err)
	}
}

func TestParseStatement(t *testing.T) {
	t.Parallel()
	ok := []struct{ in, verb, table, where string }{
		{"UPDATE orders SET status = 'x' WHERE id = 1;", "UPDATE", "orders", "id = 1"},
		{"-- c\nDELETE FROM public.\"Orders\" o WHERE o.id IN (SELECT 1 WHERE true) ;\n-- end", "DELETE", "public.\"Orders\"", "o.id IN (SELECT 1 WHERE true)"},
		{"update t set a = (select b from c where d) where e", "UPDATE", "t", "e"},
		{"INSERT INTO t (a) VALUES (1)", "INSERT", "t", ""},
	}
	for _, tc := range ok {
		st, err := ParseStatement(dbx.Postgres, tc.in)
		if err != nil || st.Verb != tc.verb || st.Table != tc.table || st.Where != tc.where {
			t.Errorf("%q: %+v %v", tc.in, st, err)
		}
	}
	for in, want := range map[string]string{
		"UPDATE t SET a = 1":                            "without WHERE",
		"DELETE FROM t":                                 "without WHERE",
		"DELETE FROM t -- WHERE id = 1":                 "without WHERE",
		"UPDATE t SET a = 'WHERE x'":                    "without WHERE",
		"UPDATE t SET a = 1 WHERE id = 1; DROP TABLE t": "exactly one statement",
		"SELECT 1":   "not SELECT",
		"TRUNCATE t": "not TRUNCATE",
		"":           "found 0",
	} {
		if _, err := ParseStatement(dbx.Postgres, in); !errors.Is(err, ErrStatement) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// FuzzBind: binding never panics, never writes a value into the SQL, and
// passes exactly one argument per placeholder.
func FuzzBind(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM t WHERE a = :v", "SELECT ':v' -- :v\n, :v", "SELECT $$ :v $$, :v", "/* :v */ :v::int", "SELECT `:v`, \":v\", [:v], :v",
		"SELECT E'\\':v', :v", "SELECT :v, :vv, :v_1", "a:v", "'", "/*", "$a$", ":", "::v", "SELECT :l",
	} {
		f.Add(s, "x' OR '1'='1", uint8(0))
	}
	const marker = "'; DROP TABLE t; --"
	f.Fuzz(func(t *testing.T, q, v string, e uint8) {
		engine := engines[int(e)%len(engines)]
		val := marker + v
		vals := Values{"v": val, "vv": int64(1), "v_1": val, "l": []any{val, val}}
		out, args, err := Bind(engine, q, vals)
		if err != nil {
			return
		}
		if !strings.Contains(q, marker) && strings.Contains(out, marker) {
			t.Fatalf("value written into SQL: %q -> %q", q, out)
		}
		n := 0
		for _, tok := range scan(engine, out) {
			if tok.kind == tokBindMark {
				n++
			}
		}
		if engine != dbx.Postgres || !strings.Contains(q, "$") {
			if n != len(args) {
				t.Fatalf("%d placeholders, %d args: %q -> %q", n, len(args), q, out)
			}
		}
	})
}
