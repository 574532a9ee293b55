package runner

import (
	"runtime"
	"strings"
	"testing"

	"github.com/expsync/expsync/contract"
)

// TestSecretCutByTheLogLimitOrTheTailNeverLeaks: a secret that
// straddles the kept log's size limit, or the tail's cut, must not leave a
// prefix or suffix of itself in the stored log or the result's tail.
func TestSecretCutByTheLogLimitOrTheTailNeverLeaks(t *testing.T) {
	long := strings.Repeat("K3y-", 1500) // 6000 bytes: longer than the tail (a PEM key, say)
	for _, tc := range []struct {
		name, secret, script string
		maxLog               int64
	}{
		{"straddles the log limit", "ABCDEFGHIJ0123456789", `head -c 990 /dev/zero | tr '\0' x; printf %s "$TOKEN"; head -c 20000 /dev/zero | tr '\0' y; echo; echo end`, 1000},
		{"straddles the tail's start", "ABCDEFGHIJ0123456789", `head -c 50000 /dev/zero | tr '\0' x; printf %s "$TOKEN"; head -c 4086 /dev/zero | tr '\0' y`, 1000},
		{"longer than the tail, at the end", long, `echo start; printf %s "$TOKEN"; echo; echo end`, 1000},
		{"longer than the tail, log not truncated", long, `echo start; printf %s "$TOKEN"; echo; echo end`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.opts.Secrets = func(string, string) (string, bool, error) { return tc.secret, true, nil }
			f.opts.MaxLogBytes = tc.maxLog
			res := f.run(shell(tc.script).secret("TOKEN", "lab", "token").build())
			if res.Status != contract.Succeeded {
				t.Fatalf("status %s: %s", res.Status, res.Error)
			}
			log := f.blob(res.LogSHA256)
			for what, text := range map[string]string{"stored log": log, "result tail": res.LogTail} {
				if frag, ok := fragmentOf(tc.secret, text, 5); ok {
					t.Errorf("%s holds %q, a part of the secret", what, frag)
				}
			}
			if !strings.Contains(log, "[REDAC") {
				t.Errorf("no marker in the log: the command did not print the secret?")
			}
		})
	}
}

// fragmentOf finds a substring of secret of at least n bytes in text.
func fragmentOf(secret, text string, n int) (string, bool) {
	// The long secret repeats itself: checking its distinct windows is enough.
	seen := map[string]bool{}
	for i := 0; i+n <= len(secret); i++ {
		w := secret[i : i+n]
		if seen[w] {
			continue
		}
		seen[w] = true
		if strings.Contains(text, w) {
			return w, true
		}
	}
	return "", false
}

// TestLargeLogIsStoredWithoutHoldingItInMemory: a log spilled to disk is
// streamed into the store (it once held two 64 MiB copies per concurrent
// run). The runner allocates far less than the log's size.
func TestLargeLogIsStoredWithoutHoldingItInMemory(t *testing.T) {
	f := newFixture(t)
	f.opts.MaxLogBytes = 24 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := f.run(shell(`head -c 30000000 /dev/zero | tr '\0' x; echo; echo end`).build())
	runtime.ReadMemStats(&after)
	if res.Status != contract.Succeeded || !res.LogTruncated || res.LogSize < 24<<20 {
		t.Fatalf("status %s truncated %v size %d", res.Status, res.LogTruncated, res.LogSize)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("storing a %d MiB log allocated %d MiB", res.LogSize>>20, alloc>>20)
	}
}
