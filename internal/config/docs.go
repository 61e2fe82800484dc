package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
)

// docsIntro and docsOutro frame the generated reference in
// docs/configuration.md.
const docsIntro = `# Configuration reference

<!-- Generated from the JSON Schema of internal/config by
     go test ./internal/config -run TestDocs -update
     Do not edit by hand; edit the doc tags in internal/config/config.go. -->

Steward is configured by one YAML file, ` + "`steward.yaml`" + `, kept in git. ` + "`steward validate`" + `
checks it and reports every problem at once as ` + "`file:line:col: message`" + `; ` + "`steward schema`" + `
prints its JSON Schema (draft 2020-12) for editors.

Loading is strict: an unknown key is an error (with a "did you mean" suggestion), as is a value of
the wrong type. Keys not listed here are rejected, except top-level keys starting with ` + "`x-`" + `,
which are ignored and can hold YAML anchors to reuse (` + "`<<: *defaults`" + `). A key set to null, or
left out, takes its default.

## Secret references

Fields of type *secret reference* below hold secrets. Secrets are never written into the config. A field documented as a secret reference takes:

| form | value |
| --- | --- |
| ` + "`env:NAME`" + ` | the environment variable NAME; unset or empty is an error |
| ` + "`file:PATH`" + ` | the content of the file, without its trailing newline; a relative PATH is resolved against the directory of the YAML file the reference is written in |

` + "`steward validate`" + ` checks the syntax of references; with secret resolution (as ` + "`steward serve`" + `
does at start) a missing variable or unreadable file is reported at the position of the reference.
Passwords inline in connection URLs (` + "`postgres://user:pass@host/db`" + `), in webhook URLs, and a literal
audit signing key are errors unless ` + "`steward.allow_inline_secrets: true`" + `, meant for local experiments.
` + "`steward.store`" + ` may be a secret reference too.

## Includes

` + "`include`" + ` lists files or glob patterns, relative to the directory of the file that includes them:

` + "```yaml" + `
include:
  - services/*.yaml
` + "```" + `

- An included file may set ` + "`include`" + `, ` + "`users`" + `, ` + "`roles`" + ` and ` + "`services`" + `; ` + "`steward`" + ` and ` + "`policies`" + `
  belong to the main file only. Lists are concatenated: a file's own entries first, then those of
  each file it includes, in order (glob matches in lexical order).
- Includes nest. A cycle is an error naming the chain. A file included twice by different paths is
  loaded once.
- A glob that matches nothing is fine (an empty ` + "`conf.d/`" + ` is a valid setup); a plain path that does
  not exist is an error.
- Names must be unique across all files: a duplicate service, user or role is reported at the second
  definition, naming the position of the first.

## Names

Names of services, databases, users, roles and approval rules start with a lowercase letter or digit
and contain only lowercase letters, digits, ` + "`-`" + ` and ` + "`_`" + `.

## Built-in roles

` + "`viewer`" + `, ` + "`operator`" + `, ` + "`approver`" + `, ` + "`admin`" + `, ` + "`auditor`" + `. Custom roles are defined under ` + "`roles`" + ` and may not
reuse these names.

## Keys
`

// markdownDocs renders the configuration reference from the JSON Schema.
func markdownDocs() []byte {
	var b bytes.Buffer
	b.WriteString(docsIntro)
	writeSection(&b, &schemaGen{}, "", reflect.TypeFor[Config](), map[reflect.Type]bool{})
	return b.Bytes()
}

// writeSection writes the table of struct type t at path, then the
// sections of its nested structs, depth first.
func writeSection(b *bytes.Buffer, g *schemaGen, path string, t reflect.Type, done map[reflect.Type]bool) {
	if done[t] {
		return
	}
	done[t] = true
	title := "Top level"
	if path != "" {
		title = "`" + path + "`"
	}
	fmt.Fprintf(b, "\n### %s\n\n", title)
	if sf := shorthandField(t); sf != "" {
		fmt.Fprintf(b, "Either a mapping with the keys below or a plain string, stored in `%s`.\n\n", sf)
	}
	b.WriteString("| key | type | default | description |\n| --- | --- | --- | --- |\n")
	type child struct {
		path string
		t    reflect.Type
	}
	var children []child
	for _, f := range fieldsOf(t) {
		ft := t.Field(f.index).Type
		s := g.of(ft, f)
		key := "`" + f.key + "`"
		if f.required {
			key += " (required)"
		}
		def := ""
		if s.Default != nil {
			def = fmt.Sprintf("`%v`", s.Default)
		}
		desc := strings.TrimSuffix(s.Description, " "+secretDoc)
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", key, typeText(s), def, cell(desc))

		sub, suffix := ft, ""
		if sub.Kind() == reflect.Slice {
			sub, suffix = sub.Elem(), "[]"
		}
		if sub.Kind() != reflect.Struct {
			continue
		}
		p := f.key + suffix
		if path != "" {
			p = path + "." + p
		}
		if t == reflect.TypeFor[Contacts]() {
			p = path + ".<contact>"
		}
		children = append(children, child{p, sub})
	}
	for _, c := range children {
		writeSection(b, g, c.path, c.t, done)
	}
}

// typeText describes the type of a schema node for the reference.
func typeText(s *schema) string {
	var t string
	switch {
	case s.Ref != "":
		t = "mapping"
		if strings.HasSuffix(s.Ref, "/Contact") {
			t = "string or mapping"
		}
	case s.Type == "array":
		t = "list of " + typeText(s.Items)
	case s.Type == "object":
		t = "mapping of string to string"
	case strings.HasSuffix(s.Description, secretDoc):
		t = "secret reference"
	default:
		t = s.Type
	}
	switch {
	case len(s.Enum) > 0:
		t += ": " + "`" + strings.Join(s.Enum, "`, `") + "`"
	case s.Minimum != nil && s.Maximum != nil:
		t += fmt.Sprintf(" %d to %d", *s.Minimum, *s.Maximum)
	case s.Minimum != nil:
		t += fmt.Sprintf(" ≥ %d", *s.Minimum)
	}
	return t
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "<", `&lt;`)
	return strings.ReplaceAll(s, "\n", " ")
}
