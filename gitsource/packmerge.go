package gitsource

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

// Every incremental fetch adds a pack to the cache, and `expsync serve`
// fetches for weeks. go-git looks an object up in every pack's index in
// turn (a Go map: in no order) and loads every index each time a storage
// is opened, and a storage keeps only maxOpenPacks open: with 500 packs
// a snapshot of the next commit (fetch and 3 files read) took 490-630 ms
// instead of 35-50 after 10 fetches (`git fetch` and `git show`: 120-140).
// So after a fetch that leaves more than maxCachePacks packs, the small
// ones are merged into one. Measured 2026-11-28 on the 2-core CI machine,
// `go test -run '^$' -bench 'SnapshotAfterManyFetches|PackMerge'
// -benchtime 5x -count 3 ./gitsource/`, ranges over the runs (after: two
// runs of 3):
//
//	after 500 fetches   packs    ours-ms   ratio to git  ours-cached-ms
//	before              507-519  486-630   3.4-4.6       253-322
//	after               3-15     44-64     0.35-0.55     53-67
//
// (after 10 fetches, before: 35-41 ms, ratio 0.33-0.38.) The worst merge,
// a cache of 8,261 objects in 16 packs (a shallow fetch of 8,000 files
// and 15 incremental fetches) merged whole: 6.5-9.4 ms against 52-63 ms
// for `git repack -a -d` of the same cache (ratio 0.12-0.15), 2.0 MiB
// allocated in all (~250 bytes per object; git's peak RSS: 9.8 MiB).
//
// Merging concatenates the packs as they are: a pack's objects are copied
// byte for byte, so an OFS delta still finds its base at the same distance
// and a REF delta by its ID (every pack in the cache is self-contained:
// indexPack refuses a delta whose base is not in its pack). The new index
// is the old indexes' entries with their offsets moved: nothing is
// inflated, no delta resolved; memory is the entries (48 bytes per
// object, as indexPack holds for a fetch) and one old index at a time.
// The cache keeps exactly the objects it had, so verification (which
// reads the cache's history) and the shallow boundaries see no
// difference. It does not compress them better either: unlike git's gc,
// which deltas each tree against its previous versions, a merge leaves
// the cache ~3.7x git's size after 500 fetches (MaxRepoBytes bounds it).
//
// The merged pack is in place before the old packs are removed, so the
// folder always holds every object. A Snapshot open across a merge read
// its storage's list of packs before; when it meets a removed pack it
// lists them again (Snapshot.objectLocked) holding the packs lock
// (<git>/packs.lock) shared, which the merge holds exclusively while it
// moves its pack in and removes the old ones (milliseconds; not the whole
// operation, as the cache lock is).

// maxCachePacks: a fetch that leaves more packs than this merges them
// (git's gc --auto repacks at 50 packs, or ~6,700 loose objects).
const maxCachePacks = 16

// packFile is one pack of the cache.
type packFile struct {
	hash plumbing.Hash
	size int64
}

func (s *Source) packDir() string { return filepath.Join(s.gitDir(), "objects", "pack") }

// consolidatePacks merges the cache's packs once there are more than
// maxCachePacks. It reports how many packs it merged (0: none). The caller
// holds the cache lock and re-reads the pack list of any storage it keeps
// open (Reindex).
func (s *Source) consolidatePacks(ctx context.Context) (int, error) {
	dir := s.packDir()
	packs, err := listPacks(dir)
	if err != nil || len(packs) <= maxCachePacks {
		return 0, err
	}
	merge := packsToMerge(packs, maxCachePacks/2)
	if len(merge) < 2 {
		return 0, nil
	}
	if _, err := mergePacks(ctx, s.gitDir(), merge); err != nil {
		return 0, fmt.Errorf("merge the cache's %d packs: %w", len(merge), err)
	}
	return len(merge), nil
}

// listPacks lists the pack files of a cache's pack folder, and removes what
// an operation killed midway left there: temporary files (packWriter,
// mergePacks) and indexes whose pack was removed. The caller holds the
// cache lock, so no one else is writing.
func listPacks(dir string) ([]packFile, error) {
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
	var packs []packFile
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
			packs = append(packs, packFile{hash: plumbing.NewHash(h), size: info.Size()})
		}
	}
	return packs, nil
}

// packsToMerge picks the packs to merge, as `git repack --geometric=2`
// does: the large packs that each hold at least twice all the smaller ones
// together stay as they are, the rest are merged; then at most keep packs
// stay (the smallest of them join the merge). Each byte is copied about
// log2(cache / fetch) times over the life of the cache, not at every merge.
func packsToMerge(packs []packFile, keep int) []packFile {
	packs = slices.Clone(packs)
	slices.SortFunc(packs, func(a, b packFile) int { return cmp.Compare(a.size, b.size) })
	split := 0 // packs[:split] are merged
	for i := len(packs) - 1; i > 0; i-- {
		if packs[i].size < 2*packs[i-1].size {
			split = i + 1
			break
		}
	}
	var merged int64
	for _, p := range packs[:split] {
		merged += p.size
	}
	for split < len(packs) && (packs[split].size < 2*merged || len(packs)-split > keep) {
		merged += packs[split].size
		split++
	}
	return packs[:split]
}

// mergePacks writes one pack holding every object of packs (in the cache
// repository gitDir) and its index, then removes packs. It returns the new
// pack's checksum.
func mergePacks(ctx context.Context, gitDir string, packs []packFile) (plumbing.Hash, error) {
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
		n, err := packObjectCount(filepath.Join(dir, "pack-"+p.hash.String()+".pack"))
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
	unlock, err := lockPacks(gitDir, syscall.LOCK_EX)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer unlock()
	if err := writeFileAtomic(dir, base+".idx", encodeIndex(entries, checksum)); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write pack index: %w", err)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := os.Rename(tmp, base+".pack"); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("move pack into place: %w", err)
	}
	for _, p := range packs {
		if p.hash == checksum {
			continue // cannot happen with two packs or more; never remove what was just written
		}
		// The pack first: a pack is listed by its .pack file, and a
		// listed pack must have its index.
		old := filepath.Join(dir, "pack-"+p.hash.String())
		if err := os.Remove(old + ".pack"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return checksum, err
		}
		_ = os.Remove(old + ".idx") // else removed by the next listPacks
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
		return 0, fmt.Errorf("%s: %w: %v", filepath.Base(path), errMalformedPack, err)
	}
	if string(hdr[:4]) != "PACK" || binary.BigEndian.Uint32(hdr[4:8]) != 2 {
		return 0, fmt.Errorf("%s: %w: not a version 2 pack", filepath.Base(path), errMalformedPack)
	}
	return binary.BigEndian.Uint32(hdr[8:]), nil
}

// appendPack copies p's objects (its bytes between header and checksum)
// to w, where they start at offset, and adds its index's entries, moved
// there, to entries. It returns the bytes copied.
func appendPack(w io.Writer, dir string, p packFile, offset int64, entries *[]packEntry) (int64, error) {
	base := filepath.Join(dir, "pack-"+p.hash.String())
	idx, err := readPackIndex(base + ".idx")
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
	if _, err := f.ReadAt(trailer[:], info.Size()-20); body < 0 || err != nil || trailer != p.hash || idx.PackfileChecksum != p.hash {
		return 0, fmt.Errorf("%s: %w: its checksum does not match its name or its index", filepath.Base(base), errMalformedPack)
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
			return 0, fmt.Errorf("%s.idx: %w: object %s at offset %d is outside the pack", filepath.Base(base), errMalformedPack, e.Hash, e.Offset)
		}
		*entries = append(*entries, packEntry{hash: e.Hash, crc: e.CRC32, offset: offset + int64(e.Offset) - 12, base: -1, done: true})
	}
	if _, err := io.Copy(w, io.NewSectionReader(f, 12, body)); err != nil {
		return 0, fmt.Errorf("copy %s: %w", filepath.Base(base)+".pack", err)
	}
	return body, nil
}

func readPackIndex(path string) (*idxfile.MemoryIndex, error) {
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

// packsLockName is the packs lock's file in the cache repository (see
// above); like the cache lock, it is an flock, across processes.
const packsLockName = "packs.lock"

// lockPacks takes the packs lock of the cache repository gitDir (a path,
// or a pinned storage's /proc/self/fd/N) as how says (syscall.LOCK_SH or
// LOCK_EX), waiting for it: it is held for milliseconds.
func lockPacks(gitDir string, how int) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(gitDir, packsLockName), os.O_CREATE|os.O_RDONLY, 0o600)
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

// packsReplaced reports an error of a storage whose list of packs is out of
// date: a pack it listed was merged into another and removed.
func packsReplaced(err error) bool {
	return errors.Is(err, dotgit.ErrPackfileNotFound) || errors.Is(err, fs.ErrNotExist)
}
