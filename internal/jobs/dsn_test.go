package jobs

import "testing"

func TestSQLiteDSN(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/x/steward.db": "/x/steward.db?_pragma=busy_timeout(10000)&_txlock=immediate",
		"file:/x/steward.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)": "file:/x/steward.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate",
		"file:/x/s.db?_pragma=journal_mode(WAL)":                                   "file:/x/s.db?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate",
		"file:/x/s.db?_busy_timeout=500&_txlock=deferred":                          "file:/x/s.db?_busy_timeout=500&_txlock=deferred",
		"file:/x/s.db?_pragma=BUSY_TIMEOUT%3D2000":                                 "file:/x/s.db?_pragma=BUSY_TIMEOUT%3D2000&_txlock=immediate",
	} {
		got, err := sqliteDSN(in)
		if err != nil {
			t.Errorf("sqliteDSN(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("sqliteDSN(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := sqliteDSN("file:/x/s.db?a=%zz"); err == nil {
		t.Error("sqliteDSN accepted a malformed query")
	}
}
