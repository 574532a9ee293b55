package gitpack

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/storage/filesystem"
)

// FetchStorage is the cache storage as go-git's fetch sees it: the
// filesystem storage, except that a received pack is written and indexed
// by Index, within the fetch's context and the repository's size limit.
type FetchStorage struct {
	*filesystem.Storage
	Dir         string          // the storage's objects/pack folder
	Ctx         context.Context // the fetch's: indexing stops when it ends
	MaxInflated int64           // what the pack may inflate to (gitsource's Limits.MaxRepoBytes)
}

// PackfileWriter implements storer.PackfileWriter.
func (s FetchStorage) PackfileWriter() (io.WriteCloser, error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create pack folder: %w", err)
	}
	f, err := os.CreateTemp(s.Dir, "tmp_pack_")
	if err != nil {
		return nil, fmt.Errorf("create pack file: %w", err)
	}
	return &packWriter{f: f, st: s.Storage, dir: s.Dir, ctx: s.Ctx, maxInflated: s.MaxInflated}, nil
}

// packWriter writes a received pack to a temporary file; Close indexes
// it, and moves it into place as pack-<checksum>.pack and .idx.
type packWriter struct {
	f           *os.File
	st          *filesystem.Storage
	dir         string
	n           int64
	ctx         context.Context
	maxInflated int64
}

func (w *packWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *packWriter) Close() (err error) {
	tmp := w.f.Name()
	defer func() {
		if err != nil {
			w.f.Close()
			os.Remove(tmp)
		}
	}()
	if w.n == 0 { // nothing received (go-git reports the empty pack)
		w.f.Close()
		return os.Remove(tmp)
	}
	// go-git closes the writer after a failed transfer too: a fetch whose
	// context ended has nothing worth indexing.
	checksum, idx, err := Index(w.ctx, w.f, w.maxInflated)
	if err != nil {
		return fmt.Errorf("index received pack: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	base := filepath.Join(w.dir, "pack-"+checksum.String())
	if _, err := os.Lstat(base + ".pack"); err == nil {
		return os.Remove(tmp) // packs are named by content: already there
	}
	if err := WriteFileAtomic(w.dir, base+".idx", idx); err != nil {
		return fmt.Errorf("write pack index: %w", err)
	}
	// The index first: a pack is listed by its .pack file, and a listed
	// pack must have its index.
	if err := os.Chmod(tmp, 0o444); err != nil {
		return err
	}
	if err := os.Rename(tmp, base+".pack"); err != nil {
		return fmt.Errorf("move pack into place: %w", err)
	}
	w.st.Reindex() // the storage lists packs again at its next read
	return nil
}

func WriteFileAtomic(dir, path string, data []byte) error {
	f, err := os.CreateTemp(dir, "tmp_idx_")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	err = f.Close()
	if err == nil {
		err = os.Chmod(f.Name(), 0o444)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
