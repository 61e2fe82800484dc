package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// This file decodes a YAML AST into the config types by reflection. Unlike
// a plain yaml.Unmarshal it reports every unknown key, type mismatch and
// violated field constraint at once with its position, and records the
// position of every value by path (such as "services[0].databases[1].url")
// so that later semantic checks can point at the offending value.

// Field constraints are declared in struct tags, read both here and by the
// JSON Schema generator:
//
//	yaml:"key"       the key in YAML
//	doc:"..."        description, for the schema and the docs
//	default:"v"      default, filled before decoding
//	required:"true"  the key must be present and not empty
//	enum:"a,b"       allowed values
//	minimum:"n"      smallest allowed integer
//	maximum:"n"      largest allowed integer
//	pattern:"name"   a named pattern from namedPatterns

const (
	// maxNodes bounds how many nodes one file may expand to through aliases.
	maxNodes = 200_000
	// maxMergeDepth bounds nested merge keys (<<).
	maxMergeDepth = 32
)

// namedPattern is a regular expression with a description for messages.
type namedPattern struct {
	re   *regexp.Regexp
	desc string
}

var namedPatterns = map[string]namedPattern{
	"name": {
		regexp.MustCompile(`^[a-z0-9][a-z0-9-_]*$`),
		"must start with a lowercase letter or digit and contain only lowercase letters, digits, '-' and '_'",
	},
	"permission": {
		regexp.MustCompile(`^(\*|[a-z0-9_-]+(\.[a-z0-9_-]+)*(\.\*)?)$`),
		"must be lowercase words separated by dots, optionally ending in .* (like fix.apply or access.*)",
	},
	"phone": {
		regexp.MustCompile(`^\+?[0-9][0-9 ().-]{2,}$`),
		"must contain only digits, spaces and + ( ) . -",
	},
}

// field describes one struct field of a config type.
type field struct {
	key      string
	index    int
	doc      string
	def      string
	required bool
	enum     []string
	min, max *int
	pattern  string
}

// fieldCache holds fieldsOf's answer per struct type: decoding calls it
// for every value, and re-reading the tags each time made parsing a config
// of 10,000 probes allocate about 500 MB (bench/probebench).
var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf returns the YAML fields of struct type t in declaration order.
// The slice is shared: callers must not modify it.
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	fs := readFields(t)
	fieldCache.Store(t, fs)
	return fs
}

// readFields reads the YAML fields of struct type t from its tags.
func readFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		key := strings.Split(sf.Tag.Get("yaml"), ",")[0]
		if key == "" || key == "-" || !sf.IsExported() {
			continue
		}
		f := field{
			key:      key,
			index:    i,
			doc:      sf.Tag.Get("doc"),
			def:      sf.Tag.Get("default"),
			required: sf.Tag.Get("required") == "true",
			pattern:  sf.Tag.Get("pattern"),
		}
		if e := sf.Tag.Get("enum"); e != "" {
			f.enum = strings.Split(e, ",")
		}
		if v, err := strconv.Atoi(sf.Tag.Get("minimum")); err == nil {
			f.min = &v
		}
		if v, err := strconv.Atoi(sf.Tag.Get("maximum")); err == nil {
			f.max = &v
		}
		out = append(out, f)
	}
	return out
}

func fieldKeys(fs []field) []string {
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.key
	}
	return keys
}

// noun names a config type in messages.
func noun(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Steward]():
		return "steward"
	case reflect.TypeFor[Audit]():
		return "audit"
	case reflect.TypeFor[User]():
		return "user"
	case reflect.TypeFor[Role]():
		return "role"
	case reflect.TypeFor[Service]():
		return "service"
	case reflect.TypeFor[Contacts]():
		return "contacts"
	case reflect.TypeFor[Contact]():
		return "contact"
	case reflect.TypeFor[Database]():
		return "database"
	case reflect.TypeFor[Policies]():
		return "policies"
	case reflect.TypeFor[ApprovalRule]():
		return "approval rule"
	case reflect.TypeFor[PolicyMatch]():
		return "match"
	case reflect.TypeFor[Requirement]():
		return "requirement"
	case reflect.TypeFor[Freeze]():
		return "freeze"
	case reflect.TypeFor[Objectives]():
		return "objectives"
	case reflect.TypeFor[Backup]():
		return "backup"
	case reflect.TypeFor[Drill]():
		return "drill"
	case reflect.TypeFor[Encrypt]():
		return "encrypt"
	case reflect.TypeFor[Retention]():
		return "retention"
	case reflect.TypeFor[Scratch]():
		return "scratch"
	case reflect.TypeFor[Verify]():
		return "verify"
	case reflect.TypeFor[Check]():
		return "check"
	case reflect.TypeFor[Side]():
		return "reconcile side"
	case reflect.TypeFor[Fix]():
		return "fix"
	case reflect.TypeFor[Access]():
		return "access profile"
	case reflect.TypeFor[Kit]():
		return "kit"
	case reflect.TypeFor[Readiness]():
		return "readiness"
	case reflect.TypeFor[ReadinessThresholds]():
		return "readiness thresholds"
	case reflect.TypeFor[Waiver]():
		return "waiver"
	case reflect.TypeFor[KitCredential]():
		return "kit credential"
	case reflect.TypeFor[Notify]():
		return "notify"
	case reflect.TypeFor[Channel]():
		return "channel"
	case reflect.TypeFor[SMTP]():
		return "smtp"
	case reflect.TypeFor[Route]():
		return "route"
	case reflect.TypeFor[RouteMatch]():
		return "match"
	case reflect.TypeFor[Probe]():
		return "probe"
	case reflect.TypeFor[Step]():
		return "step"
	case reflect.TypeFor[BasicAuth]():
		return "basic_auth"
	}
	return ""
}

// shorthandField names the field a plain string is stored in for types that
// accept a string instead of a mapping, or "".
func shorthandField(t reflect.Type) string {
	if t == reflect.TypeFor[Contact]() {
		return "name"
	}
	return ""
}

// applyDefaults fills the zero fields of struct v, recursively, from their
// default tags.
func applyDefaults(v reflect.Value) {
	if v.Kind() != reflect.Struct {
		return
	}
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		if fv.Kind() == reflect.Struct {
			applyDefaults(fv)
			continue
		}
		if f.def == "" || !fv.IsZero() {
			continue
		}
		switch fv.Kind() {
		case reflect.String:
			fv.SetString(f.def)
		case reflect.Int:
			if n, err := strconv.Atoi(f.def); err == nil {
				fv.SetInt(int64(n))
			}
		case reflect.Bool:
			if b, err := strconv.ParseBool(f.def); err == nil {
				fv.SetBool(b)
			}
		}
	}
}

// decoder decodes the AST of one file.
type decoder struct {
	file    string
	errs    Errors
	pos     map[string]pos // path -> position of the value
	keyPos  map[string]pos // top-level key -> position of the key
	offsets map[string]int // top-level list -> index of its first element in the merged config
	anchors map[string]ast.Node
	nodes   int
	tooBig  bool
}

func newDecoder(file string, offsets map[string]int) *decoder {
	return &decoder{
		file:    file,
		pos:     map[string]pos{},
		keyPos:  map[string]pos{},
		offsets: offsets,
		anchors: map[string]ast.Node{},
	}
}

func (d *decoder) errorf(p pos, format string, args ...any) {
	d.errs = append(d.errs, Error{File: p.File, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)})
}

// nodePos returns where n starts.
func (d *decoder) nodePos(n ast.Node) pos {
	if n == nil {
		return pos{File: d.file}
	}
	switch x := n.(type) {
	case *ast.MappingNode:
		if !x.IsFlowStyle && len(x.Values) > 0 && x.Values[0] != nil && x.Values[0].Key != nil {
			return d.nodePos(x.Values[0].Key)
		}
	case *ast.MappingValueNode:
		if x.Key != nil {
			return d.nodePos(x.Key)
		}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return pos{File: d.file}
	}
	return pos{File: d.file, Line: tk.Position.Line, Col: tk.Position.Column}
}

// parseFile parses data and decodes its single document into cfg, whose
// defaults must already be applied.
func (d *decoder) parseFile(data []byte, cfg *Config) {
	f, err := parseYAML(data)
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
			p := ye.GetToken().Position
			d.errorf(pos{File: d.file, Line: p.Line, Col: p.Column}, "invalid YAML: %s", ye.GetMessage())
		} else {
			d.errorf(pos{File: d.file}, "invalid YAML: %v", err)
		}
		return
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		return
	}
	if len(docs) > 1 {
		p := d.nodePos(docs[1].Body)
		if docs[1].Start != nil && docs[1].Start.Position != nil {
			p = pos{File: d.file, Line: docs[1].Start.Position.Line, Col: docs[1].Start.Position.Column}
		}
		d.errorf(p, "multiple YAML documents in one file are not supported; use include to split the config")
		return
	}
	d.collectAnchors(docs[0].Body, 0)
	d.decode(docs[0].Body, reflect.ValueOf(cfg).Elem(), "", "config", nil)
}

// parseYAML runs the YAML parser, turning a panic in it into an error so
// that no input can crash a caller.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("parser crashed on this input: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}

// collectAnchors records every anchor under n.
func (d *decoder) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > 10_000 {
		return
	}
	switch x := n.(type) {
	case *ast.AnchorNode:
		if x.Name != nil {
			d.anchors[nodeText(x.Name)] = x.Value
		}
		d.collectAnchors(x.Value, depth+1)
	case *ast.TagNode:
		d.collectAnchors(x.Value, depth+1)
	case *ast.MappingNode:
		for _, mv := range x.Values {
			d.collectAnchors(mv, depth+1)
		}
	case *ast.MappingValueNode:
		d.collectAnchors(x.Key, depth+1)
		d.collectAnchors(x.Value, depth+1)
	case *ast.SequenceNode:
		for _, v := range x.Values {
			d.collectAnchors(v, depth+1)
		}
	}
}

func nodeText(n ast.Node) string {
	if n == nil {
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

// resolve follows anchors, aliases and tags to the node holding the value.
// It returns nil for an explicit or implicit null.
func (d *decoder) resolve(n ast.Node) (ast.Node, bool) {
	for range 100 {
		switch x := n.(type) {
		case nil:
			return nil, true
		case *ast.NullNode, *ast.CommentNode, *ast.CommentGroupNode:
			return nil, true
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		case *ast.AliasNode:
			name := nodeText(x.Value)
			target, ok := d.anchors[name]
			if !ok {
				d.errorf(d.nodePos(x), "unknown anchor %q", name)
				return nil, false
			}
			n = target
		default:
			return n, true
		}
	}
	d.errorf(d.nodePos(n), "aliases nested too deeply")
	return nil, false
}

// describe names the kind and value of a resolved node for messages.
func describe(n ast.Node) string {
	switch x := n.(type) {
	case nil:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.IntegerNode:
		return "integer " + nodeText(x)
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "number " + nodeText(x)
	case *ast.BoolNode:
		return "boolean " + nodeText(x)
	case *ast.StringNode:
		return "string " + quoteShort(x.Value)
	case *ast.LiteralNode:
		return "string"
	}
	return n.Type().String()
}

// quoteShort quotes s, shortened for messages.
func quoteShort(s string) string {
	if r := []rune(s); len(r) > 40 {
		s = string(r[:37]) + "..."
	}
	return strconv.Quote(s)
}

// scalarText returns the text of a scalar node.
func scalarText(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		if x.Value == nil {
			return "", true
		}
		return x.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return nodeText(x), true
	}
	return "", false
}

// entry is one key/value pair of a mapping, after merge keys are expanded.
type entry struct {
	key    string
	keyPos pos
	value  ast.Node
}

// entries returns the pairs of mapping m; explicit keys win over merged
// ones, and earlier merged mappings over later ones.
func (d *decoder) entries(m *ast.MappingNode, depth int) []entry {
	var explicit, merged []entry
	for _, mv := range m.Values {
		if !d.count(mv) {
			return nil
		}
		if mv == nil || mv.Key == nil {
			continue
		}
		if mv.Key.IsMergeKey() {
			if depth >= maxMergeDepth {
				d.errorf(d.nodePos(mv.Key), "merge keys nested too deeply")
				continue
			}
			merged = append(merged, d.mergeEntries(mv.Value, depth)...)
			continue
		}
		k, ok := d.resolve(mv.Key)
		if !ok {
			continue
		}
		text, ok := scalarText(k)
		if !ok {
			d.errorf(d.nodePos(mv.Key), "mapping keys must be strings, got %s", describe(k))
			continue
		}
		explicit = append(explicit, entry{key: text, keyPos: d.nodePos(mv.Key), value: mv.Value})
	}
	return appendNew(explicit, merged)
}

// appendNew appends the entries of more whose keys are not in out yet.
func appendNew(out, more []entry) []entry {
	have := make(map[string]bool, len(out))
	for _, e := range out {
		have[e.key] = true
	}
	for _, e := range more {
		if !have[e.key] {
			have[e.key] = true
			out = append(out, e)
		}
	}
	return out
}

// mergeEntries expands the value of a merge key (<<).
func (d *decoder) mergeEntries(v ast.Node, depth int) []entry {
	r, ok := d.resolve(v)
	if !ok {
		return nil
	}
	switch x := r.(type) {
	case *ast.MappingNode:
		return d.entries(x, depth+1)
	case *ast.SequenceNode:
		var out []entry
		for _, el := range x.Values {
			er, ok := d.resolve(el)
			if !ok {
				continue
			}
			m, isMap := er.(*ast.MappingNode)
			if !isMap {
				d.errorf(d.nodePos(el), "merge key (<<) list entries must be mappings, got %s", describe(er))
				continue
			}
			out = appendNew(out, d.entries(m, depth+1))
		}
		return out
	}
	d.errorf(d.nodePos(v), "merge key (<<) value must be a mapping or a list of mappings, got %s", describe(r))
	return nil
}

// count charges one node against the expansion budget, reporting false
// (once, with an error) when it is spent.
func (d *decoder) count(n ast.Node) bool {
	if d.tooBig {
		return false
	}
	if d.nodes++; d.nodes > maxNodes {
		d.tooBig = true
		d.errorf(d.nodePos(n), "document too large: more than %d values (check for runaway aliases)", maxNodes)
		return false
	}
	return true
}

// decode decodes node n into v, recording positions under path. label
// names the value in messages; f holds the constraints of the field (nil
// for list elements of structs and the root).
func (d *decoder) decode(n ast.Node, v reflect.Value, path, label string, f *field) {
	if !d.count(n) {
		return
	}
	r, ok := d.resolve(n)
	if !ok || r == nil {
		return // null keeps the default
	}
	p := d.nodePos(n)
	d.pos[path] = p
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(r, v, path, label, p)
	case reflect.Slice:
		d.decodeSlice(r, v, path, label, f, p)
	case reflect.Map:
		d.decodeMap(r, v, path, label, p)
	case reflect.String:
		s, ok := scalarText(r)
		if !ok {
			d.errorf(p, "%s must be a string, got %s%s", label, describe(r), quoteHint(r))
			return
		}
		v.SetString(s)
		d.checkString(s, label, f, p)
	case reflect.Int:
		in, ok := r.(*ast.IntegerNode)
		if !ok {
			d.errorf(p, "%s must be an integer, got %s", label, describe(r))
			return
		}
		var i int64
		switch x := in.Value.(type) {
		case int64:
			i = x
		case uint64:
			if x > math.MaxInt64 {
				d.errorf(p, "%s is too large: %s", label, nodeText(in))
				return
			}
			i = int64(x)
		default:
			d.errorf(p, "%s must be an integer, got %s", label, describe(r))
			return
		}
		v.SetInt(i)
		d.checkInt(i, label, f, p)
	case reflect.Bool:
		b, ok := r.(*ast.BoolNode)
		if !ok {
			d.errorf(p, "%s must be true or false, got %s", label, describe(r))
			return
		}
		v.SetBool(b.Value)
	default:
		d.errorf(p, "%s: unsupported field type %s", label, v.Type())
	}
}

func (d *decoder) decodeStruct(r ast.Node, v reflect.Value, path, label string, p pos) {
	t := v.Type()
	m, isMap := r.(*ast.MappingNode)
	if !isMap {
		if sf := shorthandField(t); sf != "" {
			if s, ok := scalarText(r); ok {
				for _, f := range fieldsOf(t) {
					if f.key == sf {
						v.Field(f.index).SetString(s)
					}
				}
				return
			}
			d.errorf(p, "%s must be a string or a mapping, got %s", label, describe(r))
			return
		}
		d.errorf(p, "%s must be a mapping, got %s", label, describe(r))
		return
	}
	fields := fieldsOf(t)
	seen := map[string]bool{}
	for _, e := range d.entries(m, 0) {
		if path == "" && strings.HasPrefix(e.key, "x-") {
			continue // extension keys hold anchors for reuse
		}
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == e.key })
		if i < 0 {
			where := "at top level"
			if nn := noun(t); nn != "" {
				where = "in " + nn
			}
			d.errorf(e.keyPos, "unknown key %s %s%s", quoteShort(e.key), where, didYouMean(e.key, fieldKeys(fields)))
			continue
		}
		f := fields[i]
		seen[f.key] = true
		if path == "" {
			d.keyPos[f.key] = e.keyPos
		}
		fpath := f.key
		if path != "" {
			fpath = path + "." + f.key
		}
		flabel := fieldLabel(t, f)
		d.decode(e.value, v.Field(f.index), fpath, flabel, &f)
	}
	for _, f := range fields {
		if !f.required || d.tooBig {
			continue
		}
		fv := v.Field(f.index)
		if !seen[f.key] {
			d.errorf(p, "%s is missing required key %q", noun(t), f.key)
		} else if fv.IsZero() {
			fpath := path + "." + f.key
			if path == "" {
				fpath = f.key
			}
			if fp, ok := d.pos[fpath]; ok {
				d.errorf(fp, "%s must not be empty", fieldLabel(t, f))
			} else {
				d.errorf(p, "%s must not be empty", fieldLabel(t, f))
			}
		}
	}
}

func (d *decoder) decodeSlice(r ast.Node, v reflect.Value, path, label string, f *field, p pos) {
	seq, ok := r.(*ast.SequenceNode)
	if !ok {
		d.errorf(p, "%s must be a list, got %s", label, describe(r))
		return
	}
	et := v.Type().Elem()
	out := reflect.MakeSlice(v.Type(), 0, len(seq.Values))
	offset := d.offsets[path]
	for i, el := range seq.Values {
		epath := fmt.Sprintf("%s[%d]", path, offset+i)
		elabel := fmt.Sprintf("%s[%d]", label, i)
		ev := reflect.New(et).Elem()
		applyDefaults(ev)
		r, ok := d.resolve(el)
		if !ok {
			continue
		}
		if r == nil {
			d.errorf(d.nodePos(el), "%s must not be null", elabel)
			continue
		}
		d.decode(el, ev, epath, elabel, f)
		out = reflect.Append(out, ev)
	}
	v.Set(out)
}

func (d *decoder) decodeMap(r ast.Node, v reflect.Value, path, label string, p pos) {
	m, ok := r.(*ast.MappingNode)
	if !ok {
		d.errorf(p, "%s must be a mapping, got %s", label, describe(r))
		return
	}
	out := reflect.MakeMap(v.Type())
	for _, e := range d.entries(m, 0) {
		if e.key == "" {
			d.errorf(e.keyPos, "%s keys must not be empty", label)
			continue
		}
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(e.value, ev, fmt.Sprintf("%s[%q]", path, e.key), fmt.Sprintf("%s[%q]", label, e.key), nil)
		out.SetMapIndex(reflect.ValueOf(e.key).Convert(v.Type().Key()), ev)
	}
	v.Set(out)
}

func (d *decoder) checkString(s, label string, f *field, p pos) {
	if f == nil || s == "" {
		return
	}
	if len(f.enum) > 0 && !slices.Contains(f.enum, s) {
		d.errorf(p, "invalid %s %s: must be one of %s%s", label, quoteShort(s), strings.Join(f.enum, ", "), didYouMean(s, f.enum))
	}
	if np, ok := namedPatterns[f.pattern]; ok && !np.re.MatchString(s) {
		d.errorf(p, "invalid %s %s: %s", label, quoteShort(s), np.desc)
	}
}

func (d *decoder) checkInt(i int64, label string, f *field, p pos) {
	if f == nil {
		return
	}
	switch {
	case f.min != nil && f.max != nil && (i < int64(*f.min) || i > int64(*f.max)):
		d.errorf(p, "%s must be between %d and %d, got %d", label, *f.min, *f.max, i)
	case f.min != nil && i < int64(*f.min):
		d.errorf(p, "%s must be at least %d, got %d", label, *f.min, i)
	case f.max != nil && i > int64(*f.max):
		d.errorf(p, "%s must be at most %d, got %d", label, *f.max, i)
	}
}

// quoteHint suggests quoting when a one-entry mapping was most likely meant
// as a string containing a colon, like role:dba inside a flow mapping.
func quoteHint(n ast.Node) string {
	m, ok := n.(*ast.MappingNode)
	if !ok || len(m.Values) != 1 || m.Values[0] == nil || m.Values[0].Key == nil {
		return ""
	}
	k, kok := scalarText(m.Values[0].Key)
	v, vok := scalarText(m.Values[0].Value)
	if !kok || !vok {
		return ""
	}
	return fmt.Sprintf(" (to write the string %s, quote it)", strconv.Quote(k+":"+v))
}

// fieldLabel names field f of struct type t in messages: "service name"
// rather than "name", the key otherwise.
func fieldLabel(t reflect.Type, f field) string {
	if f.key == "name" && noun(t) != "" {
		return noun(t) + " name"
	}
	return f.key
}
