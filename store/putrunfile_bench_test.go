package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"testing"
)

// BenchmarkPutRunFileJournalVsFiles caches one small result.json per run
// from many goroutines at once, as the local executor does for a sweep:
// appended to the run journal (what PutRunFile does) next to one file per
// run (what it did before: an unnamed file linked in under
// runs/<aa>/<runID>.result.json). The file system's cost varies a lot with
// other load: compare the two within one run, and read the system CPU time
// (/usr/bin/time) as much as ns/op.
//
//	go test -run '^$' -bench PutRunFileJournalVsFiles -cpu 20 -count 3 ./store
func BenchmarkPutRunFileJournalVsFiles(b *testing.B) {
	for _, journal := range []bool{true, false} {
		b.Run(map[bool]string{true: "journal", false: "file-per-run"}[journal], func(b *testing.B) {
			s, err := OpenLocal(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 1500)
			ctx := context.Background()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var id [16]byte
				for pb.Next() {
					_, _ = rand.Read(id[:])
					runID := hex.EncodeToString(id[:])
					var err error
					if journal {
						err = s.PutRunFile(ctx, runID, "result.json", data)
					} else {
						err = s.writeAtomic(filepath.Join(s.root, "runs", runID[:2], runID+".result.json"), data, 0o644) // a file per run, as before the journal
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
