package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes the loader panic, and that a
// failure is always an Errors with at least one entry.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, exampleFiles(f)...)
	more, err := filepath.Glob("../../examples/services/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range append(seeds, more...) {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Relative includes resolve inside testdata, with real files to find.
		cfg, err := Parse("testdata/fuzz.yaml", data, LoadOptions{})
		if err != nil {
			errs, ok := err.(Errors)
			if !ok || len(errs) == 0 {
				t.Fatalf("Parse returned %T %v, want non-empty Errors", err, err)
			}
			return
		}
		if cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
	})
}
