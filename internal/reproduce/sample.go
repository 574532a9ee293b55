package reproduce

import (
	"crypto/sha256"
	"encoding/binary"
)

// sampleDomain separates the audit's hash from every other use of a run
// ID (run IDs are themselves sha256 digests, and their first digits name
// Jobs and short IDs).
const sampleDomain = "expsync audit sample v1\x00"

// Sampled tells whether the audit re-executes the run: whether the first
// 8 bytes of sha256(sampleDomain + runID), read as a fraction of 2^64, fall
// below fraction. Deterministic, so every serve process (and a reviewer
// checking the audit's coverage) agrees on the sample without talking to
// the others; monotonic, so raising the fraction keeps every run sampled
// before; and uniform, whatever the run IDs share.
func Sampled(runID string, fraction float64) bool {
	switch {
	case fraction <= 0:
		return false
	case fraction >= 1:
		return true
	}
	sum := sha256.Sum256([]byte(sampleDomain + runID))
	return float64(binary.BigEndian.Uint64(sum[:8])) < fraction*(1<<64)
}
