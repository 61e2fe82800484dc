package fix

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Images of fix.apply and sql.exec are stored compactly, with the column
// names once per set (store.FixImageSet.Columns):
//
//   - a row is a JSON array of its values in column order;
//   - the after-image of an updated row is a JSON object of only the values
//     that differ from its before-image, by column position: {"3":"x"};
//   - null is "no row".
//
// Deps.Images expands them back to JSON objects, exactly as rowset.object
// encodes a row.

// patchOf is the after-image of an updated row as a patch of its
// before-image (both JSON arrays written by appendArray).
func patchOf(before, after string) string {
	b := make([]byte, 0, 64)
	b = append(b, '{')
	bv, av := before, after
	for i := 0; ; i++ {
		var x, y string
		var okx, oky bool
		x, bv, okx = nextElem(bv)
		y, av, oky = nextElem(av)
		if !okx || !oky {
			if okx != oky { // arrays of different lengths: not a patch
				return after
			}
			break
		}
		if x == y {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, '"', ':')
		b = append(b, y...)
	}
	return string(append(b, '}'))
}

// nextElem returns the first element of a JSON array written by
// appendArray (rest starts with "[" or ","; the first call gets the whole
// array) and what follows it; ok is false at the end.
func nextElem(rest string) (elem, next string, ok bool) {
	if len(rest) < 2 || rest == "[]" || (rest[0] != '[' && rest[0] != ',') {
		return "", "", false
	}
	depth, inStr := 0, false
	for i := 1; i < len(rest); i++ {
		c := rest[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || (c == ']' && depth > 0):
			depth--
		case (c == ',' || c == ']') && depth == 0:
			return rest[1:i], rest[i:], true
		}
	}
	return "", "", false
}

// expandImage turns a stored before- and after-image into JSON objects;
// null stays null.
func expandImage(columns []string, before, after string) (string, string, error) {
	bvals, err := arrayValues(columns, before)
	if err != nil {
		return "", "", fmt.Errorf("before-image: %w", err)
	}
	var avals []json.RawMessage
	switch {
	case len(after) > 0 && after[0] == '{':
		if bvals == nil {
			return "", "", errors.New("after-image: a patch of no before-image")
		}
		var patch map[string]json.RawMessage
		if err := json.Unmarshal([]byte(after), &patch); err != nil {
			return "", "", fmt.Errorf("after-image: %w", err)
		}
		avals = append([]json.RawMessage(nil), bvals...)
		for pos, v := range patch {
			i, err := strconv.Atoi(pos)
			if err != nil || i < 0 || i >= len(avals) {
				return "", "", fmt.Errorf("after-image: no column %q", pos)
			}
			avals[i] = v
		}
	default:
		if avals, err = arrayValues(columns, after); err != nil {
			return "", "", fmt.Errorf("after-image: %w", err)
		}
	}
	return objectOf(columns, bvals), objectOf(columns, avals), nil
}

// arrayValues decodes an image stored as a JSON array of column values;
// nil for null.
func arrayValues(columns []string, doc string) ([]json.RawMessage, error) {
	if doc == "null" || doc == "" {
		return nil, nil
	}
	var vals []json.RawMessage
	if err := json.Unmarshal([]byte(doc), &vals); err != nil {
		return nil, err
	}
	if len(vals) != len(columns) {
		return nil, fmt.Errorf("%d values for %d columns", len(vals), len(columns))
	}
	return vals, nil
}

func objectOf(columns []string, vals []json.RawMessage) string {
	if vals == nil {
		return "null"
	}
	obj := make(map[string]json.RawMessage, len(columns))
	for i, c := range columns {
		obj[c] = vals[i]
	}
	return mustJSON(obj)
}
