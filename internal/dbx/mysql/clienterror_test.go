package mysql

import (
	"context"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/dbx/internal/tool"
)

// TestClientError words the output of failed restores, as mariadb 10.11
// printed them (the echoed statement shortened), by the client's ERROR line.
func TestClientError(t *testing.T) {
	t.Parallel()
	echo := "--------------\nINSERT INTO `events` VALUES\n(147873,'c0f6bbe905c051c51fdc4e2c48d12e8e'),\n--------------\n\n"
	for _, c := range []struct {
		name, out string
		want      []string // in the error
		not       string   // not in the error
	}{
		{"innodb disk full", echo + "ERROR 1114 (HY000) at line 147967: The table 'events' is full\n",
			[]string{"out of disk space: ERROR 1114 (HY000) at line 147967: The table 'events' is full", "no space left on device (errno 28"}, "INSERT"},
		{"errcode 28", "ERROR 3 (HY000) at line 12: Error writing file './shop/t.MAD' (Errcode: 28 \"No space left on device\")\n",
			[]string{"out of disk space: ERROR 3 (HY000) at line 12: Error writing file"}, ""},
		{"syntax error", echo + "ERROR 1064 (42000) at line 40: You have an error in your SQL syntax\n",
			[]string{"mariadb: exit status 1: ERROR 1064 (42000) at line 40: You have an error"}, "INSERT"},
		{"no error line", "mariadb: unknown option '--frobnicate'\n", []string{"sh: exit status 1: mariadb: unknown option"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// The real failing command's output and error, as Restore sees them.
			out, runErr := (&tool.Cmd{Path: "/bin/sh", Args: []string{"-c", `printf '%s' "$OUT" >&2; exit 1`}, Env: []string{"OUT=" + c.out}}).Run(ctx)
			if runErr == nil {
				t.Fatal("the command succeeded")
			}
			err := clientError(ctx, "/usr/bin/mariadb", out, runErr)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if c.not != "" && strings.Contains(err.Error(), c.not) {
				t.Errorf("error %q contains %q", err, c.not)
			}
		})
	}
}
