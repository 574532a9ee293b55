package reproduce

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func runIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		s := sha256.Sum256([]byte(fmt.Sprint("run ", i)))
		out[i] = hex.EncodeToString(s[:])
	}
	return out
}

// TestSampledIsUniformAndMonotonic: a fraction samples about that share
// of runs, every run a smaller fraction samples is sampled by a larger one,
// and 0 and 1 sample none and all.
func TestSampledIsUniformAndMonotonic(t *testing.T) {
	ids := runIDs(20000)
	prev := map[string]bool{}
	for _, f := range []float64{0, 0.01, 0.05, 0.25, 0.5, 1} {
		n := 0
		for _, id := range ids {
			s := Sampled(id, f)
			if s {
				n++
			}
			if prev[id] && !s {
				t.Fatalf("run %s sampled at a smaller fraction, not at %v", id, f)
			}
			prev[id] = s
		}
		want := f * float64(len(ids))
		// Binomial: four standard deviations (and exact at 0 and 1).
		if tol := 4 * math.Sqrt(want*(1-f)); math.Abs(float64(n)-want) > tol {
			t.Errorf("fraction %v sampled %d of %d runs, want %.0f ± %.0f", f, n, len(ids), want, tol)
		}
	}
}

// TestSampledMatchesSha256sum: the sample is what the documented recipe
// gives with coreutils' sha256sum, so anyone can tell which runs an audit
// fraction covers without expsync.
func TestSampledMatchesSha256sum(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("sha256sum (coreutils) is the independent peer of this check and is not installed")
	}
	for _, id := range runIDs(40) {
		cmd := exec.Command("sha256sum")
		cmd.Stdin = strings.NewReader("expsync audit sample v1\x00" + id)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		prefix, err := strconv.ParseUint(string(out[:16]), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []float64{0.05, 0.5} {
			if want := float64(prefix) < f*(1<<64); Sampled(id, f) != want {
				t.Errorf("run %s at %v: Sampled %v, sha256sum says %v", id, f, !want, want)
			}
		}
	}
}
