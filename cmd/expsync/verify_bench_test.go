package main

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkVerifyCLI1000Folders runs `expsync verify` over a results tree of
// 1,000 run folders with --repo against a repository of 100 commits, and
// reports folders per second (signature, statement, subjects, run ID, and
// tree, blob and commit presence, for every folder).
func BenchmarkVerifyCLI1000Folders(b *testing.B) {
	repo := experimentRepo(b, "add pi", "print(3.14)\n")
	for i := 0; i < 100; i++ {
		repo.write(fmt.Sprintf("notes/n%03d.md", i), fmt.Sprintf("note %d\n", i))
		repo.commit(fmt.Sprintf("note %d", i))
	}
	signer, pub := keyFiles(b, b.TempDir(), "lab")
	results := b.TempDir()
	for i := 0; i < 1000; i++ {
		writeSignedRun(b, results, runFromRepo(b, repo, i), signer)
	}
	o := verifyOptions{Paths: []string{results}, Keys: []string{pub}, Repo: repo.dir,
		RequireAll: true, RequireCommit: true, Output: "text", Threshold: 1}
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n++ {
		if err := o.Exec(context.Background(), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(1000*b.N)/time.Since(start).Seconds(), "folders/s")
}
