package gitsource

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/expsync/expsync/tree"
	"github.com/google/go-cmp/cmp"
)

func TestSnapshotReadsCommitTreeLikeGit(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("old", map[string]string{"old.txt": "gone later"})
	p.commit("files", map[string]string{
		"experiments/pi.yaml":  "kind: Experiment\n",
		"code/pi/estimate.py":  "print(3.14)\n",
		"code/pi/data/x.csv":   "1,2\n",
		"code/pi-extra/readme": "sorts after code/pi/ in Git order\n",
	})
	runGit(t, p.dir, "rm", "-q", "old.txt")
	if err := os.Chmod(filepath.Join(p.dir, "code/pi/estimate.py"), 0o755); err != nil {
		t.Fatal(err)
	}
	runGit(t, p.dir, "add", "-A")
	head := p.commit("exec bit", nil)
	p.push("main")

	src := newSource(t, srv, "exps")
	sn, err := src.Snapshot(testCtx(t), "main", head)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()

	if sn.Commit != head || string(sn.Tree) != runGit(t, p.dir, "rev-parse", "HEAD^{tree}") {
		t.Fatalf("snapshot commit/tree = %s/%s", sn.Commit, sn.Tree)
	}
	for _, dir := range []string{"code", "code/pi", "code/pi/data", "experiments"} {
		got, err := sn.TreeID(dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := runGit(t, p.dir, "rev-parse", "HEAD:"+dir); string(got) != want {
			t.Errorf("TreeID(%s) = %s, git says %s", dir, got, want)
		}
	}
	// ReadDir lists what `git ls-tree -l` lists, in the same order.
	entries, err := sn.ReadDir("code/pi")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		size := "-"
		if !e.IsDir() {
			size = strconv.FormatInt(e.Size, 10)
		}
		got = append(got, strings.Join([]string{"0" + strconv.FormatUint(uint64(e.Mode), 8), string(e.Hash), size, e.Name}, " "))
	}
	var want []string
	for _, line := range strings.Split(runGit(t, p.dir, "ls-tree", "-l", "HEAD:code/pi"), "\n") {
		f := strings.Fields(line) // mode type hash size\tname
		want = append(want, strings.Join([]string{strings.TrimLeft(f[0], "0") + "", f[2], f[3], f[4]}, " "))
	}
	for i := range want {
		want[i] = "0" + want[i]
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ReadDir(code/pi) vs git ls-tree (-git +ours):\n%s", d)
	}
	if e, _ := sn.Stat("code/pi/estimate.py"); e.Mode != tree.ModeExecutable {
		t.Errorf("estimate.py mode = %o, want executable", e.Mode)
	}
	wantFiles := map[string]string{
		"experiments/pi.yaml":  "kind: Experiment\n",
		"code/pi/estimate.py":  "print(3.14)\n",
		"code/pi/data/x.csv":   "1,2\n",
		"code/pi-extra/readme": "sorts after code/pi/ in Git order\n",
	}
	if d := cmp.Diff(wantFiles, readAll(t, sn)); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	if _, err := sn.ReadFile("old.txt", 0); !errors.Is(err, tree.ErrNotExist) {
		t.Errorf("deleted file: err = %v, want ErrNotExist", err)
	}
	// Nothing was checked out: the cache is a bare repository.
	if _, err := os.Stat(filepath.Join(src.gitDir(), "experiments")); !os.IsNotExist(err) {
		t.Errorf("a work tree was written into the cache: %v", err)
	}
	if sh := runGit(t, src.gitDir(), "rev-parse", "--is-shallow-repository"); sh != "true" {
		t.Errorf("cache is not shallow (%s): the fetch took history it did not need", sh)
	}
	if n := runGit(t, src.gitDir(), "tag", "-l"); n != "" {
		t.Errorf("tags were fetched: %q", n)
	}
}

func TestSnapshotRefusesEscapesAndDoesNotFollowSymlinks(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("evil")
	bare := srv.barePath("evil")
	// Build a hostile tree with plumbing (the git CLI refuses to commit it):
	// an entry named ".." holding "passwd", and a symlink to /etc.
	blob := strings.TrimSpace(mustGitIn(t, bare, []byte("root:x:0:0\n"), "hash-object", "-w", "--stdin"))
	link := strings.TrimSpace(mustGitIn(t, bare, []byte("/etc"), "hash-object", "-w", "--stdin"))
	inner := mustGitIn(t, bare, []byte("100644 blob "+blob+"\tpasswd\n"), "mktree")
	root := mustGitIn(t, bare, []byte(
		"040000 tree "+inner+"\t..\n"+
			"120000 blob "+link+"\tetc\n"+
			"100644 blob "+blob+"\tok.txt\n"), "mktree")
	commit := mustGitIn(t, bare, []byte("evil\n"), "commit-tree", root)
	runGit(t, bare, "update-ref", "refs/heads/main", commit)

	src := newSource(t, srv, "evil")
	sn, err := src.Snapshot(testCtx(t), "refs/heads/main", commit)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	for _, c := range []struct {
		path string
		want error
	}{
		{"../passwd", tree.ErrEscapes},
		{"/etc/passwd", tree.ErrEscapes},
		{"a/../../x", tree.ErrEscapes},
		{"etc", tree.ErrSymlink},
		{"etc/passwd", tree.ErrSymlink},
	} {
		if _, err := sn.ReadFile(c.path, 0); !errors.Is(err, c.want) {
			t.Errorf("ReadFile(%q) err = %v, want %v", c.path, err, c.want)
		}
	}
	if _, err := sn.ReadDir(""); !errors.Is(err, tree.ErrEscapes) {
		t.Errorf("ReadDir of a tree with a '..' entry: err = %v, want ErrEscapes", err)
	}
	if target, err := sn.ReadLink("etc"); err != nil || target != "/etc" {
		t.Errorf("ReadLink(etc) = %q, %v; want the target as data", target, err)
	}
	if data, err := sn.ReadFile("ok.txt", 0); err != nil || string(data) != "root:x:0:0\n" {
		t.Errorf("ReadFile(ok.txt) = %q, %v", data, err)
	}
}

func mustGitIn(t testing.TB, dir string, stdin []byte, args ...string) string {
	t.Helper()
	out, err := gitErr(dir, stdin, args...)
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(out)
}

func TestSnapshotSizeLimits(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("big")
	p := newPeer(t, srv.peerURL("big"))
	raw := make([]byte, 3<<20)
	if _, err := rand.Read(raw); err != nil { // incompressible, so the pack is big too
		t.Fatal(err)
	}
	big := string(raw)
	head := p.commit("big", map[string]string{"big.bin": big, "small.txt": "ok"})
	p.push("main")

	src, err := New(Repository{URL: srv.url("big"), Auth: basicAuth(), Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
		URLPolicy: URLPolicy{AllowHTTP: true}, Limits: Limits{MaxFileBytes: 1 << 20}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sn, err := src.Snapshot(testCtx(t), "main", head)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.ReadFile("big.bin", 0); !errors.Is(err, tree.ErrTooLarge) || !strings.Contains(err.Error(), "big.bin") {
		t.Errorf("3 MiB file over a 1 MiB repository limit: err = %v", err)
	}
	if _, err := sn.ReadFile("small.txt", 1); !errors.Is(err, tree.ErrTooLarge) {
		t.Errorf("caller's limit of 1 byte: err = %v", err)
	}
	if e, err := sn.Stat("big.bin"); err != nil || e.Size != int64(len(big)) {
		t.Errorf("Stat(big.bin) = %+v, %v", e, err)
	}
	if _, _, err := sn.OpenFile("big.bin", 0); !errors.Is(err, tree.ErrTooLarge) {
		t.Errorf("OpenFile over the limit: err = %v", err)
	}
	sn.Close()

	// Streaming a large file within the limits returns it exactly.
	roomy := newSource(t, srv, "big")
	sn, err = roomy.Snapshot(testCtx(t), "main", head)
	if err != nil {
		t.Fatal(err)
	}
	r, e, err := sn.OpenFile("big.bin", 0)
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(streamed) != big || e.Size != int64(len(big)) {
		t.Errorf("OpenFile(big.bin): %d bytes (want %d), %v", len(streamed), len(big), err)
	}
	sn.Close()

	// Repository limit: the cache is refused and dropped.
	tiny, err := New(Repository{URL: srv.url("big"), Auth: basicAuth(), Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
		URLPolicy: URLPolicy{AllowHTTP: true}, Limits: Limits{MaxRepoBytes: 64 << 10}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tiny.Snapshot(testCtx(t), "main", head); !errors.Is(err, ErrRepoTooLarge) || !strings.Contains(err.Error(), srv.url("big")) {
		t.Errorf("repository over MaxRepoBytes: err = %v", err)
	}
	if _, err := os.Stat(tiny.gitDir()); !os.IsNotExist(err) {
		t.Errorf("the oversized cache was kept: %v", err)
	}
}

func TestSnapshotAfterForcePushAndDeletedBranch(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	base := p.commit("base", map[string]string{"a.txt": "1"})
	c1 := p.commit("c1", map[string]string{"a.txt": "2"})
	p.push("main")

	src := newSource(t, srv, "exps")
	ctx := testCtx(t)
	if _, err := src.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	sn, err := src.Snapshot(ctx, "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()

	// Rewrite history: the observed commit c1 disappears.
	runGit(t, p.dir, "reset", "-q", "--hard", base)
	c2 := p.commit("rewritten", map[string]string{"b.txt": "new"})
	p.push("--force", "main")
	changes, err := src.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Old != c1 || changes[0].New != c2 || !changes[0].Runnable {
		t.Fatalf("force-push poll = %+v", changes)
	}
	sn, err = src.Snapshot(ctx, "main", c2)
	if err != nil {
		t.Fatalf("snapshot after force-push: %v", err)
	}
	if d := cmp.Diff(map[string]string{"a.txt": "1", "b.txt": "new"}, readAll(t, sn)); d != "" {
		t.Errorf("files after force-push (-want +got):\n%s", d)
	}
	sn.Close()
	// A commit the force-push removed is reported clearly to a Source
	// that never cached it, not as a crash.
	fresh := newSource(t, srv, "exps")
	if _, err := fresh.Snapshot(ctx, "main", c1); !errors.Is(err, ErrCommitNotFound) {
		t.Errorf("snapshot of a commit removed by force-push: err = %v", err)
	}

	// A deleted branch: reported by Poll, a clear error from Snapshot.
	runGit(t, srv.barePath("exps"), "config", "receive.denyDeleteCurrent", "ignore")
	p.push("main:keep")
	p.push(":main")
	changes, err = src.Poll(ctx)
	if err != nil || len(changes) != 1 || !changes[0].Deleted() {
		t.Fatalf("poll after delete = %+v, %v", changes, err)
	}
	_, err = src.Snapshot(ctx, "main", "")
	if !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), srv.url("exps")) {
		t.Errorf("snapshot of a deleted branch: err = %v; want ErrRefNotFound naming the repository", err)
	}
}

func TestSnapshotRecoversFromInconsistentCache(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	c1 := p.commit("c1", map[string]string{"a.txt": "1"})
	p.push("main")
	src := newSource(t, srv, "exps")
	ctx := testCtx(t)
	sn, err := src.Snapshot(ctx, "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
	// Lose one blob of the cached commit but keep the commit and its refs
	// (an interrupted write, or go-git's shallow fetch after a force-push
	// leaving an object out): the cache must be dropped and fetched again.
	packs, _ := filepath.Glob(filepath.Join(src.gitDir(), "objects", "pack", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("packs in the cache: %v", packs)
	}
	packData, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	idx := strings.TrimSuffix(packs[0], ".pack") + ".idx"
	os.Remove(packs[0])
	os.Remove(idx)
	mustGitIn(t, src.gitDir(), packData, "unpack-objects", "-q")
	blobA := runGit(t, p.dir, "rev-parse", c1+":a.txt")
	if err := os.Remove(filepath.Join(src.gitDir(), "objects", blobA[:2], blobA[2:])); err != nil {
		t.Fatal(err)
	}
	sn, err = src.Snapshot(ctx, "main", c1)
	if err != nil {
		t.Fatalf("snapshot with a broken cache: %v", err)
	}
	defer sn.Close()
	if d := cmp.Diff(map[string]string{"a.txt": "1"}, readAll(t, sn)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if got := src.Stats().CacheDrops; got != 1 {
		t.Errorf("cache drops = %d, want 1", got)
	}
}

func TestSnapshotOfACommitBehindTheRefHead(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	c1 := p.commit("c1", map[string]string{"a.txt": "1"})
	p.commit("c2", map[string]string{"a.txt": "2"})
	p.push("main")
	// Without the server's permission, a commit that is no ref's tip
	// cannot be fetched by ID: a clear error.
	if _, err := newSource(t, srv, "exps").Snapshot(testCtx(t), "main", c1); !errors.Is(err, ErrCommitNotFound) {
		t.Fatalf("err = %v, want ErrCommitNotFound", err)
	}
	runGit(t, srv.barePath("exps"), "config", "uploadpack.allowReachableSHA1InWant", "true")
	sn, err := newSource(t, srv, "exps").Snapshot(testCtx(t), "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	if sn.Commit != c1 {
		t.Fatalf("snapshot of %s, want %s", sn.Commit, c1)
	}
	if d := cmp.Diff(map[string]string{"a.txt": "1"}, readAll(t, sn)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// Later snapshots fetch only what changed, not the whole tree again.
func TestSnapshotFetchesIncrementally(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	files := map[string]string{}
	for i := 0; i < 300; i++ {
		noise := make([]byte, 600) // incompressible, so the first pack is sizeable
		rand.Read(noise)
		files[fmt.Sprintf("d%d/f%03d.txt", i%10, i)] = fmt.Sprintf("%x", noise)
	}
	c1 := p.commit("many files", files)
	p.push("main")
	src := newSource(t, srv, "exps")
	ctx := testCtx(t)
	packBytes := func() (n int64) {
		packs, _ := filepath.Glob(filepath.Join(src.gitDir(), "objects", "pack", "*.pack"))
		for _, f := range packs {
			if fi, err := os.Stat(f); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	sn, err := src.Snapshot(ctx, "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
	first := packBytes()
	p.commit("one change", map[string]string{"d3/f003.txt": "changed"})
	c3 := p.commit("another", map[string]string{"new.txt": "new"})
	p.push("main")
	sn, err = src.Snapshot(ctx, "main", c3)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, sn)
	sn.Close()
	if got["d3/f003.txt"] != "changed" || got["new.txt"] != "new" || len(got) != 301 {
		t.Fatalf("snapshot after two commits: %d files, d3/f003.txt=%q", len(got), got["d3/f003.txt"])
	}
	if added := packBytes() - first; added*10 > first {
		t.Errorf("second fetch added %d bytes to a %d-byte cache: not incremental", added, first)
	}
}

// TestSnapshotConcurrentReads: runs read one snapshot from several
// goroutines (reconcile reads each run's inputs in its own); the storage
// keeps packs open between reads, so Snapshot serialises them. Every
// goroutine reads every file (similar files: most are deltas) and gets
// exactly what was committed, and the race detector (go test -race) sees
// no race. Reading after Close fails cleanly.
func TestSnapshotConcurrentReads(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	want := map[string]string{}
	for i := 0; i < 200; i++ {
		want[fmt.Sprintf("d%d/f%03d.txt", i%7, i)] = strings.Repeat("shared line of text\n", 40) + fmt.Sprintf("file %d\n", i)
	}
	head := p.commit("similar files", want)
	p.push("main")
	sn, err := newSource(t, srv, "exps").Snapshot(testCtx(t), "main", head)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([]map[string]string, 8)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[g] = map[string]string{}
			_ = sn.Walk("", func(p string, e tree.Entry) error {
				if e.IsDir() {
					return nil
				}
				data, err := sn.ReadFile(p, 0)
				if err != nil {
					return err
				}
				got[g][p] = string(data)
				return nil
			})
		}()
	}
	wg.Wait()
	for g := range got {
		if diff := cmp.Diff(want, got[g]); diff != "" {
			t.Fatalf("goroutine %d read (-committed +read):\n%s", g, diff)
		}
	}
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.ReadFile("d0/f000.txt", 0); err == nil {
		t.Fatal("read after Close succeeded")
	}
}
