package gitpack

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// The canaries: each test passes while go-git v5 behaves as the package
// documentation says (the reason a workaround exists) and fails, naming
// the workaround to reconsider, once go-git changes. They run the git CLI
// (a real repository, real packs) and go-git side by side.

// TestGoGitParserHoldsTheBases: go-git's packfile.Parser (what its
// filesystem storage indexes a received pack with) holds the delta bases
// of a pack of similar files in memory, several times what Index holds for
// the same pack; both write the index `git index-pack` writes.
func TestGoGitParserHoldsTheBases(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds a 2,000-file repository with the git CLI")
	}
	pack := similarFilesPack(t, 2000, 4096)
	want := gitIndexPack(t, pack)

	var ours []byte
	oursPeak := peakHeap(t, func() {
		f, err := os.Open(pack)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, ours, err = Index(context.Background(), f, math.MaxInt64); err != nil {
			t.Fatal(err)
		}
	})
	var theirs bytes.Buffer
	theirPeak := peakHeap(t, func() {
		f, err := os.Open(pack)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w := new(idxfile.Writer)
		p, err := packfile.NewParser(packfile.NewScanner(f), w)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Parse(); err != nil {
			t.Fatal(err)
		}
		idx, err := w.Index()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := idxfile.NewEncoder(&theirs).Encode(idx); err != nil {
			t.Fatal(err)
		}
	})
	if !bytes.Equal(ours, want) {
		t.Fatal("Index's index differs from git index-pack's")
	}
	if !bytes.Equal(theirs.Bytes(), want) {
		t.Logf("go-git's index differs from git index-pack's (%d bytes vs %d)", theirs.Len(), len(want))
	}
	ratio := float64(theirPeak) / float64(max(oursPeak, 1))
	t.Logf("peak heap indexing a %d-file pack of similar blobs: go-git's parser %.1f MiB, Index %.1f MiB (%.1fx)",
		2000, mib(theirPeak), mib(oursPeak), ratio)
	if ratio < 3 {
		t.Errorf("go-git's parser now peaks at %.1fx Index's heap (was ~10x): go-git may index with bounded memory now "+
			"(https://github.com/go-git/go-git/issues/1774, pull 2069); consider dropping Index and FetchStorage (see doc.go)", ratio)
	}
}

// TestGoGitLoadsEveryPackIndex: a go-git filesystem storage opened on a
// repository of many packs reads every pack's index to find one object;
// that per-open cost, growing with the packs, is why gitsource merges
// them (Merge).
func TestGoGitLoadsEveryPackIndex(t *testing.T) {
	const packs = 12
	bare := filepath.Join(t.TempDir(), "many.git")
	runGit(t, "", "init", "-q", "--bare", "-b", "main", bare)
	var last string
	for i := range packs {
		// Each fast-import run writes its objects as one pack (also when
		// small: unpackLimit 0).
		parent := ""
		if i > 0 {
			parent = "from refs/heads/main^0\n"
		}
		stream := fmt.Sprintf("blob\nmark :1\ndata %d\n%s\ncommit refs/heads/main\nmark :2\ncommitter t <t@t> %d +0000\ndata 2\nc%d\n%sM 100644 :1 f%d.txt\n\n",
			len(fmt.Sprint(i))+1, fmt.Sprint(i), 1700000000+i, i%10, parent, i)
		runGitIn(t, bare, stream, "-c", "fastimport.unpackLimit=0", "fast-import", "--quiet")
		last = strings.TrimSpace(runGit(t, bare, "rev-parse", "main"))
	}
	names, err := filepath.Glob(filepath.Join(bare, "objects", "pack", "pack-*.idx"))
	if err != nil || len(names) != packs {
		t.Fatalf("%d pack indexes (%v), want %d: the set-up is wrong", len(names), err, packs)
	}
	fs := &countingFS{Filesystem: osfs.New(bare)}
	st := filesystem.NewStorage(fs, cache.NewObjectLRUDefault())
	defer st.Close()
	if _, err := st.EncodedObject(plumbing.CommitObject, plumbing.NewHash(last)); err != nil {
		t.Fatal(err)
	}
	opened := fs.opened(".idx")
	t.Logf("finding one commit in a repository of %d packs opened %d pack indexes", packs, opened)
	if opened < packs {
		t.Errorf("go-git read %d of %d pack indexes to find one object: it may use a multi-pack index or look packs up "+
			"lazily now (https://github.com/go-git/go-git/issues/1821); consider dropping the pack merge (see doc.go)", opened, packs)
	}
}

// countingFS counts the files opened through it, by name.
type countingFS struct {
	billy.Filesystem
	mu    sync.Mutex
	names []string
}

func (c *countingFS) Open(name string) (billy.File, error) {
	c.note(name)
	return c.Filesystem.Open(name)
}

func (c *countingFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	c.note(name)
	return c.Filesystem.OpenFile(name, flag, perm)
}

func (c *countingFS) note(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names = append(c.names, name)
}

func (c *countingFS) opened(suffix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, name := range c.names {
		if strings.HasSuffix(name, suffix) {
			n++
		}
	}
	return n
}

// similarFilesPack writes a repository of n files of size bytes that
// differ in a few bytes each (source code: nearly every blob a delta) and
// returns the path of a pack of it made by `git pack-objects`.
func similarFilesPack(t testing.TB, n, size int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	base := make([]byte, size)
	for i := range base {
		base[i] = 'a' + byte(rng.IntN(26))
	}
	var stream bytes.Buffer
	for i := range n {
		blob := bytes.Clone(base)
		for range 4 {
			blob[rng.IntN(size)] = '0' + byte(i%10)
		}
		fmt.Fprintf(&stream, "blob\nmark :%d\ndata %d\n%s\n", i+1, len(blob), blob)
	}
	fmt.Fprintf(&stream, "commit refs/heads/main\ncommitter t <t@t> 1700000000 +0000\ndata 2\nc\n")
	for i := range n {
		fmt.Fprintf(&stream, "M 100644 :%d d%d/f%d.txt\n", i+1, i/100, i)
	}
	stream.WriteString("\n")
	bare := filepath.Join(t.TempDir(), "similar.git")
	runGit(t, "", "init", "-q", "--bare", "-b", "main", bare)
	runGitIn(t, bare, stream.String(), "fast-import", "--quiet")
	data := runGitIn(t, bare, "main\n", "pack-objects", "-q", "--revs", "--stdout", "--delta-base-offset")
	path := filepath.Join(t.TempDir(), "similar.pack")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// gitIndexPack indexes a pack with `git index-pack`: the peer's index.
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

func runGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return runGitIn(t, dir, "", args...)
}

// runGitIn runs git in dir with stdin, isolated from the user's and the
// machine's configuration, and returns its output.
func runGitIn(t testing.TB, dir, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// peakHeap runs f and returns the most heap its objects took at once,
// sampled every 100 µs with the collector running often (GOGC 10) so that
// the heap is close to what is live.
func peakHeap(t testing.TB, f func()) uint64 {
	t.Helper()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	floor := sample[0].Value.Uint64()
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	f()
	close(done)
	<-sampled
	if p := peak.Load(); p > floor {
		return p - floor
	}
	return 0
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
