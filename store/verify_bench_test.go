package store

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// BenchmarkVerifyOncePerProcess puts what a run pays per input object
// (Verify of an object this process verified: one stat and a map lookup)
// side by side with rehashing it (what a new process pays once), for a
// 4 MiB input.
//
//	go test -run '^$' -bench VerifyOncePerProcess ./store
func BenchmarkVerifyOncePerProcess(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	s, err := OpenLocal(dir)
	if err != nil {
		b.Fatal(err)
	}
	obj, err := s.PutBytes(ctx, bytes.Repeat([]byte("0123456789abcdef"), 256<<10))
	if err != nil {
		b.Fatal(err)
	}
	var cached, rehash time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fresh, _ := OpenLocal(dir) // a new process: nothing verified yet
		t0 := time.Now()
		if err := fresh.Verify(ctx, obj.SHA256); err != nil {
			b.Fatal(err)
		}
		rehash += time.Since(t0)
		t0 = time.Now()
		if err := fresh.Verify(ctx, obj.SHA256); err != nil {
			b.Fatal(err)
		}
		cached += time.Since(t0)
	}
	b.StopTimer()
	b.ReportMetric(float64(cached.Nanoseconds())/float64(b.N), "verified-ns/op")
	b.ReportMetric(float64(rehash.Nanoseconds())/float64(b.N), "rehash-ns/op")
	b.ReportMetric(float64(rehash)/float64(cached), "rehash/verified")
}
