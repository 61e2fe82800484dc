package drill

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/integrity"
)

// expectation turns a verify expect into a full expression over value: a
// leading operator ("== 0", "> 1000", "in [1, 2]") is applied to value;
// anything else is used as written and must mention value.
func expectation(expect string) string {
	e := strings.TrimSpace(expect)
	for _, op := range []string{"==", "!=", ">=", "<=", ">", "<", "in ", "not in ", "matches ", "contains ", "startsWith ", "endsWith "} {
		if strings.HasPrefix(e, op) {
			return "value " + e
		}
	}
	return e
}

// typedValue gives a query result the type expressions compare it as:
// integers and decimals are numbers (compared numerically), anything else
// stays a string; NULL is "".
func typedValue(v string) any {
	s := strings.TrimSpace(v)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return f
	}
	switch strings.ToLower(s) {
	case "true", "t":
		return true
	case "false", "f":
		return false
	}
	return v
}

// CheckExpect evaluates expect against a query's value. It returns whether
// the value satisfies it, or an error when the expression is invalid.
func CheckExpect(expect, value string) (bool, error) {
	src := expectation(expect)
	env := map[string]any{"value": typedValue(value)}
	prog, err := expr.Compile(src, expr.Env(env), expr.AsBool())
	if err != nil {
		// The expression is fine for another type of value (a number
		// compared with text, say): the value does not satisfy it.
		if verr := ValidateExpect(expect); verr != nil {
			return false, verr
		}
		return false, nil
	}
	out, err := expr.Run(prog, env)
	if err != nil {
		return false, fmt.Errorf("evaluate expect %q with value %q: %w", expect, value, err)
	}
	return out.(bool), nil
}

// ValidateExpect reports whether expect compiles, for a number and for a
// string value.
func ValidateExpect(expect string) error {
	src := expectation(expect)
	var first error
	for _, v := range []any{int64(0), ""} {
		_, err := expr.Compile(src, expr.Env(map[string]any{"value": v}), expr.AsBool())
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return fmt.Errorf("invalid expect %q: %w", expect, first)
}

// compareRowCounts compares restored row counts with the manifest's:
// "exact" or a tolerance like "1%". It returns a failure detail per table,
// sorted, and a summary.
func compareRowCounts(mode string, want, got map[string]int64) (problems []string, summary string, err error) {
	tol := 0.0
	if mode != "exact" {
		if tol, err = config.ParsePercent(mode); err != nil {
			return nil, "", fmt.Errorf("row_counts %q: %w", mode, err)
		}
	}
	var rows int64
	for table, w := range want {
		g, ok := got[table]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: missing from the restored copy (manifest: %d rows)", table, w))
		case tol == 0 && g != w:
			problems = append(problems, fmt.Sprintf("%s: %d rows, manifest %d", table, g, w))
		case tol > 0 && math.Abs(float64(g-w)) > tol*float64(w):
			problems = append(problems, fmt.Sprintf("%s: %d rows, manifest %d (off by more than %s)", table, g, w, mode))
		}
		rows += g
	}
	for table, g := range got {
		if _, ok := want[table]; !ok {
			problems = append(problems, fmt.Sprintf("%s: %d rows, not in the manifest", table, g))
		}
	}
	sort.Strings(problems)
	summary = fmt.Sprintf("%d tables, %d rows match the manifest", len(want), rows)
	if tol > 0 {
		summary = fmt.Sprintf("%d tables, %d rows within %s of the manifest", len(want), rows, mode)
	}
	return problems, summary, nil
}

// parseFreshness reads a freshness value as a time: RFC 3339 (what
// dbx.QueryValue renders), a few common SQL renderings, or Unix seconds.
func parseFreshness(v string) (time.Time, error) {
	s := strings.TrimSpace(v)
	if s == "" {
		return time.Time{}, fmt.Errorf("freshness query returned NULL (empty table?)")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("freshness value %q is not a time (want a timestamp or Unix seconds)", v)
}

// CheckPrefix starts the name of the verification of an integrity check.
const CheckPrefix = "check "

// verifyChecks runs the service's integrity checks on the drilled database
// against the restored copy at url, one verification per check. It
// returns the verifications and the failures that fail the drill: a check
// that found violations or could not run, when its severity is fail. A
// warn check with violations is reported as "warning" and does not fail
// the drill. Nothing is recorded in the checks' history.
func (r *runner) verifyChecks(ctx context.Context, url string) ([]Verification, []string) {
	has := false
	for _, c := range r.svc.Checks {
		has = has || c.Database == r.b.Database
	}
	if !has {
		return nil, nil
	}
	results, err := integrity.RunAgainst(ctx, integrity.Deps{Logger: r.log, Now: r.deps.Now}, r.svc, r.b.Database, url)
	if err != nil {
		v := Verification{Name: "integrity checks", Status: "error", Detail: err.Error()}
		return []Verification{v}, []string{v.Name + ": " + v.Detail}
	}
	var out []Verification
	var failed []string
	for _, res := range results {
		v := Verification{Name: CheckPrefix + res.Check, Check: res.Service + "/" + res.Check, Severity: res.Severity, SQL: res.Query}
		v.Detail = fmt.Sprintf("%d violations", res.Violations)
		if res.Detail != "" {
			v.Detail += ": " + res.Detail
		}
		switch res.Status {
		case integrity.StatusPass:
			v.Status = "passed"
		case integrity.StatusWarn:
			v.Status = "warning"
			v.Detail += " (severity warn: does not fail the drill)"
		case integrity.StatusFail:
			v.Status = "failed"
		default:
			v.Status, v.Detail = "error", "could not run: "+res.Error
		}
		if res.Severity != integrity.StatusWarn && (v.Status == "failed" || v.Status == "error") {
			failed = append(failed, v.Name+": "+v.Detail)
		}
		out = append(out, v)
	}
	return out, failed
}
