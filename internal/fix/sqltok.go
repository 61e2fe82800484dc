package fix

import (
	"fmt"
	"strings"

	"github.com/stewardhq/steward/internal/dbx"
)

// token kinds of the small SQL scanner. It knows only what matters for
// binding and statement checks: where strings, quoted identifiers and
// comments start and end, and which words and punctuation are outside them.
type tokKind int

const (
	tokWord    tokKind = iota // keyword or bare identifier
	tokQuoted                 // "ident" or `ident`
	tokString                 // '…', E'…', $tag$…$tag$
	tokComment                // -- … , # … (MySQL), /* … */
	tokSpace
	tokParam    // :name
	tokBindMark // ? or $1: a driver placeholder written by hand
	tokPunct    // anything else, one byte (or :: as one token)
)

type token struct {
	kind tokKind
	text string
}

// scan splits q into tokens. It never fails: an unterminated string or
// comment runs to the end of the input (and the database will refuse it).
func scan(engine, q string) []token {
	var out []token
	i := 0
	emit := func(k tokKind, j int) {
		out = append(out, token{k, q[i:j]})
		i = j
	}
	for i < len(q) {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			j := i + 1
			for j < len(q) && strings.IndexByte(" \t\n\r\f\v", q[j]) >= 0 {
				j++
			}
			emit(tokSpace, j)
		case c == '\'':
			emit(tokString, endQuoted(q, i, '\'', engine == dbx.MySQL))
		case c == '"':
			k := tokQuoted
			if engine == dbx.MySQL { // without ANSI_QUOTES, "…" is a string in MySQL
				k = tokString
			}
			emit(k, endQuoted(q, i, '"', engine == dbx.MySQL))
		case c == '`':
			emit(tokQuoted, endQuoted(q, i, '`', false))
		case c == '[' && engine == dbx.SQLite:
			j := strings.IndexByte(q[i+1:], ']')
			if j < 0 {
				emit(tokQuoted, len(q))
			} else {
				emit(tokQuoted, i+1+j+1)
			}
		case c == '-' && i+1 < len(q) && q[i+1] == '-', c == '#' && engine == dbx.MySQL:
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				emit(tokComment, len(q))
			} else {
				emit(tokComment, i+j+1)
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			emit(tokComment, endBlockComment(q, i, engine == dbx.Postgres))
		case c == '$' && engine == dbx.Postgres:
			if j := i + 1; j < len(q) && q[j] >= '0' && q[j] <= '9' {
				for j < len(q) && q[j] >= '0' && q[j] <= '9' {
					j++
				}
				emit(tokBindMark, j)
			} else if tag, ok := dollarTag(q[i:]); ok {
				end := strings.Index(q[i+len(tag):], tag)
				if end < 0 {
					emit(tokString, len(q))
				} else {
					emit(tokString, i+len(tag)+end+len(tag))
				}
			} else {
				emit(tokPunct, i+1)
			}
		case c == '?' && engine != dbx.Postgres:
			emit(tokBindMark, i+1)
		case c == ':':
			switch {
			case i+1 < len(q) && q[i+1] == ':':
				emit(tokPunct, i+2) // PostgreSQL cast ::type
			case i+1 < len(q) && isIdentStart(q[i+1]) && !prevIsIdent(out):
				j := i + 2
				for j < len(q) && isIdentPart(q[j]) {
					j++
				}
				emit(tokParam, j)
			default:
				emit(tokPunct, i+1)
			}
		case (c == 'E' || c == 'e') && engine == dbx.Postgres && i+1 < len(q) && q[i+1] == '\'' && !prevIsIdent(out):
			emit(tokString, endQuoted(q, i+1, '\'', true))
		case isIdentStart(c) || c >= 0x80:
			j := i + 1
			for j < len(q) && (isIdentPart(q[j]) || q[j] >= 0x80 || q[j] == '$') {
				j++
			}
			emit(tokWord, j)
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(q) && (isIdentPart(q[j]) || q[j] == '.') {
				j++
			}
			emit(tokWord, j)
		default:
			emit(tokPunct, i+1)
		}
	}
	return out
}

// prevIsIdent reports whether the last token ends in an identifier
// character, so that "a:b" (e.g. inside an array slice) is not a parameter.
func prevIsIdent(out []token) bool {
	if len(out) == 0 {
		return false
	}
	t := out[len(out)-1]
	if t.kind != tokWord && t.kind != tokQuoted {
		return false
	}
	return true
}

func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentPart(c byte) bool  { return isIdentStart(c) || (c >= '0' && c <= '9') }

// endQuoted returns the index after the quote closing the one at q[i]; a
// doubled quote is an escaped quote, and so is a backslash when backslash.
func endQuoted(q string, i int, quote byte, backslash bool) int {
	for j := i + 1; j < len(q); j++ {
		switch q[j] {
		case '\\':
			if backslash {
				j++
			}
		case quote:
			if j+1 < len(q) && q[j+1] == quote {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(q)
}

// endBlockComment returns the index after the comment starting at q[i];
// PostgreSQL block comments nest.
func endBlockComment(q string, i int, nest bool) int {
	depth := 0
	for j := i; j+1 < len(q); j++ {
		switch {
		case q[j] == '/' && q[j+1] == '*':
			if depth == 0 || nest {
				depth++
			}
			j++
		case q[j] == '*' && q[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(q)
}

// dollarTag returns the $tag$ that opens a dollar-quoted string at s.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		if s[j] == '$' {
			return s[:j+1], true
		}
		if !isIdentPart(s[j]) || (j == 1 && s[j] >= '0' && s[j] <= '9') {
			return "", false
		}
	}
	return "", false
}

// Bind rewrites the :name parameters of q into the engine's placeholders
// and returns the arguments to pass with it. List values expand to
// (p1, p2, …). Values are never written into the SQL: a parameter that is
// missing, a hand-written placeholder (? or $1) or an empty list is an
// error. A :name inside a string, quoted identifier or comment is left
// alone.
func Bind(engine, q string, vals Values) (string, []any, error) {
	var b strings.Builder
	var args []any
	n := 0
	next := func() string {
		n++
		return dbx.Placeholder(engine, n)
	}
	for _, t := range scan(engine, q) {
		switch t.kind {
		case tokParam:
			name := t.text[1:]
			v, ok := vals[name]
			if !ok {
				return "", nil, fmt.Errorf("%w: :%s is used but not declared in params", ErrParam, name)
			}
			if list, isList := v.([]any); isList {
				if len(list) == 0 {
					return "", nil, fmt.Errorf("%w %s: the list is empty", ErrParam, name)
				}
				b.WriteByte('(')
				for i, x := range list {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString(next())
					args = append(args, x)
				}
				b.WriteByte(')')
				continue
			}
			b.WriteString(next())
			args = append(args, v)
		case tokBindMark:
			return "", nil, fmt.Errorf("%w: the statement contains the placeholder %s; write parameters as :name", ErrStatement, t.text)
		default:
			b.WriteString(t.text)
		}
	}
	return b.String(), args, nil
}

// Statement is a single DML statement, as far as guarded changes need to
// understand it.
type Statement struct {
	Verb  string // UPDATE, DELETE or INSERT
	Table string // the target table as written (maybe quoted, schema-qualified)
	Alias string // the target's alias, if any
	// Where is the text after the top-level WHERE (UPDATE and DELETE),
	// without a trailing ORDER BY / LIMIT.
	Where string
	// Simple reports that the statement touches only its target table (no
	// FROM, USING or JOIN), so the rows it changes are exactly the target
	// rows matching Where.
	Simple bool
	Text   string // the statement without a trailing semicolon or comments around it
}

// ParseStatement checks that q is exactly one UPDATE, DELETE or INSERT
// statement and finds its target table and WHERE clause.
func ParseStatement(engine, q string) (Statement, error) {
	toks := scan(engine, q)
	var stmts [][]token
	var cur []token
	for _, t := range toks {
		if t.kind == tokPunct && t.text == ";" {
			stmts = append(stmts, cur)
			cur = nil
			continue
		}
		cur = append(cur, t)
	}
	stmts = append(stmts, cur)
	var nonEmpty [][]token
	for _, s := range stmts {
		if len(significant(s)) > 0 {
			nonEmpty = append(nonEmpty, s)
		}
	}
	if len(nonEmpty) != 1 {
		return Statement{}, fmt.Errorf("%w: want exactly one statement, found %d", ErrStatement, len(nonEmpty))
	}
	body := nonEmpty[0]
	var sig []token
	var pos []int // pos[k]: index in body of sig[k]
	for k, t := range body {
		if t.kind != tokSpace && t.kind != tokComment {
			sig = append(sig, t)
			pos = append(pos, k)
		}
	}
	st := Statement{Verb: strings.ToUpper(sig[0].text), Simple: true}
	// The text, trimmed of leading/trailing space and comments.
	first, last := -1, -1
	for i, t := range body {
		if t.kind != tokSpace && t.kind != tokComment {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	var tb strings.Builder
	for _, t := range body[first : last+1] {
		tb.WriteString(t.text)
	}
	st.Text = tb.String()
	i := 1
	skip := func(words ...string) {
		for i < len(sig) && sig[i].kind == tokWord && containsFold(words, sig[i].text) {
			i++
		}
	}
	switch st.Verb {
	case "UPDATE":
		skip("LOW_PRIORITY", "IGNORE", "ONLY", "OR", "ROLLBACK", "ABORT", "REPLACE", "FAIL")
	case "DELETE":
		skip("LOW_PRIORITY", "QUICK", "IGNORE")
		if i >= len(sig) || !strings.EqualFold(sig[i].text, "FROM") {
			return Statement{}, fmt.Errorf("%w: DELETE must name its table with FROM", ErrStatement)
		}
		i++
		skip("ONLY")
	case "INSERT":
		skip("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "OR", "ROLLBACK", "ABORT", "REPLACE", "FAIL")
		if i >= len(sig) || !strings.EqualFold(sig[i].text, "INTO") {
			return Statement{}, fmt.Errorf("%w: INSERT must name its table with INTO", ErrStatement)
		}
		i++
	default:
		return Statement{}, fmt.Errorf("%w: want one UPDATE, DELETE or INSERT statement, not %s", ErrStatement, strings.ToUpper(sig[0].text))
	}
	// table: ident(.ident)*
	var table strings.Builder
	for {
		if i >= len(sig) || (sig[i].kind != tokWord && sig[i].kind != tokQuoted) {
			return Statement{}, fmt.Errorf("%w: %s names no table", ErrStatement, st.Verb)
		}
		table.WriteString(sig[i].text)
		i++
		if i < len(sig) && sig[i].text == "." {
			table.WriteByte('.')
			i++
			continue
		}
		break
	}
	st.Table = table.String()
	if st.Verb == "INSERT" {
		return st, nil
	}
	// optional alias
	if i < len(sig) && strings.EqualFold(sig[i].text, "AS") {
		i++
	}
	if i < len(sig) && (sig[i].kind == tokQuoted || (sig[i].kind == tokWord && !isKeyword(sig[i].text))) {
		st.Alias = sig[i].text
		i++
	}
	depth := 0
	seenSet := false
	whereAt := -1
	end := len(sig)
	for j := i; j < len(sig); j++ {
		t := sig[j]
		switch {
		case t.text == "(":
			depth++
		case t.text == ")":
			depth--
		case depth == 0 && t.text == "," && !seenSet:
			st.Simple = false // MySQL multi-table UPDATE a, b SET …
		case depth == 0 && t.kind == tokWord:
			switch strings.ToUpper(t.text) {
			case "SET":
				seenSet = true
			case "FROM", "USING", "JOIN":
				st.Simple = false
			case "WHERE":
				if whereAt < 0 {
					whereAt = j
				}
			case "ORDER", "LIMIT", "RETURNING":
				if whereAt >= 0 && end == len(sig) {
					end = j
				}
				if strings.EqualFold(t.text, "RETURNING") {
					return Statement{}, fmt.Errorf("%w: RETURNING is not allowed; Steward reads the changed rows itself", ErrStatement)
				}
				st.Simple = false
			}
		}
	}
	if whereAt < 0 {
		return Statement{}, fmt.Errorf("%w: %s without WHERE would change every row of %s; add a WHERE clause", ErrStatement, st.Verb, st.Table)
	}
	if st.Verb == "UPDATE" && !hasSet(sig[i:]) {
		return Statement{}, fmt.Errorf("%w: UPDATE without SET", ErrStatement)
	}
	// The WHERE text: the original tokens between WHERE and the end.
	from := pos[whereAt] + 1
	to := len(body)
	if end < len(sig) {
		to = pos[end]
	}
	var wb strings.Builder
	for _, t := range body[from:to] {
		if t.kind == tokComment {
			wb.WriteByte(' ')
			continue
		}
		wb.WriteString(t.text)
	}
	st.Where = strings.TrimSpace(wb.String())
	if st.Where == "" {
		return Statement{}, fmt.Errorf("%w: empty WHERE clause", ErrStatement)
	}
	return st, nil
}

func hasSet(sig []token) bool {
	for _, t := range sig {
		if t.kind == tokWord && strings.EqualFold(t.text, "SET") {
			return true
		}
	}
	return false
}

func significant(ts []token) []token {
	var out []token
	for _, t := range ts {
		if t.kind != tokSpace && t.kind != tokComment {
			out = append(out, t)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

var keywords = map[string]bool{"SET": true, "WHERE": true, "FROM": true, "USING": true, "JOIN": true, "ORDER": true, "LIMIT": true,
	"RETURNING": true, "LEFT": true, "INNER": true, "RIGHT": true, "CROSS": true, "NATURAL": true, "VALUES": true, "SELECT": true}

func isKeyword(w string) bool { return keywords[strings.ToUpper(w)] }

// SingleQuery checks that q is exactly one SELECT (or WITH … SELECT) and
// returns it without surrounding comments, spaces and semicolons.
func SingleQuery(engine, q string) (string, error) {
	var parts [][]token
	var cur []token
	for _, t := range scan(engine, q) {
		if t.kind == tokPunct && t.text == ";" {
			parts = append(parts, cur)
			cur = nil
			continue
		}
		cur = append(cur, t)
	}
	parts = append(parts, cur)
	var body []token
	n := 0
	for _, p := range parts {
		if len(significant(p)) > 0 {
			body = p
			n++
		}
	}
	if n != 1 {
		return "", fmt.Errorf("%w: want exactly one query, found %d statements", ErrStatement, n)
	}
	first := significant(body)[0]
	if w := strings.ToUpper(first.text); w != "SELECT" && w != "WITH" {
		return "", fmt.Errorf("%w: want a SELECT, not %s", ErrStatement, w)
	}
	lo, hi := 0, len(body)
	for lo < hi && (body[lo].kind == tokSpace || body[lo].kind == tokComment) {
		lo++
	}
	for hi > lo && (body[hi-1].kind == tokSpace || body[hi-1].kind == tokComment) {
		hi--
	}
	var b strings.Builder
	for _, t := range body[lo:hi] {
		b.WriteString(t.text)
	}
	return b.String(), nil
}
