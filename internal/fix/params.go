package fix

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/dbx"
)

// Sentinel errors callers branch on.
var (
	// ErrParam: a parameter is missing, unknown, or not of its declared type.
	ErrParam = errors.New("bad fix parameter")
	// ErrStatement: the SQL is not one acceptable DML statement.
	ErrStatement = errors.New("statement refused")
	// ErrNothingToFix: the select found no rows.
	ErrNothingToFix = errors.New("nothing to fix")
	// ErrTooManyRows: the select found more rows than max_rows.
	ErrTooManyRows = errors.New("too many rows")
	// ErrDataChanged: the locked rows are not the approved rows.
	ErrDataChanged = errors.New("data changed since review, re-plan")
	// ErrRowCount: the statement changed another number of rows than
	// approved (the transaction was rolled back).
	ErrRowCount = errors.New("affected rows differ from the approved count")
	// ErrImagesPending: the images of an action were never marked applied,
	// so whether its change committed is unknown.
	ErrImagesPending = errors.New("before-images pending: outcome unknown")
	// ErrNothingToUndo: no row of the change can be restored.
	ErrNothingToUndo = errors.New("nothing to undo")
	// ErrUnknownFix: no such service, fix or database.
	ErrUnknownFix = errors.New("unknown fix")
)

// Values are parsed, typed parameter values by name: int64, string (also
// uuid), time.Time, or []any of those for list types.
type Values map[string]any

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ParseParams parses raw values (as given with --param k=v) against the
// declared types (name -> int, string, uuid, timestamp, or []T). Every
// declared parameter is required and no undeclared one is accepted. A list
// is a JSON array (["a","b"], [1,2]) or comma-separated (1,2,3).
func ParseParams(decl map[string]string, raw map[string]string) (Values, error) {
	var errs []string
	for name := range raw {
		if _, ok := decl[name]; !ok {
			errs = append(errs, fmt.Sprintf("unknown parameter %q (declared: %s)", name, declared(decl)))
		}
	}
	out := Values{}
	for _, name := range sortedKeys(decl) {
		typ := decl[name]
		v, ok := raw[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("parameter %s (%s) is missing: pass --param %s=…", name, typ, name))
			continue
		}
		val, err := parseTyped(name, typ, v)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		out[name] = val
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("%w: %s", ErrParam, strings.Join(errs, "; "))
	}
	return out, nil
}

func parseTyped(name, typ, v string) (any, error) {
	elem, isList := strings.CutPrefix(typ, "[]")
	if !isList {
		return parseScalar(name, typ, v)
	}
	var items []string
	if t := strings.TrimSpace(v); strings.HasPrefix(t, "[") {
		var arr []any
		dec := json.NewDecoder(strings.NewReader(t))
		dec.UseNumber()
		if err := dec.Decode(&arr); err != nil {
			return nil, fmt.Errorf("parameter %s (%s): %q is not a JSON array", name, typ, shorten(v))
		}
		for _, x := range arr {
			switch x := x.(type) {
			case string:
				items = append(items, x)
			case json.Number:
				items = append(items, x.String())
			default:
				return nil, fmt.Errorf("parameter %s (%s): list items must be strings or numbers", name, typ)
			}
		}
	} else if t != "" {
		for _, s := range strings.Split(v, ",") {
			items = append(items, strings.TrimSpace(s))
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("parameter %s (%s): the list is empty", name, typ)
	}
	if len(items) > 10000 {
		return nil, fmt.Errorf("parameter %s (%s): %d items, at most 10000", name, typ, len(items))
	}
	list := make([]any, 0, len(items))
	for i, s := range items {
		x, err := parseScalar(fmt.Sprintf("%s[%d]", name, i), elem, s)
		if err != nil {
			return nil, err
		}
		list = append(list, x)
	}
	return list, nil
}

func parseScalar(name, typ, v string) (any, error) {
	switch typ {
	case "int":
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parameter %s (int): %q is not an integer", name, shorten(v))
		}
		return n, nil
	case "string":
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("parameter %s (string): contains a NUL byte", name)
		}
		return v, nil
	case "uuid":
		if !uuidRE.MatchString(strings.TrimSpace(v)) {
			return nil, fmt.Errorf("parameter %s (uuid): %q is not a UUID like 0b7e…-…", name, shorten(v))
		}
		return strings.ToLower(strings.TrimSpace(v)), nil
	case "timestamp":
		s := strings.TrimSpace(v)
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
		}
		return nil, fmt.Errorf("parameter %s (timestamp): %q is not a time like 2024-05-01T12:00:00Z or 2024-05-01", name, shorten(v))
	default:
		return nil, fmt.Errorf("parameter %s has unknown type %q", name, typ)
	}
}

// engineArgs adapts bound arguments to the engine's driver: SQLite keeps
// times as text, so a timestamp is passed in SQLite's own text form.
func engineArgs(engine string, args []any) []any {
	if engine != dbx.SQLite {
		return args
	}
	out := make([]any, len(args))
	for i, a := range args {
		if t, ok := a.(time.Time); ok {
			out[i] = t.UTC().Format("2006-01-02 15:04:05.999999999")
			continue
		}
		out[i] = a
	}
	return out
}

func declared(decl map[string]string) string {
	if len(decl) == 0 {
		return "none"
	}
	return strings.Join(sortedKeys(decl), ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func shorten(v string) string {
	if len(v) > 60 {
		return v[:60] + "…"
	}
	return v
}
