package gitsource

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/expsync/expsync/gitsource/internal/gitpack"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
)

// packOf builds a pack of everything reachable from main in bare with `git
// pack-objects` (extra arguments: delta encoding, thin packs) and returns
// its path.
func packOf(t testing.TB, bare, revs string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"pack-objects", "-q", "--revs", "--stdout"}, args...)...)
	cmd.Dir = bare
	cmd.Env = gitEnv(os.TempDir())
	cmd.Stdin = strings.NewReader(revs)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	data, err := cmd.Output()
	if err != nil {
		t.Fatalf("git pack-objects: %v: %s", err, stderr.String())
	}
	path := filepath.Join(t.TempDir(), "test.pack")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// gitIndexPack indexes a pack with `git index-pack` and returns the index.
func gitIndexPack(t testing.TB, pack string) []byte {
	t.Helper()
	idx := strings.TrimSuffix(pack, ".pack") + ".git.idx"
	runGit(t, filepath.Dir(pack), "index-pack", "-o", idx, pack)
	data, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func indexPackFile(t testing.TB, path string) ([]byte, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, idx, err := gitpack.Index(context.Background(), f, noInflateLimit)
	return idx, err
}

// TestIndexPackMatchesGitIndexPack: our index of a pack is byte for byte
// the one `git index-pack` writes, for packs without deltas, with OFS
// deltas in chains up to 50 deep, and with REF deltas (a base named by
// hash, which may itself be a delta).
func TestIndexPackMatchesGitIndexPack(t *testing.T) {
	root := t.TempDir()
	random := filepath.Join(root, "random.git")
	generateRepo(t, random, 20, 300)
	similar := filepath.Join(root, "similar.git")
	generateSimilarRepo(t, similar, 20, 600)
	for _, c := range []struct {
		name, repo string
		args       []string
		minDeltas  int
	}{
		{"random files, no deltas", random, []string{"--delta-base-offset", "--depth=0"}, 0},
		{"random files, all history", random, []string{"--delta-base-offset"}, 0},
		{"similar files, OFS deltas", similar, []string{"--delta-base-offset", "--depth=50"}, 500},
		{"similar files, REF deltas", similar, []string{"--depth=50"}, 500},
		{"similar files, long chains", similar, []string{"--delta-base-offset", "--depth=200", "--window=50"}, 500},
	} {
		t.Run(c.name, func(t *testing.T) {
			pack := packOf(t, c.repo, "main\n", c.args...)
			got, err := indexPackFile(t, pack)
			if err != nil {
				t.Fatal(err)
			}
			want := gitIndexPack(t, pack)
			if !bytes.Equal(got, want) {
				t.Fatalf("index differs from git index-pack's: %d bytes vs %d", len(got), len(want))
			}
			if deltas := countDeltas(t, pack); deltas < c.minDeltas {
				t.Fatalf("the pack has only %d deltas: the case tests nothing", deltas)
			}
		})
	}
}

// countDeltas counts the pack's delta objects (git verify-pack -v).
func countDeltas(t testing.TB, pack string) int {
	t.Helper()
	idx := strings.TrimSuffix(pack, ".pack") + ".idx"
	runGit(t, filepath.Dir(pack), "index-pack", "-o", idx, pack)
	out := runGit(t, filepath.Dir(pack), "verify-pack", "-v", idx)
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 7 { // "sha type size size-in-pack offset depth base"
			n++
		}
	}
	return n
}

// TestIndexPackRefusesDamagedPacks: a damaged or incomplete pack is an
// error that says so (and that isCorruption recognises, so the cache is
// fetched afresh), never a panic or a wrong index.
func TestIndexPackRefusesDamagedPacks(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "similar.git")
	generateSimilarRepo(t, bare, 5, 200)
	pack, err := os.ReadFile(packOf(t, bare, "main\n", "--delta-base-offset"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(at int) []byte {
		b := bytes.Clone(pack)
		b[at] ^= 0x40
		return b
	}
	thin, err := os.ReadFile(packOf(t, bare, "main\n^main~1\n", "--thin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pack []byte
		want string
	}{
		{"bad signature", flip(0), "malformed"},
		{"damaged object data", flip(len(pack) / 2), ""},
		{"damaged checksum", flip(len(pack) - 1), "checksum"},
		{"truncated", pack[:len(pack)-100], ""},
		{"empty", nil, ""},
		{"thin pack: a delta's base is not in the pack", thin, "reference delta not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, idx, err := gitpack.Index(context.Background(), bytes.NewReader(c.pack), noInflateLimit)
			if err == nil {
				t.Fatalf("indexed a damaged pack (%d index bytes)", len(idx))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
			if c.want != "" && !isCorruption(err) {
				t.Fatalf("isCorruption(%q) = false: the cache would not be fetched afresh", err)
			}
		})
	}
}

// FuzzIndexPack: a received pack is hostile input. gitpack.Index must not
// panic; an index it returns must decode and list as many objects as its
// fan-out table says.
func FuzzIndexPack(f *testing.F) {
	bare := filepath.Join(f.TempDir(), "similar.git")
	generateSimilarRepo(f, bare, 3, 20)
	for _, args := range [][]string{{"--delta-base-offset"}, {}} {
		data, err := os.ReadFile(packOf(f, bare, "main\n", args...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, pack []byte) {
		_, data, err := gitpack.Index(context.Background(), bytes.NewReader(pack), 64<<20) // fuzzing what a pack makes, not how long making it takes
		if err != nil {
			return // refused: what matters is that it did not panic
		}
		idx := idxfile.NewMemoryIndex()
		if err := idxfile.NewDecoder(bytes.NewReader(data)).Decode(idx); err != nil {
			t.Fatalf("our index does not decode: %v", err)
		}
		if _, err := idx.Count(); err != nil {
			t.Fatal(err)
		}
	})
}

// handPack writes a version 2 pack object by object, for packs git would
// never make (hostile servers).
type handPack struct {
	objects bytes.Buffer
	count   uint32
}

// add appends an object (typ 1-4; 6 is an OFS delta on the object at
// base) and returns its offset.
func (p *handPack) add(t testing.TB, typ byte, base int64, data []byte) int64 {
	t.Helper()
	return p.addRepeated(t, typ, base, data, 1)
}

// addRepeated appends the object n times (the same base for deltas),
// compressing it once, and returns the first one's offset.
func (p *handPack) addRepeated(t testing.TB, typ byte, base int64, data []byte, n int) int64 {
	t.Helper()
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	first := int64(12 + p.objects.Len())
	for range n {
		p.addCompressed(typ, base, len(data), z.Bytes())
	}
	return first
}

func (p *handPack) addCompressed(typ byte, base int64, size int, compressed []byte) {
	offset := int64(12 + p.objects.Len())
	hdr := []byte{typ<<4 | byte(size&0x0f)}
	for size >>= 4; size > 0; size >>= 7 {
		hdr[len(hdr)-1] |= 0x80
		hdr = append(hdr, byte(size&0x7f))
	}
	p.objects.Write(hdr)
	if typ == 6 { // the base's distance, big-endian base-128 with the offset-by-one of git's encoding
		d := offset - base
		enc := []byte{byte(d & 0x7f)}
		for d >>= 7; d > 0; d >>= 7 {
			d--
			enc = append([]byte{byte(0x80 | d&0x7f)}, enc...)
		}
		p.objects.Write(enc)
	}
	p.objects.Write(compressed)
	p.count++
}

func (p *handPack) bytes() []byte {
	out := []byte{'P', 'A', 'C', 'K', 0, 0, 0, 2}
	out = binary.BigEndian.AppendUint32(out, p.count)
	out = append(out, p.objects.Bytes()...)
	sum := sha1.Sum(out)
	return append(out, sum[:]...)
}

// copyDelta makes a delta from a base of baseSize bytes to n copies of
// its first 64 KiB: one instruction byte (0x80) per copy.
func copyDelta(baseSize, n int) []byte {
	d := binary.AppendUvarint(nil, uint64(baseSize))
	d = binary.AppendUvarint(d, uint64(n)<<16)
	return append(d, bytes.Repeat([]byte{0x80}, n)...)
}

// TestIndexPackBoundsWhatDeltasMake: a delta declares what it makes, and
// a few hundred bytes of pack can declare gigabytes (each byte 0x80 copies
// 64 KiB). gitpack.Index refuses a delta result over its per-object bound, or
// a chain whose contents together pass its per-chain bound, before making
// it, with ErrRepoTooLarge (not corruption: fetching again gets the same
// pack); a chain within the bounds is indexed as git does.
func TestIndexPackBoundsWhatDeltasMake(t *testing.T) {
	base := bytes.Repeat([]byte("a"), 1<<16)
	cases := []struct {
		name   string
		copies []int // the chain: each delta n copies of its base's first 64 KiB
		refuse bool
	}{
		{"within the bounds", []int{64, 32, 16}, false},
		{"one object over the per-object bound", []int{(gitpack.MaxResolvedObjectBytes >> 16) + 1}, true},
		{"a chain over the per-chain bound", []int{8192, 8192}, true}, // 2 x 512 MiB
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p handPack
			at := p.add(t, 3, 0, base) // a blob
			size := len(base)
			for _, n := range c.copies {
				at = p.add(t, 6, at, copyDelta(size, n))
				size = n << 16
			}
			pack := p.bytes()
			t.Logf("%d-byte pack declaring a %d-byte object", len(pack), size)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, idx, err := gitpack.Index(context.Background(), bytes.NewReader(pack), noInflateLimit)
			runtime.ReadMemStats(&after)
			if !c.refuse {
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), "hand.pack")
				if err := os.WriteFile(path, pack, 0o644); err != nil {
					t.Fatal(err)
				}
				if want := gitIndexPack(t, path); !bytes.Equal(idx, want) {
					t.Fatal("index differs from git index-pack's")
				}
				return
			}
			if err == nil || !errors.Is(err, ErrRepoTooLarge) || isCorruption(err) {
				t.Fatalf("gitpack.Index = %v (allocated %d MiB), want ErrRepoTooLarge, not corruption",
					err, (after.TotalAlloc-before.TotalAlloc)>>20)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > gitpack.MaxResolvedChainBytes {
				t.Errorf("refusing allocated %d MiB", got>>20)
			}
		})
	}
}
