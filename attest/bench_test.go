package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// statement2KiB is a real run statement grown with output subjects to at
// least 2 KiB, the size the performance target is stated for.
func statement2KiB(b testing.TB) []byte {
	b.Helper()
	run := testRun(b, testIdentity(1))
	run.Subjects = testSubjects()
	for i := 0; ; i++ {
		raw, err := MarshalStatement(run)
		if err != nil {
			b.Fatal(err)
		}
		if len(raw) >= 2048 {
			return raw
		}
		run.Subjects = append(run.Subjects, Subject{Name: fmt.Sprintf("outputs/part-%03d.json", i), SHA256: strings.Repeat("e", 64)})
	}
}

// sideBySide times ours and raw over the same n iterations, interleaved in
// chunks so machine noise hits both alike, and reports each side's ns/op
// and ours' rate as a fraction of raw's (1.0 = as fast as raw crypto).
func sideBySide(b *testing.B, ours, raw func()) {
	const chunk = 16
	var tOurs, tRaw time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		start := time.Now()
		for i := 0; i < n; i++ {
			ours()
		}
		mid := time.Now()
		for i := 0; i < n; i++ {
			raw()
		}
		tOurs += mid.Sub(start)
		tRaw += time.Since(mid)
	}
	b.StopTimer()
	b.ReportMetric(float64(tOurs.Nanoseconds())/float64(b.N), "ours-ns/op")
	b.ReportMetric(float64(tRaw.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(tRaw)/float64(tOurs), "rate-vs-raw")
}

func BenchmarkSignVsRaw(b *testing.B) {
	stmt := statement2KiB(b)
	b.Run("ecdsa-p256", func(b *testing.B) {
		s := testSigner(b, KeyECDSA)
		priv := testKeys[KeyECDSA].(*ecdsa.PrivateKey)
		sideBySide(b, func() { must(s.Sign(stmt)) }, func() {
			sum := sha256.Sum256(stmt)
			must(ecdsa.SignASN1(rand.Reader, priv, sum[:]))
		})
	})
	b.Run("ed25519", func(b *testing.B) {
		s := testSigner(b, KeyEd25519)
		priv := testKeys[KeyEd25519].(ed25519.PrivateKey)
		sideBySide(b, func() { must(s.Sign(stmt)) }, func() { _ = ed25519.Sign(priv, stmt) })
	})
}

// BenchmarkVerifyVsRaw puts raw signature verification of the statement
// beside ours at two depths: "dsse" is VerifyDSSE (parse the envelope,
// decode, PAE, check the signature and payload type), "full" is
// VerifyEnvelope (that plus parsing and checking the statement).
func BenchmarkVerifyVsRaw(b *testing.B) {
	stmt := statement2KiB(b)
	type algo struct {
		name string
		kt   KeyType
		raw  func() bool
	}
	ecPriv := func() *ecdsa.PrivateKey { testSigner(b, KeyECDSA); return testKeys[KeyECDSA].(*ecdsa.PrivateKey) }()
	edPriv := func() ed25519.PrivateKey { testSigner(b, KeyEd25519); return testKeys[KeyEd25519].(ed25519.PrivateKey) }()
	sum := sha256.Sum256(stmt)
	ecSig, _ := ecdsa.SignASN1(rand.Reader, ecPriv, sum[:])
	edSig := ed25519.Sign(edPriv, stmt)
	algos := []algo{
		{"ecdsa-p256", KeyECDSA, func() bool {
			sum := sha256.Sum256(stmt)
			return ecdsa.VerifyASN1(&ecPriv.PublicKey, sum[:], ecSig)
		}},
		{"ed25519", KeyEd25519, func() bool { return ed25519.Verify(edPriv.Public().(ed25519.PublicKey), stmt, edSig) }},
	}
	for _, a := range algos {
		s := testSigner(b, a.kt)
		env := mustSign(b, s, stmt)
		keys := Verifiers{keyOf(b, s)}
		raw := func() {
			if !a.raw() {
				b.Fatal("raw verify failed")
			}
		}
		b.Run(a.name+"/dsse", func(b *testing.B) {
			sideBySide(b, func() { must(VerifyDSSE(env, keys, VerifyOptions{})) }, raw)
		})
		b.Run(a.name+"/full", func(b *testing.B) {
			sideBySide(b, func() { must(VerifyEnvelope(env, keys, VerifyOptions{})) }, raw)
		})
	}
}

// BenchmarkVerifyFolders verifies 1,000 results folders (signature,
// statement, four subjects hashed, unattested-file scan, run ID recomputed)
// per iteration and reports folders per second.
func BenchmarkVerifyFolders(b *testing.B) {
	const folders = 1000
	s := testSigner(b, KeyECDSA)
	root := b.TempDir()
	dirs := make([]string, folders)
	for i := range dirs {
		id := testIdentity(i)
		dirs[i] = writeRunFolder(b, root, id, testRun(b, id), s)
	}
	opts := FolderOptions{Keys: Verifiers{keyOf(b, s)}, RequireAll: true, Store: storeWith(b, []byte(storeOnlyContent))}
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n++ {
		for _, d := range dirs {
			if _, err := VerifyFolder(d, opts); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(folders*b.N)/time.Since(start).Seconds(), "folders/s")
	_ = filepath.Separator
}

func must[T any](_ T, err error) {
	if err != nil {
		panic(err)
	}
}

var _ crypto.Signer = ed25519.PrivateKey(nil)

// BenchmarkMarshalStatement is what one run's statement costs to encode
// (protojson, compacted), to set beside a run's seconds:
// `go test -run '^$' -bench MarshalStatement ./attest`.
func BenchmarkMarshalStatement(b *testing.B) {
	run := testRun(b, testIdentity(1))
	run.Subjects = testSubjects()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalStatement(run); err != nil {
			b.Fatal(err)
		}
	}
}
