package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/redact"
	"github.com/expsync/expsync/store"
)

// InputMismatchError names an input whose bytes differ from its digest.
type InputMismatchError struct {
	What      string // for example `input "data" (https://example.org/x.csv)`
	Want, Got string
}

func (e *InputMismatchError) Error() string {
	return fmt.Sprintf("%s: expected sha256 %s, got %s; the command was not started", e.What, e.Want, e.Got)
}

// Materialise places the contract's context and inputs into work (made, or
// emptied when it exists) and checks every file against its sha256, rehashing
// store objects too. It is what a pod's init container runs (expsync exec
// --verify-inputs-only). A mismatch is an *InputMismatchError.
func Materialise(ctx context.Context, c contract.Contract, opts Options, work string) error {
	if err := Validate(c); err != nil {
		return err
	}
	st, err := openStore(c, opts)
	if err != nil {
		return err
	}
	opts.Store = st
	opts = opts.withDefaults()
	opts.VerifyStoreObjects = true
	if err := os.Mkdir(work, 0o755); err != nil {
		// A restarted init container finds its earlier attempt: start over.
		if !errors.Is(err, fs.ErrExist) || !empty(work) {
			return fmt.Errorf("work folder: %w", err)
		}
	}
	if err := materialiseContext(ctx, st, c.Context.Tree, work, true, nil); err != nil {
		return err
	}
	return placeInputs(ctx, st, opts, c.Inputs, work, nil)
}

// unusableInputError marks an input that can never be placed the way the
// run names it, whatever machine tries: a URL the server says is not there
// (404, 410), a scheme that cannot be fetched, a path through a symlink or
// onto a folder of the context. It is the run's result (Failed, committed so
// the researcher sees it), not an infrastructure error retried at every
// reconcile; a commit that fixes the spec is a new run.
type unusableInputError struct{ err error }

func (e *unusableInputError) Error() string { return e.err.Error() }
func (e *unusableInputError) Unwrap() error { return e.err }

// transientError marks a failure worth retrying (network, 5xx, 429).
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

var defaultHTTPClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   4,
	},
}

// materialiseContext places the files of the context tree's manifest under
// work, which must not exist yet.
func materialiseContext(ctx context.Context, st store.Store, treeID, work string, verify bool, linked *[]linkedObject) error {
	if treeID == "" {
		return nil
	}
	m, err := st.Tree(ctx, treeID)
	if err != nil {
		return fmt.Errorf("context tree %s: %w (export it with store.ExportTree before running)", treeID, err)
	}
	dirs := map[string]bool{"": true}
	for _, e := range m.Entries {
		rel, err := cleanRel(e.Path)
		if err != nil {
			return fmt.Errorf("context tree %s: entry %q: %w", treeID, e.Path, err)
		}
		if err := mkdirs(work, parentOf(rel), dirs); err != nil {
			return fmt.Errorf("context %s: %w", rel, err)
		}
		dst := filepath.Join(work, filepath.FromSlash(rel))
		switch e.Mode {
		case store.ModeSymlink:
			target, err := readSmall(ctx, st, e.SHA256, 4096)
			if err != nil {
				return fmt.Errorf("context %s: %w", rel, err)
			}
			if err := os.Symlink(string(target), dst); err != nil {
				return fmt.Errorf("context %s: %w", rel, err)
			}
		case store.ModeFile, store.ModeExecutable:
			if err := placeObject(ctx, st, e.SHA256, e.Size, dst, e.Mode == store.ModeExecutable, rel, linked); err != nil {
				return fmt.Errorf("context %s: %w", rel, err)
			}
			if verify {
				if err := verifyFile(dst, e.SHA256, "context file "+rel); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("context tree %s: entry %q has unsupported mode %s", treeID, e.Path, e.Mode)
		}
	}
	return nil
}

// placeInputs places every input at its path, fetching URL inputs into the
// store first, and checks each against its sha256.
func placeInputs(ctx context.Context, st store.Store, opts Options, inputs []contract.Input, work string, linked *[]linkedObject) error {
	if len(inputs) == 0 {
		return nil
	}
	dirs := map[string]bool{"": true}
	for _, in := range inputs {
		rel, _ := cleanRel(in.Path) // checked by Validate
		what := describeInput(in)
		has, verified, err := inputPresent(ctx, st, in, what)
		if err != nil {
			return err
		}
		if !has {
			if in.URI == "" {
				return fmt.Errorf("%s: sha256 %s is not in the store and the input has no URI to fetch it from", what, in.SHA256)
			}
			if err := fetch(ctx, st, opts, in, what); err != nil {
				return err
			}
		}
		if err := mkdirs(work, parentOf(rel), dirs); err != nil {
			return &unusableInputError{fmt.Errorf("%s: path %s: %w (the context decides its folders: change the input's path or the context)", what, in.Path, err)}
		}
		dst := filepath.Join(work, filepath.FromSlash(rel))
		if fi, err := os.Lstat(dst); err == nil {
			if fi.IsDir() {
				return &unusableInputError{fmt.Errorf("%s: path %s is a folder of the context; change the input's path", what, in.Path)}
			}
			// The input replaces the context's file of the same path.
			if err := os.Remove(dst); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if err := placeObject(ctx, st, in.SHA256, -1, dst, false, in.Path, linked); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if opts.VerifyStoreObjects && !verified {
			if err := verifyFile(dst, in.SHA256, what); err != nil {
				return err
			}
		}
	}
	return nil
}

// inputPresent reports whether the input's object is in the store with its
// bytes. A store that can rehash its objects (store.Verifier: once per
// process and file) drops one whose bytes no longer match its name — cut
// short by a power cut, corrupted by the disk — instead of placing it: a URL
// input is then fetched again, any other is refused naming both digests.
// verified reports that the present object's bytes were checked (placing
// them need not be checked again).
func inputPresent(ctx context.Context, st store.Store, in contract.Input, what string) (has, verified bool, err error) {
	v, ok := st.(store.Verifier)
	if !ok {
		has, err := st.Has(ctx, in.SHA256)
		if err != nil {
			return false, false, &transientError{fmt.Errorf("%s: %w", what, err)}
		}
		return has, false, nil
	}
	err = v.Verify(ctx, in.SHA256)
	var mm *store.MismatchError
	switch {
	case err == nil:
		return true, true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, false, nil
	case errors.As(err, &mm) && in.URI != "":
		return false, false, nil // dropped: fetched again
	case errors.As(err, &mm):
		again := "put the file in the store again"
		if in.RepoPath != "" {
			again = "the next reconcile exports the repository file again"
		}
		return false, false, fmt.Errorf("%s: the store's object %s holds bytes with sha256 %s (cut short or corrupted on disk); it was dropped and the command was not started: %s",
			what, mm.Want, mm.Got, again)
	case ctx.Err() != nil:
		return false, false, ctx.Err()
	}
	return false, false, &transientError{fmt.Errorf("%s: %w", what, err)}
}

func describeInput(in contract.Input) string {
	switch {
	case in.URI != "":
		return fmt.Sprintf("input %q (%s)", in.Name, redact.URL(in.URI))
	case in.RepoPath != "":
		return fmt.Sprintf("input %q (repository file %s)", in.Name, in.RepoPath)
	}
	return fmt.Sprintf("input %q", in.Name)
}

// fetch downloads a URL input into the store, verified against its sha256.
func fetch(ctx context.Context, st store.Store, opts Options, in contract.Input, what string) error {
	if !strings.HasPrefix(in.URI, "https://") && !strings.HasPrefix(in.URI, "http://") {
		return &unusableInputError{fmt.Errorf("%s: only http(s) URIs can be fetched", what)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.URI, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	resp, err := opts.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &transientError{fmt.Errorf("%s: fetch: %s", what, strings.ReplaceAll(err.Error(), in.URI, redact.URL(in.URI)))}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("%s: fetch: HTTP %s", what, resp.Status)
		switch {
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
			return &transientError{err}
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
			// The server says the file is not there: the spec names a
			// file that does not exist. Other refusals (401, 403) may
			// depend on this machine's credentials and stay errors.
			return &unusableInputError{fmt.Errorf("%w; the command was not started (fix the input's uri in a new commit)", err)}
		}
		return err
	}
	if resp.ContentLength > opts.MaxInputBytes {
		return fmt.Errorf("%s: %d bytes exceed the input limit of %d bytes", what, resp.ContentLength, opts.MaxInputBytes)
	}
	body := &limitedReader{r: resp.Body, n: opts.MaxInputBytes}
	_, err = st.Put(ctx, body, in.SHA256)
	var mm *store.MismatchError
	switch {
	case body.exceeded:
		return fmt.Errorf("%s: exceeds the input limit of %d bytes", what, opts.MaxInputBytes)
	case errors.As(err, &mm):
		return &InputMismatchError{What: what, Want: mm.Want, Got: mm.Got}
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return &transientError{fmt.Errorf("%s: fetch: %v", what, err)}
	}
	return nil
}

// limitedReader fails once more than n bytes were read.
type limitedReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		l.exceeded = true
		return 0, errors.New("size limit exceeded")
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		l.exceeded = true
		return n, errors.New("size limit exceeded")
	}
	return n, err
}

// linkedObject is a work-folder file that is a hard link to a store object.
type linkedObject struct {
	path, sha string
	dst       string
	was       os.FileInfo
}

// placeObject puts a blob at dst: linked when the store can (and recorded
// in linked, so the run can be checked for writing to it), copied
// otherwise. A nil linked asks for a copy.
// size (-1: unknown) is the object's size from its tree: a linked object
// of another size was written to by a run still going (size only: the
// check costs nothing, a rehash would).
func placeObject(ctx context.Context, st store.Store, sha string, size int64, dst string, executable bool, rel string, linked *[]linkedObject) error {
	if l, ok := st.(store.Linker); ok && linked != nil {
		ok, err := l.LinkTo(ctx, sha, dst, executable)
		if ok {
			fi, serr := os.Lstat(dst)
			if serr != nil {
				return serr
			}
			if size >= 0 && fi.Size() != size {
				_ = os.Remove(dst)
				l.Drop(sha)
				return fmt.Errorf("store object %s has %d bytes, its tree says %d: another run wrote to it in place; it is dropped from the store, and the next export of the tree restores it", sha, fi.Size(), size)
			}
			*linked = append(*linked, linkedObject{path: rel, sha: sha, dst: dst, was: fi})
		}
		return err
	}
	rc, err := st.Open(ctx, sha)
	if err != nil {
		return err
	}
	defer rc.Close()
	mode := os.FileMode(0o644)
	if executable {
		mode = 0o755
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readSmall(ctx context.Context, st store.Store, sha string, limit int64) ([]byte, error) {
	rc, err := st.Open(ctx, sha)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("object %s exceeds %d bytes", sha, limit)
	}
	return b, nil
}

// verifyFile rehashes a placed file.
func verifyFile(path, want, what string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return &InputMismatchError{What: what, Want: want, Got: got}
	}
	return nil
}

func parentOf(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

// mkdirs creates the folder rel under root, one component at a time,
// refusing to go through a symlink (which could lead out of the work folder).
func mkdirs(root, rel string, made map[string]bool) error {
	if made[rel] {
		return nil
	}
	if err := mkdirs(root, parentOf(rel), made); err != nil {
		return err
	}
	p := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("folder %s is a symlink; refusing to write through it", rel)
	case !fi.IsDir():
		return fmt.Errorf("%s is a file, not a folder", rel)
	}
	made[rel] = true
	return nil
}

func chmodDirsWritable(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
}
