package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func runIDOf(i int) string { return shaOf("run-" + strconv.Itoa(i)) }

// record is a journal record as PutRunFile writes it, for tests that write
// the journal by hand.
func record(runID, name string, data []byte) []byte {
	sum := sha256.Sum256(data)
	return fmt.Appendf(nil, "%s%s %s %d %s\n%s\n", journalMagic, runID, name, len(data), hex.EncodeToString(sum[:]), data)
}

func appendRaw(t testing.TB, s *Local, b []byte) {
	t.Helper()
	f, err := os.OpenFile(s.runs.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// runFiles reads the named run files of ids ("" for not found).
func runFiles(t testing.TB, s *Local, ids ...string) []string {
	t.Helper()
	var out []string
	for _, id := range ids {
		data, err := s.RunFile(context.Background(), id, "result.json")
		switch {
		case errors.Is(err, ErrNotFound):
			out = append(out, "")
		case err != nil:
			t.Fatalf("RunFile(%s): %v", id, err)
		default:
			out = append(out, string(data))
		}
	}
	return out
}

func TestRunJournalNewestWinsAndOtherReadersSeeAppends(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writer, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := OpenLocal(dir) // its own descriptors and index, as another process
	if err != nil {
		t.Fatal(err)
	}
	a, b := runIDOf(1), runIDOf(2)
	if diff := cmp.Diff([]string{"", ""}, runFiles(t, reader, a, b)); diff != "" {
		t.Errorf("empty store (-want +got):\n%s", diff)
	}
	for _, put := range []struct{ id, body string }{{a, `{"a":1}`}, {b, "two\nlines\n"}, {a, `{"a":2}`}} {
		if err := writer.PutRunFile(ctx, put.id, "result.json", []byte(put.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := writer.PutRunFile(ctx, a, "other.json", []byte("other")); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"a":2}`, "two\nlines\n"}
	for name, s := range map[string]*Local{"writer": writer, "reader that scanned before the appends": reader} {
		if diff := cmp.Diff(want, runFiles(t, s, a, b)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if got, err := reader.RunFile(ctx, a, "other.json"); err != nil || string(got) != "other" {
		t.Errorf("other.json = %q, %v", got, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "runs")); len(entries) != 1 {
		t.Errorf("runs/ holds %d entries; want only the journal", len(entries))
	}
}

func TestRunJournalSkipsTornAndCorruptRecords(t *testing.T) {
	ids := []string{runIDOf(1), runIDOf(2), runIDOf(3), runIDOf(4)}
	torn := record(ids[0], "result.json", []byte(`{"torn":"a crash cut this record short"}`))
	torn = torn[:len(torn)-15]
	bigTorn := record(ids[0], "result.json", bytes.Repeat([]byte("y"), 4096))
	bigTorn = bigTorn[:len(bigTorn)/2]
	corrupt := record(ids[1], "result.json", []byte(`{"corrupt":1}`))
	corrupt[len(corrupt)-3] ^= 1
	cases := map[string]struct {
		journal [][]byte
		want    []string
	}{
		"torn record, then others": {
			[][]byte{torn, record(ids[2], "result.json", []byte("c")), record(ids[3], "result.json", []byte("d"))},
			[]string{"", "", "c", "d"},
		},
		"torn record whose size reaches past the end, then a small one": {
			[][]byte{record(ids[2], "result.json", []byte("c")), bigTorn, record(ids[3], "result.json", []byte("d"))},
			[]string{"", "", "c", "d"},
		},
		"corrupt data": {
			[][]byte{corrupt, record(ids[2], "result.json", []byte("c"))},
			[]string{"", "", "c", ""},
		},
		"garbage and a bad header": {
			[][]byte{[]byte("garbage\n" + journalMagic + "nothex result.json 1 00\nx\n"), record(ids[3], "result.json", []byte("d"))},
			[]string{"", "", "", "d"},
		},
		"a long torn line with a record glued to its end": {
			[][]byte{[]byte(strings.Repeat("x", 200<<10)), record(ids[2], "result.json", []byte("c"))},
			[]string{"", "", "c", ""},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := newLocal(t)
			appendRaw(t, s, bytes.Join(c.journal, nil))
			if diff := cmp.Diff(c.want, runFiles(t, s, ids...)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// A later record of a skipped run is found.
			if err := s.PutRunFile(context.Background(), ids[0], "result.json", []byte("again")); err != nil {
				t.Fatal(err)
			}
			if got := runFiles(t, s, ids[0]); got[0] != "again" {
				t.Errorf("record after the damage = %q, want again", got[0])
			}
		})
	}
}

// TestRunJournalRecordBeingWritten: a record cut off by the end of the
// file is not indexed, and is found once its end arrives.
func TestRunJournalRecordBeingWritten(t *testing.T) {
	s := newLocal(t)
	id := runIDOf(1)
	rec := record(id, "result.json", []byte(`{"slow":"writer"}`))
	appendRaw(t, s, rec[:len(rec)-5])
	if got := runFiles(t, s, id); got[0] != "" {
		t.Fatalf("half-written record read as %q", got[0])
	}
	appendRaw(t, s, rec[len(rec)-5:])
	if got := runFiles(t, s, id); got[0] != `{"slow":"writer"}` {
		t.Fatalf("completed record read as %q", got[0])
	}
}

// TestRunJournalConcurrentProcesses: processes and goroutines append at
// once; every record is found whole.
func TestRunJournalConcurrentProcesses(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	const procs, goroutines, each = 3, 4, 100
	var cmds []*exec.Cmd
	for p := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRunJournalWriterProcess$")
		cmd.Env = append(os.Environ(), "EXPSYNC_JOURNAL_WRITER="+dir, "EXPSYNC_JOURNAL_PREFIX=p"+strconv.Itoa(p))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeRecords(t, s, "g"+strconv.Itoa(g), each)
		}()
	}
	wg.Wait()
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer process: %v", err)
		}
	}
	reader, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, prefix := range []string{"p0", "p1", "p2", "g0", "g1", "g2", "g3"} {
		for i := range each {
			id, body := journalEntry(prefix, i)
			if got := runFiles(t, reader, id); got[0] != body {
				missing = append(missing, fmt.Sprintf("%s/%d: %.40q", prefix, i, got[0]))
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d records missing or wrong, e.g. %v", len(missing), (procs+goroutines)*each, missing[:min(5, len(missing))])
	}
}

// TestRunJournalWriterProcess is the writer process of
// TestRunJournalConcurrentProcesses.
func TestRunJournalWriterProcess(t *testing.T) {
	dir := os.Getenv("EXPSYNC_JOURNAL_WRITER")
	if dir == "" {
		t.Skip("runs only as a helper process of TestRunJournalConcurrentProcesses")
	}
	s, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeRecords(t, s, os.Getenv("EXPSYNC_JOURNAL_PREFIX"), 100)
}

// journalEntry is record i of a writer: sizes vary from a few bytes to
// 20 KiB, so some writes span pages.
func journalEntry(prefix string, i int) (id, body string) {
	return shaOf(prefix + strconv.Itoa(i)), strings.Repeat(prefix+strconv.Itoa(i)+";", 1+(i*37)%2000)
}

func writeRecords(t testing.TB, s *Local, prefix string, n int) {
	for i := range n {
		id, body := journalEntry(prefix, i)
		if err := s.PutRunFile(context.Background(), id, "result.json", []byte(body)); err != nil {
			t.Error(err)
			return
		}
	}
}

// FuzzRunJournalScan: whatever bytes precede them (a crash's remains, a
// disk's garbage), records appended after them are found whole, and
// the scan neither panics nor invents records (no newline needed: a header
// glued to a torn record is found).
func FuzzRunJournalScan(f *testing.F) {
	f.Add([]byte(""))
	f.Add(record(runIDOf(9), "result.json", []byte("x")))
	f.Add([]byte(journalMagic + runIDOf(9) + " result.json 999999 " + strings.Repeat("0", 64) + "\nabc"))
	f.Add([]byte(journalMagic + journalMagic + "\n\n"))
	f.Fuzz(func(t *testing.T, garbage []byte) {
		s := newLocal(t)
		appendRaw(t, s, garbage)
		id := runIDOf(1)
		appendRaw(t, s, record(id, "result.json", []byte("first")))
		if err := s.PutRunFile(context.Background(), runIDOf(2), "result.json", []byte("second")); err != nil {
			t.Fatal(err)
		}
		got := runFiles(t, s, id, runIDOf(2), runIDOf(3))
		if diff := cmp.Diff([]string{"first", "second", ""}, got); diff != "" {
			t.Errorf("after %d bytes of garbage (-want +got):\n%s", len(garbage), diff)
		}
	})
}

// TestRunJournalChangedUnderAnOpenStore: the journal is deleted, replaced or
// rewritten while a store that indexed it (and one that appends to it) stay
// open. A reader never returns another record's bytes from a stale offset,
// finds what was written since, and a writer's appends land in the file
// others read, not in a deleted one.
func TestRunJournalChangedUnderAnOpenStore(t *testing.T) {
	ctx := context.Background()
	a, b := runIDOf(1), runIDOf(2)
	put := func(t *testing.T, s *Local, id, body string) {
		t.Helper()
		if err := s.PutRunFile(ctx, id, "result.json", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		change func(t *testing.T, writer *Local, path string)
		want   []string // a, b as the open reader reads them afterwards
	}{{
		// Same length, other bytes at the indexed offset: a stale index
		// read b's body as a's result.
		name: "rewritten in place, same size",
		change: func(t *testing.T, _ *Local, path string) {
			if err := os.WriteFile(path, record(b, "result.json", []byte(`{"run":"b"}`)), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		want: []string{"", `{"run":"b"}`},
	}, {
		name: "truncated, then appended to",
		change: func(t *testing.T, writer *Local, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			put(t, writer, b, "b")
		},
		want: []string{"", "b"},
	}, {
		name: "replaced by another file",
		change: func(t *testing.T, _ *Local, path string) {
			data := append(record(a, "result.json", []byte(`{"run":"a","again":true}`)), record(b, "result.json", []byte("b"))...)
			if err := os.WriteFile(path+".new", data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
		},
		want: []string{`{"run":"a","again":true}`, "b"},
	}, {
		// The writer still holds the deleted file: its next append must
		// create the journal again, where others look.
		name: "deleted, then appended to",
		change: func(t *testing.T, writer *Local, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			put(t, writer, b, "b")
		},
		want: []string{"", "b"},
	}, {
		name: "its folder deleted, then appended to",
		change: func(t *testing.T, writer *Local, path string) {
			if err := os.RemoveAll(filepath.Dir(path)); err != nil {
				t.Fatal(err)
			}
			put(t, writer, b, "b")
		},
		want: []string{"", "b"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writer, err := OpenLocal(dir)
			if err != nil {
				t.Fatal(err)
			}
			reader, err := OpenLocal(dir)
			if err != nil {
				t.Fatal(err)
			}
			put(t, writer, a, `{"run":"a"}`)
			if diff := cmp.Diff([]string{`{"run":"a"}`, ""}, runFiles(t, reader, a, b)); diff != "" {
				t.Fatalf("before the change (-want +got):\n%s", diff)
			}
			tc.change(t, writer, writer.runs.path)
			if diff := cmp.Diff(tc.want, runFiles(t, reader, a, b)); diff != "" {
				t.Errorf("open reader after the change (-want +got):\n%s", diff)
			}
			fresh, err := OpenLocal(dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, runFiles(t, fresh, a, b)); diff != "" {
				t.Errorf("a store opened after the change (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunJournalAppendsWhileTheJournalIsDeleted: goroutines append while
// the journal is deleted again and again (a cache cleared by hand); each
// deletion makes the next append reopen the path. No append fails (a
// descriptor closed under a concurrent write did), and every record
// appended after the last deletion is read back.
func TestRunJournalAppendsWhileTheJournalIsDeleted(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	const writers, rounds = 4, 200
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	stop := make(chan struct{})
	var deleter sync.WaitGroup
	deleter.Add(1)
	go func() {
		defer deleter.Done()
		for {
			select {
			case <-stop:
				return
			default:
				os.Remove(s.runs.path)
			}
		}
	}()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if err := s.PutRunFile(ctx, runIDOf(w*rounds+i), "result.json", []byte("x")); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	deleter.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("append while the journal was deleted: %v", err)
	}
	var ids, want []string
	for w := 0; w < writers; w++ {
		id := runIDOf(1_000_000 + w)
		if err := s.PutRunFile(ctx, id, "result.json", []byte("after")); err != nil {
			t.Fatal(err)
		}
		ids, want = append(ids, id), append(want, "after")
	}
	fresh, err := OpenLocal(filepath.Dir(filepath.Dir(s.runs.path)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, runFiles(t, fresh, ids...)); diff != "" {
		t.Errorf("appends after the last deletion (-want +got):\n%s", diff)
	}
}
