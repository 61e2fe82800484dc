package config

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

const docsFile = "../../docs/configuration.md"

// TestDocs fails when docs/configuration.md is stale; run it with -update
// to regenerate the file.
func TestDocs(t *testing.T) {
	t.Parallel()
	got := markdownDocs()
	if *update {
		if err := os.WriteFile(docsFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/config -run TestDocs -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale; run go test ./internal/config -run TestDocs -update", docsFile)
	}
}

func TestJSONSchema(t *testing.T) {
	t.Parallel()
	b, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("schema is not valid JSON: %v", err)
	}
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", doc["$schema"])
	}
	defs := doc["$defs"].(map[string]any)
	svc := defs["Service"].(map[string]any)
	tier := svc["properties"].(map[string]any)["tier"].(map[string]any)
	if tier["default"] != float64(3) || tier["minimum"] != float64(1) || tier["maximum"] != float64(4) {
		t.Errorf("tier schema = %v, want default 3, minimum 1, maximum 4", tier)
	}
	if svc["additionalProperties"] != false {
		t.Errorf("Service additionalProperties = %v, want false", svc["additionalProperties"])
	}
	if req := svc["required"].([]any); len(req) != 1 || req[0] != "name" {
		t.Errorf("Service required = %v, want [name]", req)
	}
	if _, ok := defs["Contact"].(map[string]any)["oneOf"]; !ok {
		t.Error("Contact has no oneOf (string shorthand or mapping)")
	}
	// Every key in every $defs object has a description.
	for name, d := range defs {
		obj, _ := d.(map[string]any)
		if one, ok := obj["oneOf"].([]any); ok {
			obj = one[1].(map[string]any)
		}
		for key, p := range obj["properties"].(map[string]any) {
			if p.(map[string]any)["description"] == nil {
				t.Errorf("%s.%s has no description (doc tag)", name, key)
			}
		}
	}
}
