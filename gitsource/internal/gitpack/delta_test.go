package gitpack

import (
	"bytes"
	"errors"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// FuzzApplyDelta: applyDelta against go-git's PatchDelta. They accept the
// same deltas and agree on the result, except that go-git refuses an empty
// base or a delta under 4 bytes (git does not) and accepts a size whose
// last byte is missing (git does not).
func FuzzApplyDelta(f *testing.F) {
	f.Add([]byte("hello, world"), []byte{12, 11, 0x91, 0, 5, 6, ' ', 't', 'h', 'e', 'r', 'e'})
	f.Add([]byte("abc"), []byte{3, 3, 0x90, 3})
	f.Add([]byte("abc"), []byte{3, 2, 0x80})
	f.Fuzz(func(t *testing.T, base, delta []byte) {
		ours, err := applyDelta(nil, base, delta)
		theirs, theirErr := packfile.PatchDelta(base, delta)
		if err != nil {
			if theirErr == nil && !errors.Is(err, errDeltaHeader) {
				t.Fatalf("applyDelta refused (%v) a delta go-git applies: %x", err, delta)
			}
			return
		}
		if theirErr != nil {
			if len(base) == 0 || len(delta) < 4 {
				return
			}
			t.Fatalf("applyDelta accepted a delta go-git refuses (%v): %x", theirErr, delta)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("applyDelta = %q, go-git = %q", ours, theirs)
		}
	})
}
