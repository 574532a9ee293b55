package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
)

// Storage is a repository's store as the controller sees it. VolumeStorage
// is the implementation today; an object store would implement the same
// methods, handing pods credentials for their prefix instead of a volume.
type Storage interface {
	// Store is the controller's store, for the reconcile engine: what it
	// exports (context trees, repository inputs) lands where pods read it;
	// outputs, logs and the run cache live where no pod can reach them.
	Store() store.Store
	// PodOptions sets what a run's pod needs to reach the store.
	PodOptions(opts *render.JobOptions)
	// PreparePrefix makes a run's prefix empty and writable by its pod,
	// before its Job is created.
	PreparePrefix(ctx context.Context, runID string) error
	// OpenPrefixObject opens the object sha of a run's prefix, written by
	// its pod and so untrusted: the caller checks its bytes. An object that
	// is absent, not a regular file inside the prefix, or larger than limit
	// is an error wrapping ErrBadObject (the pod's doing); any other error
	// is the storage's.
	OpenPrefixObject(ctx context.Context, runID, sha string, limit int64) (io.ReadCloser, error)
	// Import copies the object sha of a run's prefix into the controller's
	// store, checking that its bytes have that digest and are at most limit
	// bytes; a pod's object that fails either wraps ErrBadObject.
	Import(ctx context.Context, runID, sha string, limit int64) (store.Object, error)
	// RemovePrefix deletes a run's prefix once its result is collected.
	RemovePrefix(ctx context.Context, runID string) error
	// Prefixes lists the prefixes there are.
	Prefixes(ctx context.Context) ([]Prefix, error)
}

// Prefix is a run's prefix in a listing.
type Prefix struct {
	RunID string
	// Changed is when an entry was last added to or removed from it.
	Changed time.Time
}

// ErrBadObject is wrapped by errors for objects of a prefix the pod got
// wrong: absent, not a file, outside the prefix, too large, or holding
// bytes of another digest.
var ErrBadObject = errors.New("unusable object")

// badObject wraps err as the pod's doing.
func badObject(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadObject}, args...)...)
}

// Subfolders of a VolumeStorage; the first two are render's.
const (
	resultsSubPath = "results"
	inputsSubPath  = render.StoreInputsSubPath
	runsSubPath    = render.StoreRunsSubPath
)

// VolumeStorage is a store on a PersistentVolumeClaim of the repository's
// namespace, which the controller mounts whole at Dir:
//
//	Dir/inputs/        store.Local: context trees, repository inputs (pods read it)
//	Dir/results/       store.Local: outputs, logs, the run cache (the controller's alone)
//	Dir/runs/<run ID>/ each run's prefix (its pod's only writable place)
//
// ReadWriteMany lets the pods run on any node; ReadWriteOnce works when
// the controller and the runs share one node.
type VolumeStorage struct {
	claim   string
	dir     string
	inputs  *store.Local
	results *store.Local
	store   *splitStore
}

// NewVolumeStorage opens (creating its folders) the store of claim, which
// the controller sees at dir.
func NewVolumeStorage(claim, dir string) (*VolumeStorage, error) {
	if claim == "" {
		return nil, errors.New("kube: no store claim")
	}
	inputs, err := store.OpenLocal(filepath.Join(dir, inputsSubPath))
	if err != nil {
		return nil, fmt.Errorf("store claim %s: %w", claim, err)
	}
	results, err := store.OpenLocal(filepath.Join(dir, resultsSubPath))
	if err != nil {
		return nil, fmt.Errorf("store claim %s: %w", claim, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, runsSubPath), 0o755); err != nil {
		return nil, fmt.Errorf("store claim %s: %w", claim, err)
	}
	return &VolumeStorage{claim: claim, dir: dir, inputs: inputs, results: results,
		store: &splitStore{inputs: inputs, results: results}}, nil
}

// Store implements Storage.
func (v *VolumeStorage) Store() store.Store { return v.store }

// PodOptions implements Storage.
func (v *VolumeStorage) PodOptions(opts *render.JobOptions) { opts.StoreClaim = v.claim }

// Dir is where the controller sees the claim.
func (v *VolumeStorage) Dir() string { return v.dir }

// PrefixDir is where the controller sees a run's prefix.
func (v *VolumeStorage) PrefixDir(runID string) string {
	return filepath.Join(v.dir, filepath.FromSlash(render.RunPrefix(runID)))
}

// PreparePrefix implements Storage. The prefix is world-writable: pods run
// as whatever user their security context names, and only the run's own
// pod mounts it.
func (v *VolumeStorage) PreparePrefix(ctx context.Context, runID string) error {
	if err := v.RemovePrefix(ctx, runID); err != nil {
		return err
	}
	runs, err := os.OpenRoot(filepath.Join(v.dir, runsSubPath))
	if err != nil {
		return fmt.Errorf("store claim %s: %w", v.claim, err)
	}
	defer runs.Close()
	if err := runs.Mkdir(runID, 0o777); err != nil {
		return fmt.Errorf("store claim %s: prefix of run %s: %w", v.claim, runID, err)
	}
	// Mkdir's mode passes through the umask.
	if err := runs.Chmod(runID, 0o777); err != nil {
		return fmt.Errorf("store claim %s: prefix of run %s: %w", v.claim, runID, err)
	}
	return nil
}

// RemovePrefix implements Storage.
func (v *VolumeStorage) RemovePrefix(_ context.Context, runID string) error {
	if err := checkRunID(runID); err != nil {
		return err
	}
	runs, err := os.OpenRoot(filepath.Join(v.dir, runsSubPath))
	if err != nil {
		return fmt.Errorf("store claim %s: %w", v.claim, err)
	}
	defer runs.Close()
	// os.Root never follows a symlink the pod left out of the prefix.
	if err := runs.RemoveAll(runID); err != nil {
		return fmt.Errorf("store claim %s: remove the prefix of run %s: %w", v.claim, runID, err)
	}
	return nil
}

// Prefixes implements Storage.
func (v *VolumeStorage) Prefixes(context.Context) ([]Prefix, error) {
	entries, err := os.ReadDir(filepath.Join(v.dir, runsSubPath))
	if err != nil {
		return nil, fmt.Errorf("store claim %s: %w", v.claim, err)
	}
	var out []Prefix
	for _, e := range entries {
		if checkRunID(e.Name()) != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Prefix{RunID: e.Name(), Changed: fi.ModTime()})
	}
	return out, nil
}

// OpenPrefixObject implements Storage. The prefix is opened as an os.Root,
// so no symlink the pod planted leads out of it (to another run's prefix,
// or the controller's results); a FIFO or device is refused without
// blocking.
func (v *VolumeStorage) OpenPrefixObject(_ context.Context, runID, sha string, limit int64) (io.ReadCloser, error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	if !store.ValidSHA256(sha) {
		return nil, fmt.Errorf("object name %q is not a sha256", sha)
	}
	root, err := os.OpenRoot(v.PrefixDir(runID))
	if err != nil {
		return nil, fmt.Errorf("prefix of run %s: %w", runID, err)
	}
	defer root.Close()
	name := filepath.Join("sha256", sha[:2], sha)
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, badObject("object %s is not in the prefix of run %s", sha, runID)
	}
	if err != nil {
		// Within a prefix the controller could open, only what the pod
		// made stops it: a symlink out of the prefix, a loop, a mode.
		return nil, badObject("object %s of run %s: %v", sha, runID, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, badObject("object %s of run %s is a %s, not a file", sha, runID, fi.Mode().Type())
	}
	if fi.Size() > limit {
		f.Close()
		return nil, badObject("object %s of run %s has %d bytes, at most %d are allowed", sha, runID, fi.Size(), limit)
	}
	// The size may still grow (a pod still writing): never read past it.
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, limit+1), f}, nil
}

// Import implements Storage: the bytes are read from the prefix and hashed
// as they are copied into the results store, every time. (Taking an object
// the results store already holds on the pod's word would let a run claim
// another run's output without ever having its bytes.)
func (v *VolumeStorage) Import(ctx context.Context, runID, sha string, limit int64) (store.Object, error) {
	rc, err := v.OpenPrefixObject(ctx, runID, sha, limit)
	if err != nil {
		return store.Object{}, err
	}
	defer rc.Close()
	obj, err := v.results.Put(ctx, rc, "")
	if err != nil {
		return store.Object{}, err
	}
	if obj.SHA256 != sha {
		return store.Object{}, badObject("object %s of run %s holds bytes with sha256 %s", sha, runID, obj.SHA256)
	}
	if obj.Size > limit {
		return store.Object{}, badObject("object %s of run %s grew past %d bytes while it was read", sha, runID, limit)
	}
	return obj, nil
}

func checkRunID(id string) error {
	if _, err := render.RunIDLabelValue(id); err != nil {
		return err
	}
	return nil
}

// splitStore is the controller's view of a VolumeStorage: objects the
// engine stores (exported trees, repository inputs) go to the inputs
// store, which pods read; the run cache is in the results store; reads try
// results first (outputs and logs), then inputs.
type splitStore struct {
	inputs, results *store.Local
}

var (
	_ store.Store    = (*splitStore)(nil)
	_ store.Verifier = (*splitStore)(nil)
	_ store.Linker   = (*splitStore)(nil)
)

func (s *splitStore) Put(ctx context.Context, r io.Reader, want string) (store.Object, error) {
	return s.inputs.Put(ctx, r, want)
}

func (s *splitStore) Open(ctx context.Context, sha string) (io.ReadCloser, error) {
	rc, err := s.results.Open(ctx, sha)
	if errors.Is(err, store.ErrNotFound) {
		return s.inputs.Open(ctx, sha)
	}
	return rc, err
}

func (s *splitStore) Has(ctx context.Context, sha string) (bool, error) {
	if ok, err := s.results.Has(ctx, sha); ok || err != nil {
		return ok, err
	}
	return s.inputs.Has(ctx, sha)
}

func (s *splitStore) PutTree(ctx context.Context, treeID string, m store.Manifest) error {
	return s.inputs.PutTree(ctx, treeID, m)
}

func (s *splitStore) Tree(ctx context.Context, treeID string) (store.Manifest, error) {
	return s.inputs.Tree(ctx, treeID)
}

func (s *splitStore) PutRunFile(ctx context.Context, runID, name string, data []byte) error {
	return s.results.PutRunFile(ctx, runID, name, data)
}

func (s *splitStore) RunFile(ctx context.Context, runID, name string) ([]byte, error) {
	return s.results.RunFile(ctx, runID, name)
}

func (s *splitStore) LockRun(ctx context.Context, runID string) (func() error, error) {
	return s.results.LockRun(ctx, runID)
}

// Verify checks the copy Open would read.
func (s *splitStore) Verify(ctx context.Context, sha string) error {
	if ok, err := s.results.Has(ctx, sha); err == nil && ok {
		return s.results.Verify(ctx, sha)
	}
	return s.inputs.Verify(ctx, sha)
}

// LinkTo is the inputs store's (the engine links only what it exported).
func (s *splitStore) LinkTo(ctx context.Context, sha, dst string, executable bool) (bool, error) {
	return s.inputs.LinkTo(ctx, sha, dst, executable)
}

// Drop drops a corrupt object from both stores.
func (s *splitStore) Drop(sha string) {
	s.results.Drop(sha)
	s.inputs.Drop(sha)
}
