package gitsource

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/gitsource/internal/gitpack"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-cmp/cmp"
)

// packMergeRepo serves a generated repository of files (300 bytes each;
// file 0 is 64 KiB: go-git reads an object over 16 KiB from its pack file
// only when its content is read) over git daemon, with main at its
// first commit.
func packMergeRepo(t *testing.T, commits, files int) (*movingRepo, string) {
	t.Helper()
	root := t.TempDir()
	content := func(rng *rand.Rand, i, version int) []byte {
		data := randomContent(rng, i, version)
		if i == 0 {
			data = bytes.Repeat(data, 64<<10/len(data)+1)
		}
		return data
	}
	r := newMovingRepo(t, filepath.Join(root, "r.git"), 0, commits, files, content)
	return r, gitDaemon(t, root) + "/r.git"
}

func cachePacks(t *testing.T, src *Source) []string {
	t.Helper()
	packs, err := gitpack.List(src.packDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range packs {
		names = append(names, p.Hash.String())
	}
	return names
}

// filesAt lists every file of commit in the bare repository, as git
// archive writes them.
func filesAt(t *testing.T, bare, commit string) map[string]string {
	t.Helper()
	cmd := exec.Command("git", "archive", "--format=tar", commit)
	cmd.Dir, cmd.Env = bare, gitEnv(os.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git archive %s: %v", commit, err)
	}
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			data, _ := io.ReadAll(tr)
			files[h.Name] = string(data)
		}
	}
}

func snapshotAt(t *testing.T, src *Source, commit string) *Snapshot {
	t.Helper()
	sn, err := src.Snapshot(testCtx(t), "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	if sn.Commit != commit {
		t.Fatalf("snapshot of %s is at %s", commit, sn.Commit)
	}
	return sn
}

// TestPackMergeKeepsThePackCountBounded: every incremental fetch adds a
// pack; over three times maxCachePacks fetches the cache never holds more
// than maxCachePacks, and loses nothing: every commit fetched is still
// there, git checks every pack and the cache's connectivity, and the last
// snapshot reads what git has.
func TestPackMergeKeepsThePackCountBounded(t *testing.T) {
	fetches := 3 * maxCachePacks
	repo, url := packMergeRepo(t, fetches+1, 300)
	src, err := New(Repository{URL: url, Refs: []RefPolicy{{Pattern: "main", Trusted: true}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snapshotAt(t, src, repo.head()).Close()
	most := 0
	for i := 0; i < fetches; i++ {
		snapshotAt(t, src, repo.next(t)).Close()
		most = max(most, len(cachePacks(t, src)))
	}
	if most > maxCachePacks {
		t.Errorf("after %d incremental fetches the cache held up to %d packs, want at most %d", fetches, most, maxCachePacks)
	}
	st, err := src.openStorage()
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, c := range repo.commits {
		if !hasCommit(st, plumbing.NewHash(c)) {
			missing = append(missing, c)
		}
	}
	st.Close()
	if len(missing) > 0 {
		t.Errorf("commits fetched and no longer in the cache: %v", missing)
	}
	for _, p := range cachePacks(t, src) {
		runGit(t, src.packDir(), "verify-pack", "pack-"+p+".idx")
	}
	runGit(t, src.gitDir(), "--git-dir=.", "fsck", "--no-dangling", "--connectivity-only")
	sn := snapshotAt(t, src, repo.head())
	defer sn.Close()
	if d := cmp.Diff(filesAt(t, repo.bare, repo.head()), readAll(t, sn)); d != "" {
		t.Errorf("files after the merges (-git +ours):\n%s", d)
	}
}

// TestSnapshotReadsAcrossPackMerge: a Snapshot opened before a fetch
// merges the cache's packs reads every file afterwards, its packs gone,
// and a large file's reader opened before the merge reads on.
func TestSnapshotReadsAcrossPackMerge(t *testing.T) {
	repo, url := packMergeRepo(t, maxCachePacks+2, 300)
	src, err := New(Repository{URL: url, Refs: []RefPolicy{{Pattern: "main", Trusted: true}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snapshotAt(t, src, repo.head()).Close()
	for len(cachePacks(t, src)) < maxCachePacks {
		snapshotAt(t, src, repo.next(t)).Close()
	}
	held := snapshotAt(t, src, repo.head())
	defer held.Close()
	big, _, err := held.OpenFile("dir000/file0000.txt", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	first := make([]byte, 1000)
	if _, err := io.ReadFull(big, first); err != nil {
		t.Fatal(err)
	}
	before := cachePacks(t, src)

	snapshotAt(t, src, repo.next(t)).Close() // one pack too many: merged
	after := cachePacks(t, src)
	var kept []string
	for _, p := range before {
		if strings.Contains(strings.Join(after, " "), p) {
			kept = append(kept, p)
		}
	}
	if len(after) >= len(before) || len(before)-len(kept) < 2 {
		t.Fatalf("the fetch after %d packs merged none: %d packs before, %d after (%d kept)", len(before), len(before), len(after), len(kept))
	}
	want := filesAt(t, repo.bare, held.Commit)
	rest, err := io.ReadAll(big)
	if err != nil {
		t.Fatalf("the large file's reader opened before the merge: %v", err)
	}
	if got := string(first) + string(rest); got != want["dir000/file0000.txt"] {
		t.Errorf("the large file's reader opened before the merge read %d bytes, want the file's %d", len(got), len(want["dir000/file0000.txt"]))
	}
	if d := cmp.Diff(want, readAll(t, held)); d != "" {
		t.Errorf("the snapshot held across the merge reads (-git +ours):\n%s", d)
	}
}

// TestVerificationAfterPackMerge: once the cache's packs were merged,
// verification still refuses an unsigned commit, also one hidden under a
// signed head, and still accepts a signed one: the cache holds exactly
// the objects it had, so the walk stops where it stopped.
func TestVerificationAfterPackMerge(t *testing.T) {
	fetches := maxCachePacks + 2
	repo, url := packMergeRepo(t, fetches+1, 50)
	pub, keyFile, _ := sshSigningKey(t)
	src, err := New(Repository{URL: url, Refs: []RefPolicy{{Pattern: "main", Trusted: true}, {Pattern: "refs/pull/*/head", ResultsBranch: "results"}},
		Verify: &VerifyPolicy{SSHKeys: []string{pub}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	poll := func() []RefChange {
		t.Helper()
		ch, err := src.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	poll()
	snapshotAt(t, src, repo.head()).Close()
	for i := 0; i < fetches; i++ {
		repo.next(t)
		poll()
		snapshotAt(t, src, repo.head()).Close()
	}
	if n := len(cachePacks(t, src)); n > maxCachePacks || n >= fetches {
		t.Fatalf("after %d fetches the cache holds %d packs: not merged", fetches, n)
	}
	commit := func(parent, msg string, signed bool) string {
		t.Helper()
		args := []string{"commit-tree", "-p", parent, "-m", msg, parent + "^{tree}"}
		if signed {
			args = append([]string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + keyFile, "commit-tree", "-S"}, args[1:]...)
		}
		return runGit(t, repo.bare, args...)
	}
	unsigned := commit(repo.head(), "unsigned", false)
	hidden := commit(unsigned, "signed on an unsigned one", true)
	signed := commit(repo.head(), "signed", true)
	for ref, c := range map[string]string{"refs/pull/1/head": unsigned, "refs/pull/2/head": hidden, "refs/pull/3/head": signed} {
		runGit(t, repo.bare, "update-ref", ref, c)
	}
	type verdict struct {
		Runnable bool
		Why      string
	}
	got := map[string]verdict{}
	for _, c := range poll() {
		why := "verified"
		if !c.Runnable {
			why = c.Reason
			if strings.Contains(why, unsigned+" by ") && strings.Contains(why, "is not signed") {
				why = "unsigned commit refused"
			}
		}
		got[c.Ref] = verdict{c.Runnable, why}
	}
	want := map[string]verdict{
		"refs/pull/1/head": {false, "unsigned commit refused"},
		"refs/pull/2/head": {false, "unsigned commit refused"},
		"refs/pull/3/head": {true, "verified"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("verification after the merge (-want +got):\n%s", d)
	}
}

// TestSnapshotReadsWhilePacksMerge: readers of a Snapshot keep reading
// while another Source on the same cache folder (another process, as
// far as the cache knows) fetches and merges the packs under them,
// several times over.
func TestSnapshotReadsWhilePacksMerge(t *testing.T) {
	fetches := 2*maxCachePacks + 2
	repo, url := packMergeRepo(t, fetches+1, 300)
	cache := t.TempDir()
	newSrc := func() *Source {
		src, err := New(Repository{URL: url, Refs: []RefPolicy{{Pattern: "main", Trusted: true}}}, cache)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	reader, fetcher := newSrc(), newSrc()
	for len(cachePacks(t, fetcher)) < maxCachePacks {
		snapshotAt(t, fetcher, repo.next(t)).Close()
	}
	held := snapshotAt(t, reader, repo.head())
	defer held.Close()
	want := filesAt(t, repo.bare, held.Commit)
	done := make(chan struct{})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			for reads := 0; ; reads++ {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				for name, content := range want {
					data, err := held.ReadFile(name, 0)
					if err == nil && string(data) != content {
						err = fmt.Errorf("read %d bytes, want %d", len(data), len(content))
					}
					if err != nil {
						errs <- fmt.Errorf("read %d, %s: %w", reads, name, err)
						return
					}
				}
			}
		}()
	}
	merges := 0
	for repo.at < len(repo.commits)-1 {
		before := len(cachePacks(t, fetcher))
		snapshotAt(t, fetcher, repo.next(t)).Close()
		if len(cachePacks(t, fetcher)) < before {
			merges++
		}
	}
	close(done)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("a reader of the snapshot held across %d merges: %v", merges, err)
		}
	}
	if merges < 2 {
		t.Errorf("%d merges while the snapshot was read, want at least 2", merges)
	}
}

// TestPacksToMerge: which packs a merge takes (sizes only).
func TestPacksToMerge(t *testing.T) {
	sizes := func(n int, size func(i int) int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = size(i)
		}
		return out
	}
	for _, c := range []struct {
		name  string
		sizes []int64
		keep  int
		want  []int64 // sizes merged, smallest first
	}{
		{"a large shallow fetch and small incremental ones: the small ones",
			append([]int64{1 << 20}, sizes(17, func(int) int64 { return 4 << 10 })...), 8,
			sizes(17, func(int) int64 { return 4 << 10 })},
		{"the small ones together are half the large one: all",
			append([]int64{100}, sizes(17, func(int) int64 { return 3 })...), 8,
			append(sizes(17, func(int) int64 { return 3 }), 100)},
		{"more than keep packs of doubling sizes: all (the smallest merged outgrow the next, and so on)",
			sizes(18, func(i int) int64 { return 1 << (17 - i) }), 8,
			sizes(18, func(i int) int64 { return 1 << i })},
		{"keep packs of tripling sizes under small ones: the small ones",
			append(sizes(8, func(i int) int64 { return 1000 * int64(math.Pow(3, float64(i))) }), sizes(10, func(int) int64 { return 10 })...), 8,
			sizes(10, func(int) int64 { return 10 })},
		{"earlier merges (a progression) under new small packs: the small ones and the packs they outgrow",
			[]int64{1 << 20, 64 << 10, 16 << 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10}, 8,
			sizes(15, func(int) int64 { return 10 })},
		{"equal sizes: all", sizes(17, func(int) int64 { return 7 }), 8, sizes(17, func(int) int64 { return 7 })},
	} {
		t.Run(c.name, func(t *testing.T) {
			var packs []gitpack.Pack
			for i, s := range c.sizes {
				packs = append(packs, gitpack.Pack{Hash: plumbing.Hash{byte(i)}, Size: s})
			}
			var got []int64
			for _, p := range gitpack.ToMerge(packs, c.keep) {
				got = append(got, p.Size)
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("merged sizes (-want +got):\n%s", d)
			}
		})
	}
}
