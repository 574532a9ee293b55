package local

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzJournalReplay: any journal content replays without panicking, returns
// only runs with an ID, and leaves the journal empty.
func FuzzJournalReplay(f *testing.F) {
	f.Add([]byte(`{"op":"run","runID":"ab","contract":{}}` + "\n" + `{"op":"start","runID":"ab","pgid":5}` + "\n"))
	f.Add([]byte(`{"op":"run","runID":"ab"}` + "\n" + `{"op":"end","runID":"ab"}` + "\n" + `{"op":"run","runID":"cd`))
	f.Add([]byte("\x00\xff{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "journal.jsonl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := openJournal(path)
		if err != nil {
			t.Fatal(err)
		}
		defer j.close()
		recs, err := j.replay()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, r := range recs {
			if r.RunID == "" || seen[r.RunID] {
				t.Fatalf("replay returned %+v", recs)
			}
			seen[r.RunID] = true
		}
		if fi, _ := os.Stat(path); fi.Size() != 0 {
			t.Fatalf("journal not emptied after replay")
		}
	})
}
