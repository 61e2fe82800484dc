package config

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
)

// schema is a JSON Schema node. Properties keep the declaration order of
// the Go fields, so the schema and the docs read in the same order.
type schema struct {
	Type                 string          `json:"type,omitempty"`
	Description          string          `json:"description,omitempty"`
	Default              any             `json:"default,omitempty"`
	Enum                 []string        `json:"enum,omitempty"`
	Minimum              *int            `json:"minimum,omitempty"`
	Maximum              *int            `json:"maximum,omitempty"`
	Pattern              string          `json:"pattern,omitempty"`
	Ref                  string          `json:"$ref,omitempty"`
	Items                *schema         `json:"items,omitempty"`
	OneOf                []*schema       `json:"oneOf,omitempty"`
	Properties           *properties     `json:"properties,omitempty"`
	PatternProperties    map[string]bool `json:"patternProperties,omitempty"`
	Required             []string        `json:"required,omitempty"`
	AdditionalProperties any             `json:"additionalProperties,omitempty"`
}

// property is one named property of an object schema.
type property struct {
	name string
	s    *schema
}

// properties is an ordered list of object properties.
type properties []property

// MarshalJSON writes the properties as an object in order.
func (ps properties) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(p.name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(p.s)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// rootSchema is the whole document: the root object with its $defs.
type rootSchema struct {
	Schema string `json:"$schema"`
	ID     string `json:"$id"`
	Title  string `json:"title"`
	*schema
	Defs *properties `json:"$defs"`
}

const secretDoc = "Secret reference: env:NAME (environment variable) or file:PATH (file content without the trailing newline; a relative path is resolved against the directory of the file the reference is in)."

// JSONSchema returns the JSON Schema (draft 2020-12) of steward.yaml,
// generated from the Go types and their doc, default and constraint tags.
func JSONSchema() ([]byte, error) {
	g := &schemaGen{}
	root := g.object(reflect.TypeFor[Config]())
	root.PatternProperties = map[string]bool{"^x-": true}
	doc := rootSchema{
		Schema: "https://json-schema.org/draft/2020-12/schema",
		ID:     "https://github.com/stewardhq/steward/steward.schema.json",
		Title:  "steward.yaml",
		schema: root,
		Defs:   &g.defs,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// schemaGen generates schemas, collecting struct types under $defs.
type schemaGen struct {
	defs properties
}

// object returns the object schema of struct type t.
func (g *schemaGen) object(t reflect.Type) *schema {
	s := &schema{Type: "object", Properties: &properties{}, AdditionalProperties: false}
	for _, f := range fieldsOf(t) {
		fs := g.of(t.Field(f.index).Type, f)
		*s.Properties = append(*s.Properties, property{f.key, fs})
		if f.required {
			s.Required = append(s.Required, f.key)
		}
	}
	return s
}

// ref returns a reference to the $defs entry of struct type t, creating it.
func (g *schemaGen) ref(t reflect.Type) *schema {
	name := t.Name()
	for _, d := range g.defs {
		if d.name == name {
			return &schema{Ref: "#/$defs/" + name}
		}
	}
	g.defs = append(g.defs, property{name, nil})
	i := len(g.defs) - 1
	obj := g.object(t)
	if sf := shorthandField(t); sf != "" {
		obj = &schema{OneOf: []*schema{{Type: "string", Description: "Shorthand for {" + sf + ": ...}."}, obj}}
	}
	g.defs[i].s = obj
	return &schema{Ref: "#/$defs/" + name}
}

// of returns the schema of a field of type t with constraints f.
func (g *schemaGen) of(t reflect.Type, f field) *schema {
	var s *schema
	switch t.Kind() {
	case reflect.Struct:
		s = g.ref(t)
	case reflect.Slice:
		item := g.of(t.Elem(), field{enum: f.enum, min: f.min, max: f.max, pattern: f.pattern})
		s = &schema{Type: "array", Items: item}
		f.enum, f.min, f.max, f.pattern = nil, nil, nil, ""
	case reflect.Map:
		s = &schema{Type: "object", AdditionalProperties: g.of(t.Elem(), field{})}
	case reflect.String:
		s = &schema{Type: "string"}
		if f.def != "" {
			s.Default = f.def
		}
		if t == reflect.TypeFor[Secret]() {
			s.Description = secretDoc
		}
	case reflect.Int:
		s = &schema{Type: "integer"}
		if n, err := strconv.Atoi(f.def); err == nil {
			s.Default = n
		}
	case reflect.Bool:
		s = &schema{Type: "boolean"}
		if b, err := strconv.ParseBool(f.def); err == nil {
			s.Default = b
		}
	}
	if f.doc != "" {
		if s.Description != "" {
			s.Description = f.doc + " " + s.Description
		} else {
			s.Description = f.doc
		}
	}
	s.Enum, s.Minimum, s.Maximum = f.enum, f.min, f.max
	if np, ok := namedPatterns[f.pattern]; ok {
		s.Pattern = np.re.String()
	}
	return s
}
