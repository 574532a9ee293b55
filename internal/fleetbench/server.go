package fleetbench

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// FleetServer is git's own smart HTTP server (`git http-backend` as a CGI
// program, as a web server runs it) on loopback, serving every bare
// repository under its root to the fleet benchmarks, with at most
// `workers` git processes at once (later requests wait, as behind a web
// server's worker pool). It counts what clients ask: a ref listing is a
// GET of info/refs, a fetch also POSTs.
//
// With ReplayListings, a repository's ref advertisement is produced by
// git http-backend once and replayed byte for byte afterwards (the
// repositories of a fleet benchmark never change): 10,000 listings a
// minute would otherwise spend a core of the 2-core machine on the server
// and measure the server, not the client. Fetches always reach git.
type FleetServer struct {
	Root string
	srv  *httptest.Server
	// ReplayListings: see the type's comment. Set before the first request.
	ReplayListings bool

	gets, posts, backends atomic.Int64
	mu                    sync.Mutex
	postsByRepo           map[string]int
	listings              map[string]recorded
}

type recorded struct {
	header http.Header
	body   []byte
}

// NewFleetServer serves the bare repositories under root; it stops when
// the test ends.
func NewFleetServer(t testing.TB, root string, workers int) *FleetServer {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	s := &FleetServer{Root: root, postsByRepo: map[string]int{}, listings: map[string]recorded{}}
	backend := &cgi.Handler{Path: git, Args: []string{"http-backend"}, Root: "/",
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root}}
	slots := make(chan struct{}, workers)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		listing := r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/info/refs")
		key := r.URL.RequestURI() + "\x00" + r.Header.Get("Git-Protocol")
		switch r.Method {
		case http.MethodGet:
			s.gets.Add(1)
		case http.MethodPost:
			s.posts.Add(1)
			s.mu.Lock()
			s.postsByRepo[repo]++
			s.mu.Unlock()
		}
		if listing && s.ReplayListings {
			s.mu.Lock()
			rec, ok := s.listings[key]
			s.mu.Unlock()
			if ok {
				for k, v := range rec.header {
					w.Header()[k] = v
				}
				_, _ = w.Write(rec.body)
				return
			}
		}
		select {
		case slots <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		defer func() { <-slots }()
		s.backends.Add(1)
		if !(listing && s.ReplayListings) {
			backend.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		backend.ServeHTTP(rec, r)
		res := rec.Result()
		if res.StatusCode == http.StatusOK {
			s.mu.Lock()
			s.listings[key] = recorded{header: res.Header.Clone(), body: rec.Body.Bytes()}
			s.mu.Unlock()
		}
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the repository's URL on the server.
func (s *FleetServer) URL(repo string) string { return s.srv.URL + "/" + repo }

// Gets and Posts count the requests so far (a ref listing is one GET; a
// fetch is a GET and a POST, or more).
func (s *FleetServer) Gets() int64  { return s.gets.Load() }
func (s *FleetServer) Posts() int64 { return s.posts.Load() }

// Backends counts the git http-backend processes started so far.
func (s *FleetServer) Backends() int64 { return s.backends.Load() }

// FetchesOf returns how many POSTs (fetches) a repository received.
func (s *FleetServer) FetchesOf(repo string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.postsByRepo[repo]
}

// FleetRepoName is the name of the i-th repository of a fleet.
func FleetRepoName(i int) string { return fmt.Sprintf("r%05d.git", i) }

// CopyFleet makes n bare repositories r00000.git... under root from the
// bare repository template (packed: its pack files are hard-linked, the
// rest copied), each given a commit of its own on top of main (a file
// fleet-id naming it), so no two repositories share a head. Repositories
// that exist already are kept.
func CopyFleet(t testing.TB, template, root string, n int) {
	t.Helper()
	var files []string
	err := filepath.WalkDir(template, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(template, p); rel != "." {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two at a time: the copies are small, the commits cost a little CPU.
	errs := make(chan error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := copyRepo(template, root, files, i); err != nil {
					errs <- fmt.Errorf("repository %d: %w", i, err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func copyRepo(template, root string, files []string, i int) error {
	dst := filepath.Join(root, FleetRepoName(i))
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	tmp := dst + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	packs := filepath.Join("objects", "pack") + string(filepath.Separator)
	for _, rel := range files {
		src, to := filepath.Join(template, rel), filepath.Join(tmp, rel)
		fi, err := os.Lstat(src)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			err = os.MkdirAll(to, 0o755)
		case strings.HasPrefix(rel, packs):
			err = os.Link(src, to)
		default:
			var data []byte
			if data, err = os.ReadFile(src); err == nil {
				err = os.WriteFile(to, data, 0o644)
			}
		}
		if err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(tmp, "refs", "heads"), 0o755); err != nil {
		return err
	}
	if err := commitFleetID(tmp, i); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// commitFleetID adds a commit on main whose tree is main's plus a file
// fleet-id naming the repository.
func commitFleetID(dir string, i int) error {
	st := filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault())
	defer st.Close()
	head, err := st.Reference(plumbing.NewBranchReferenceName("main"))
	if err != nil {
		return err
	}
	parent, err := object.GetCommit(st, head.Hash())
	if err != nil {
		return err
	}
	root, err := parent.Tree()
	if err != nil {
		return err
	}
	blobID, err := storeObject(st, plumbing.BlobObject, []byte(fmt.Sprintf("repository %d of the fleet\n", i)))
	if err != nil {
		return err
	}
	entries := append([]object.TreeEntry{}, root.Entries...)
	entries = append(entries, object.TreeEntry{Name: "fleet-id", Mode: filemode.Regular, Hash: blobID})
	sortTreeEntries(entries)
	tobj := st.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(tobj); err != nil {
		return err
	}
	treeID, err := st.SetEncodedObject(tobj)
	if err != nil {
		return err
	}
	sig := parent.Author
	sig.When = sig.When.Add(time.Second)
	c := &object.Commit{Author: sig, Committer: sig, Message: fmt.Sprintf("fleet repository %d\n", i),
		TreeHash: treeID, ParentHashes: []plumbing.Hash{parent.Hash}}
	cobj := st.NewEncodedObject()
	if err := c.Encode(cobj); err != nil {
		return err
	}
	commitID, err := st.SetEncodedObject(cobj)
	if err != nil {
		return err
	}
	return st.SetReference(plumbing.NewHashReference(head.Name(), commitID))
}

func storeObject(st *filesystem.Storage, typ plumbing.ObjectType, data []byte) (plumbing.Hash, error) {
	o := st.NewEncodedObject()
	o.SetType(typ)
	w, err := o.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := bytes.NewReader(data).WriteTo(w); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(o)
}

// sortTreeEntries orders entries as Git does (a folder sorts as if its
// name ended in '/').
func sortTreeEntries(es []object.TreeEntry) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.SliceStable(es, func(i, j int) bool { return key(es[i]) < key(es[j]) })
}

// LsRemoteCPU is the CPU time (user+system, its helpers included) of one
// `git ls-remote` of a fleet repository by the git CLI, averaged over the
// first k repositories: the peer of a client's ref listing.
func (s *FleetServer) LsRemoteCPU(t testing.TB, k int) time.Duration {
	t.Helper()
	var total time.Duration
	for i := 0; i < k; i++ {
		cmd := exec.Command("git", "ls-remote", s.URL(FleetRepoName(i)))
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir(), "GIT_TERMINAL_PROMPT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git ls-remote: %v\n%s", err, out)
		}
		total += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return total / time.Duration(k)
}
