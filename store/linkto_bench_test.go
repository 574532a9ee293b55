package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLinkToSmall places a small context file by a hard link (what
// LinkTo does) and by a copy from memory (what would keep a run as root off
// the store's inodes), side by side.
//
//	go test -run '^$' -bench LinkToSmall ./store
func BenchmarkLinkToSmall(b *testing.B) {
	for _, executable := range []bool{false, true} {
		name := "link"
		if executable {
			name = "copy" // executables are copied, from memory when small
		}
		b.Run(name, func(b *testing.B) {
			s, err := OpenLocal(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			obj, err := s.PutBytes(context.Background(), []byte("print('a small context file')\n"))
			if err != nil {
				b.Fatal(err)
			}
			dir := b.TempDir()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dst := filepath.Join(dir, fmt.Sprint(i))
				if _, err := s.LinkTo(context.Background(), obj.SHA256, dst, executable); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.Remove(dst)
				b.StartTimer()
			}
		})
	}
}
