package reproduce

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFirstDifferenceVsCmp finds where two 64 MiB outputs first differ
// (their last byte) side by side with `cmp`, the Unix tool for it, reading
// the same files, and reports the ratio.
//
//	go test -run '^$' -bench FirstDifferenceVsCmp ./internal/reproduce
func BenchmarkFirstDifferenceVsCmp(b *testing.B) {
	cmpPath, err := exec.LookPath("cmp")
	if err != nil {
		b.Skip("cmp (diffutils) is the peer this is measured against and is not installed")
	}
	dir := b.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20)
	a, c := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, data, 0o644)
	data[len(data)-1] = 'x'
	os.WriteFile(c, data, 0o644)
	var ours, peer time.Duration
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		fa, _ := os.Open(a)
		fb, _ := os.Open(c)
		off, ok := firstDifference(context.Background(), fa, fb)
		fa.Close()
		fb.Close()
		ours += time.Since(t0)
		if !ok || off != int64(len(data)-1) {
			b.Fatalf("first difference %d %v", off, ok)
		}
		t0 = time.Now()
		if err := exec.Command(cmpPath, "-s", a, c).Run(); err == nil {
			b.Fatal("cmp found no difference")
		}
		peer += time.Since(t0)
	}
	b.StopTimer()
	b.ReportMetric(float64(ours.Microseconds())/float64(b.N), "ours-µs/op")
	b.ReportMetric(float64(peer.Microseconds())/float64(b.N), "cmp-µs/op")
	b.ReportMetric(float64(ours)/float64(peer), "ours/cmp")
}
