package gitpack

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/storage/filesystem/dotgit"
)

// Pack is one pack of a pack folder: its checksum (its name) and size.
type Pack struct {
	Hash plumbing.Hash
	Size int64
}

// List lists the pack files of a cache's pack folder, and removes what
// an operation killed midway left there: temporary files (packWriter,
// Merge) and indexes whose pack was removed. The caller holds the
// cache lock, so no one else is writing.
func List(dir string) ([]Pack, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	var packs []Pack
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, "tmp_"):
			_ = os.Remove(filepath.Join(dir, n))
		case strings.HasPrefix(n, "pack-") && strings.HasSuffix(n, ".idx") && !names[strings.TrimSuffix(n, ".idx")+".pack"]:
			_ = os.Remove(filepath.Join(dir, n))
		case strings.HasPrefix(n, "pack-") && strings.HasSuffix(n, ".pack"):
			h := strings.TrimSuffix(strings.TrimPrefix(n, "pack-"), ".pack")
			if !plumbing.IsHash(h) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return nil, err
			}
			packs = append(packs, Pack{Hash: plumbing.NewHash(h), Size: info.Size()})
		}
	}
	return packs, nil
}

// ToMerge picks the packs to merge, as `git repack --geometric=2`
// does: the large packs that each hold at least twice all the smaller ones
// together stay as they are, the rest are merged; then at most keep packs
// stay (the smallest of them join the merge). Each byte is copied about
// log2(cache / fetch) times over the life of the cache, not at every merge.
func ToMerge(packs []Pack, keep int) []Pack {
	packs = slices.Clone(packs)
	slices.SortFunc(packs, func(a, b Pack) int { return cmp.Compare(a.Size, b.Size) })
	split := 0 // packs[:split] are merged
	for i := len(packs) - 1; i > 0; i-- {
		if packs[i].Size < 2*packs[i-1].Size {
			split = i + 1
			break
		}
	}
	var merged int64
	for _, p := range packs[:split] {
		merged += p.Size
	}
	for split < len(packs) && (packs[split].Size < 2*merged || len(packs)-split > keep) {
		merged += packs[split].Size
		split++
	}
	return packs[:split]
}

// Merge writes one pack holding every object of packs (in the cache
// repository gitDir) and its index, then removes packs. It returns the new
// pack's checksum.
func Merge(ctx context.Context, gitDir string, packs []Pack) (plumbing.Hash, error) {
	dir := filepath.Join(gitDir, "objects", "pack")
	f, err := os.CreateTemp(dir, "tmp_pack_")
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tmp := f.Name()
	defer func() {
		f.Close()
		os.Remove(tmp) // gone once renamed
	}()
	sum := sha1.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, sum), 1<<16)
	var count uint32
	for _, p := range packs {
		n, err := packObjectCount(filepath.Join(dir, "pack-"+p.Hash.String()+".pack"))
		if err != nil {
			return plumbing.ZeroHash, err
		}
		count += n
	}
	w.Write([]byte("PACK"))
	_ = binary.Write(w, binary.BigEndian, uint32(2))
	_ = binary.Write(w, binary.BigEndian, count)
	offset := int64(12)
	// An index has at most the packs' objects (capped: the count is read
	// from the files).
	entries := make([]packEntry, 0, min(count, 1<<20))
	for _, p := range packs {
		if err := ctx.Err(); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("merging stopped: %w", err)
		}
		body, err := appendPack(w, dir, p, offset, &entries)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		offset += body
	}
	if err := w.Flush(); err != nil {
		return plumbing.ZeroHash, err
	}
	var checksum plumbing.Hash
	copy(checksum[:], sum.Sum(nil))
	if _, err := f.Write(checksum[:]); err != nil {
		return plumbing.ZeroHash, err
	}
	// On disk before the packs it replaces are removed.
	if err := f.Sync(); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := f.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	base := filepath.Join(dir, "pack-"+checksum.String())
	unlock, err := Lock(gitDir, syscall.LOCK_EX)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer unlock()
	if err := WriteFileAtomic(dir, base+".idx", encodeIndex(entries, checksum)); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write pack index: %w", err)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := os.Rename(tmp, base+".pack"); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("move pack into place: %w", err)
	}
	for _, p := range packs {
		if p.Hash == checksum {
			continue // cannot happen with two packs or more; never remove what was just written
		}
		// The pack first: a pack is listed by its .pack file, and a
		// listed pack must have its index.
		old := filepath.Join(dir, "pack-"+p.Hash.String())
		if err := os.Remove(old + ".pack"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return checksum, err
		}
		_ = os.Remove(old + ".idx") // else removed by the next List
	}
	return checksum, nil
}

// packObjectCount reads a pack's header: its number of objects.
func packObjectCount(path string) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var hdr [12]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return 0, fmt.Errorf("%s: %w: %v", filepath.Base(path), ErrMalformed, err)
	}
	if string(hdr[:4]) != "PACK" || binary.BigEndian.Uint32(hdr[4:8]) != 2 {
		return 0, fmt.Errorf("%s: %w: not a version 2 pack", filepath.Base(path), ErrMalformed)
	}
	return binary.BigEndian.Uint32(hdr[8:]), nil
}

// appendPack copies p's objects (its bytes between header and checksum)
// to w, where they start at offset, and adds its index's entries, moved
// there, to entries. It returns the bytes copied.
func appendPack(w io.Writer, dir string, p Pack, offset int64, entries *[]packEntry) (int64, error) {
	base := filepath.Join(dir, "pack-"+p.Hash.String())
	idx, err := ReadIndex(base + ".idx")
	if err != nil {
		return 0, err
	}
	f, err := os.Open(base + ".pack")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	body := info.Size() - 12 - 20
	var trailer plumbing.Hash
	if _, err := f.ReadAt(trailer[:], info.Size()-20); body < 0 || err != nil || trailer != p.Hash || idx.PackfileChecksum != p.Hash {
		return 0, fmt.Errorf("%s: %w: its checksum does not match its name or its index", filepath.Base(base), ErrMalformed)
	}
	iter, err := idx.Entries()
	if err != nil {
		return 0, err
	}
	defer iter.Close()
	for {
		e, err := iter.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		if e.Offset < 12 || int64(e.Offset) >= 12+body {
			return 0, fmt.Errorf("%s.idx: %w: object %s at offset %d is outside the pack", filepath.Base(base), ErrMalformed, e.Hash, e.Offset)
		}
		*entries = append(*entries, packEntry{hash: e.Hash, crc: e.CRC32, offset: offset + int64(e.Offset) - 12, base: -1, done: true})
	}
	if _, err := io.Copy(w, io.NewSectionReader(f, 12, body)); err != nil {
		return 0, fmt.Errorf("copy %s: %w", filepath.Base(base)+".pack", err)
	}
	return body, nil
}

func ReadIndex(path string) (*idxfile.MemoryIndex, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(bytes.NewReader(data)).Decode(idx); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return idx, nil
}

// lockName is the packs lock's file in the cache repository (see
// above); like the cache lock, it is an flock, across processes.
const lockName = "packs.lock"

// Lock takes the packs lock of the cache repository gitDir (a path,
// or a pinned storage's /proc/self/fd/N) as how says (syscall.LOCK_SH or
// LOCK_EX), waiting for it: it is held for milliseconds.
func Lock(gitDir string, how int) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(gitDir, lockName), os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the packs lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the packs: %w", err)
	}
	return func() { f.Close() }, nil
}

// Replaced reports an error of a storage whose list of packs is out of
// date: a pack it listed was merged into another and removed.
func Replaced(err error) bool {
	return errors.Is(err, dotgit.ErrPackfileNotFound) || errors.Is(err, fs.ErrNotExist)
}
