package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
)

// BenchmarkPutRunFile caches one small result.json per run from many
// goroutines at once, as the local executor does for a sweep, written as an
// unnamed file linked in (the default) and via a named temp file and a
// rename (the fallback), side by side. The file system's cost varies a lot
// with other load: compare the two within one run, and read the system CPU
// time (/usr/bin/time) as much as ns/op.
//
//	go test -run '^$' -bench PutRunFile -cpu 20 -count 3 ./store
func BenchmarkPutRunFile(b *testing.B) {
	for _, unnamed := range []bool{true, false} {
		b.Run(map[bool]string{true: "unnamed", false: "temp-rename"}[unnamed], func(b *testing.B) {
			s, err := OpenLocal(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			s.noTmpfile.Store(!unnamed)
			data := make([]byte, 1500)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var id [16]byte
				for pb.Next() {
					_, _ = rand.Read(id[:])
					if err := s.PutRunFile(context.Background(), hex.EncodeToString(id[:]), "result.json", data); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
