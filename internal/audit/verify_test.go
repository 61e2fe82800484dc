package audit

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stewardhq/steward/internal/store"
)

// tamperSetup appends 30 events, a checkpoint (event 31), 69 more events and
// a second checkpoint (event 101).
func tamperSetup(t *testing.T, dialect string) (bundle, []Checkpoint, note.Verifier) {
	t.Helper()
	b := setup(t, dialect)
	signer, verifier, err := LoadOrCreateKey(t.TempDir(), "", "steward.test/audit")
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 30)
	c1, err := b.log.Checkpoint(b.ctx, signer, "steward.test/audit")
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 69)
	c2, err := b.log.Checkpoint(b.ctx, signer, "steward.test/audit")
	if err != nil {
		t.Fatal(err)
	}
	if c1.Size != 31 || c2.Size != 101 {
		t.Fatalf("checkpoint sizes %d, %d", c1.Size, c2.Size)
	}
	return b, []Checkpoint{c1, c2}, verifier
}

func exec(t *testing.T, db *sql.DB, dialect, q string, args ...any) {
	t.Helper()
	if dialect == store.Postgres {
		n := 0
		q = rebind(q, &n)
	}
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func rebind(q string, n *int) string {
	var b strings.Builder
	for _, c := range q {
		if c == '?' {
			*n++
			b.WriteString("$")
			b.WriteString(string(rune('0' + *n)))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func loadEvent(t *testing.T, s *store.Store, seq int64) Event {
	t.Helper()
	var out Event
	found := false
	err := s.ScanAudit(context.Background(), seq, func(r store.AuditRecord) error {
		if !found {
			out, found = eventFromRecord(r), true
		}
		return nil
	})
	if err != nil || !found || out.Seq != seq {
		t.Fatalf("load event %d: %v", seq, err)
	}
	return out
}

// verifyBoth verifies the store directly and through an export, and checks
// that both give the same report.
func verifyBoth(t *testing.T, b bundle, cps []Checkpoint) Report {
	t.Helper()
	rep, err := Verify(b.ctx, StoreSource(b.store), cps)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Export(b.ctx, b.store, 1, &buf); err != nil {
		t.Fatal(err)
	}
	off, err := Verify(b.ctx, JSONLSource(&buf), cps)
	if err != nil {
		t.Fatal(err)
	}
	if off != rep {
		t.Fatalf("store and export disagree:\nstore  %+v\nexport %+v", rep, off)
	}
	return rep
}

func TestVerifyTamper(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name     string
				tamper   func(t *testing.T, b bundle)
				firstBad int64
				problem  string
				noCheck  bool // only a checkpoint detects it
			}{
				{name: "clean", tamper: func(*testing.T, bundle) {}},
				{
					name: "edited",
					tamper: func(t *testing.T, b bundle) {
						exec(t, b.store.DB(), dialect, "UPDATE audit_events SET actor = ? WHERE seq = 42", "mallory")
					},
					firstBad: 42, problem: "event 42: hash mismatch (edited?)",
				},
				{
					name: "edited details",
					tamper: func(t *testing.T, b bundle) {
						exec(t, b.store.DB(), dialect, `UPDATE audit_events SET details = '{"i":999}' WHERE seq = 7`)
					},
					firstBad: 7, problem: "event 7: hash mismatch (edited?)",
				},
				{
					name: "deleted",
					tamper: func(t *testing.T, b bundle) {
						exec(t, b.store.DB(), dialect, "DELETE FROM audit_events WHERE seq = 43")
					},
					firstBad: 43, problem: "event 43 missing: seq jumps from 42 to 44 (deleted?)",
				},
				{
					name: "deleted first",
					tamper: func(t *testing.T, b bundle) {
						exec(t, b.store.DB(), dialect, "DELETE FROM audit_events WHERE seq = 1")
					},
					firstBad: 1, problem: "event 1 missing: log starts at seq 2 (deleted?)",
				},
				{
					name: "inserted",
					tamper: func(t *testing.T, b bundle) {
						// Make room at 43, then forge a self-consistent event
						// there that links to 42.
						db := b.store.DB()
						exec(t, db, dialect, "UPDATE audit_events SET seq = seq + 1000000 WHERE seq >= 43")
						exec(t, db, dialect, "UPDATE audit_events SET seq = seq - 999999 WHERE seq >= 1000000")
						prev := loadEvent(t, b.store, 42)
						f := Event{Seq: 43, Time: prev.Time, Actor: "mallory", Action: "user.add", Target: "mallory", Outcome: "ok", Details: []byte(`{}`), PrevHash: prev.Hash}
						f.Hash = HashEvent(f)
						exec(t, db, dialect, "INSERT INTO audit_events (seq, ts, actor, action, target, outcome, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?)",
							f.Seq, store.FormatTime(f.Time), f.Actor, f.Action, f.Target, f.Outcome, string(f.Details), f.PrevHash, f.Hash)
					},
					firstBad: 44, problem: "event 44: prev_hash does not match event 43 (inserted or reordered?)",
				},
				{
					name: "reordered",
					tamper: func(t *testing.T, b bundle) {
						db := b.store.DB()
						exec(t, db, dialect, "UPDATE audit_events SET seq = -1 WHERE seq = 50")
						exec(t, db, dialect, "UPDATE audit_events SET seq = 50 WHERE seq = 60")
						exec(t, db, dialect, "UPDATE audit_events SET seq = 60 WHERE seq = -1")
					},
					firstBad: 50, problem: "event 50: prev_hash does not match event 49 (inserted or reordered?)",
				},
				{
					name: "truncated tail",
					tamper: func(t *testing.T, b bundle) {
						exec(t, b.store.DB(), dialect, "DELETE FROM audit_events WHERE seq > 90")
					},
					firstBad: 91, problem: "checkpoint at size 101 but log ends at 90 (truncated tail)", noCheck: true,
				},
				{
					name: "rewritten after edit",
					tamper: func(t *testing.T, b bundle) {
						// Edit 42 and recompute every hash from there on, so the
						// chain is consistent again.
						db := b.store.DB()
						prev := loadEvent(t, b.store, 41).Hash
						for seq := int64(42); seq <= 101; seq++ {
							e := loadEvent(t, b.store, seq)
							if seq == 42 {
								e.Actor = "mallory"
							}
							e.PrevHash = prev
							e.Hash = HashEvent(e)
							exec(t, db, dialect, "UPDATE audit_events SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?", e.Actor, e.PrevHash, e.Hash, seq)
							prev = e.Hash
						}
					},
					firstBad: 32, problem: "checkpoint size 101: head hash differs (rewritten history somewhere in events 32..101)", noCheck: true,
				},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					b, cps, verifier := tamperSetup(t, dialect)
					tc.tamper(t, b)
					// Checkpoints as an auditor gets them: from the signed notes.
					var parsed []Checkpoint
					for _, c := range cps {
						p, err := ParseCheckpoint(c.Note, verifier)
						if err != nil {
							t.Fatal(err)
						}
						parsed = append(parsed, p)
					}
					rep := verifyBoth(t, b, parsed)
					if rep.Checkpoints != 2 {
						t.Errorf("checkpoints = %d", rep.Checkpoints)
					}
					if tc.problem == "" {
						if !rep.OK || rep.Events != 101 || rep.HeadSeq != 101 || rep.HeadHash != cps[1].Hash {
							t.Fatalf("clean log: %+v", rep)
						}
						return
					}
					if rep.OK || rep.FirstBad != tc.firstBad || rep.Problem != tc.problem {
						t.Fatalf("got  first_bad=%d problem=%q\nwant first_bad=%d problem=%q", rep.FirstBad, rep.Problem, tc.firstBad, tc.problem)
					}
					if tc.noCheck {
						bare := verifyBoth(t, b, nil)
						if !bare.OK {
							t.Fatalf("without checkpoints the chain itself should look fine: %+v", bare)
						}
					}
				})
			}
		})
	}
}

func TestVerifyExportDamage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	good := exportLines(memChain(10))
	for _, tc := range []struct {
		name, data string
		firstBad   int64
		problem    string
	}{
		{name: "empty", data: ""},
		{name: "crlf and blank lines", data: strings.ReplaceAll(string(good), "\n", "\r\n") + "\n\n"},
		{name: "garbage line", data: string(good[:bytes.IndexByte(good, '\n')+1]) + "garbage\n", firstBad: 2, problem: "line 2: cannot read event: not a JSON object"},
		{name: "unknown field", data: strings.Replace(string(good), `{"seq":3,`, `{"seq":3,"x":1,`, 1), firstBad: 3, problem: `line 3: cannot read event: offset 12: unknown field "x"`},
		{name: "missing field", data: strings.Replace(string(good), `{"seq":3,`, `{`, 1), firstBad: 3, problem: `line 3: cannot read event: missing field seq`},
		{name: "duplicated line", data: string(good) + string(good[bytes.IndexByte(good, '\n')+1:]), firstBad: 2, problem: "event 2: out of order after event 10 (duplicated or reordered?)"},
		{name: "edited byte", data: strings.Replace(string(good), `"ttl_s":3604`, `"ttl_s":3605`, 1), firstBad: 5, problem: "event 5: hash mismatch (edited?)"},
		{name: "uppercase hash", data: strings.Replace(string(good), memChain(10)[3].Hash, strings.ToUpper(memChain(10)[3].Hash), 1), firstBad: 4, problem: "event 4: hash is not 64 lowercase hex digits (edited?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep, err := Verify(ctx, JSONLSource(strings.NewReader(tc.data)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.problem == "" {
				if !rep.OK {
					t.Fatalf("%+v", rep)
				}
				return
			}
			if rep.OK || rep.FirstBad != tc.firstBad || rep.Problem != tc.problem {
				t.Fatalf("got  %d %q\nwant %d %q", rep.FirstBad, rep.Problem, tc.firstBad, tc.problem)
			}
		})
	}
}

// A long export crosses many chunks and lines longer than a chunk.
func TestVerifyLargeExport(t *testing.T) {
	t.Parallel()
	evs := memChain(20000)
	evs[777].Details = []byte(`{"blob":"` + strings.Repeat("x", 3*chunkSize) + `"}`)
	for i := 777; i < len(evs); i++ {
		if i > 0 {
			evs[i].PrevHash = evs[i-1].Hash
		}
		evs[i].Hash = HashEvent(evs[i])
	}
	data := exportLines(evs)
	rep, err := Verify(context.Background(), JSONLSource(bytes.NewReader(data)), []Checkpoint{{Size: 20000, Hash: evs[19999].Hash}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Events != 20000 || rep.HeadHash != evs[19999].Hash {
		t.Fatalf("%+v", rep)
	}
	// Damage near the end.
	i := bytes.LastIndex(data, []byte(`"seq":19990,`))
	data[i+len(`"seq":19990,"time":"2`)] = '1'
	rep, err = Verify(context.Background(), JSONLSource(bytes.NewReader(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstBad != 19990 {
		t.Fatalf("%+v", rep)
	}
}

func TestVerifyCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, JSONLSource(bytes.NewReader(exportLines(memChain(5000)))), nil); err == nil {
		t.Fatal("want an error")
	}
}
