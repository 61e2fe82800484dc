package config

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files (testdata/*.bad.err, docs/configuration.md)")

// resolveSecretsMarker starts the bad configs loaded with ResolveSecrets.
const resolveSecretsMarker = "# test: resolve secrets\n"

// exampleFiles returns the top-level example configs; files under
// examples/services are includes.
func exampleFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("../../examples", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "services" {
			return filepath.SkipDir
		}
		// Policy test files are not configs; the policy package runs them.
		if !d.IsDir() && strings.HasSuffix(path, ".yaml") && !strings.HasPrefix(d.Name(), "canaries") && !strings.HasSuffix(d.Name(), ".test.yaml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example configs found")
	}
	return files
}

func TestExamples(t *testing.T) {
	t.Parallel()
	for _, file := range exampleFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(file, LoadOptions{})
			if err != nil {
				t.Fatalf("Load(%s):\n%v", file, err)
			}
			if !filepath.IsAbs(cfg.Path) || !filepath.IsAbs(cfg.Steward.DataDir) {
				t.Errorf("Path %q and DataDir %q must be absolute", cfg.Path, cfg.Steward.DataDir)
			}
		})
	}
}

func TestBadConfigs(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("found %d bad configs, want at least 12", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".bad.yaml"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			// A bad config whose first line is resolveSecretsMarker is
			// loaded with ResolveSecrets; the env vars and files it names
			// never exist.
			opts := LoadOptions{ResolveSecrets: strings.HasPrefix(string(data), resolveSecretsMarker)}
			_, err = Load(file, opts)
			if err == nil {
				t.Fatalf("Load(%s) succeeded, want errors", file)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load returned %T, want Errors: %v", err, err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("errors of %s differ from %s\ngot:\n%s\nwant:\n%s", file, golden, got, want)
			}
		})
	}
}
