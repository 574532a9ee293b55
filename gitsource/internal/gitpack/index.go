package gitpack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// packEntry is what Index keeps per object: ~56 bytes, no content.
type packEntry struct {
	offset int64
	base   int64 // an OFS delta's base offset; -1 otherwise
	hash   plumbing.Hash
	crc    uint32
	typ    plumbing.ObjectType // as stored: a delta type until resolved
	done   bool                // hash known
}

// maxDeltaDepth bounds a delta chain (git's own limit is 4095).
const maxDeltaDepth = 4095

// Resolving a delta holds its base and its result in memory, and a delta
// is tiny next to what it makes: one byte (0x80) copies 64 KiB of its
// base, so a pack of a few hundred bytes from a hostile server can declare
// gigabytes. These bound what Index holds: one object read or made
// whole (objects without deltas on them are streamed, whatever their
// size), and all the contents along the chain being resolved.
const (
	MaxResolvedObjectBytes = 512 << 20
	MaxResolvedChainBytes  = 1 << 30
)

// indexGuard bounds the work of indexing, where the bounds above bound its
// memory: a hostile or broken server can send a pack that keeps a core
// busy for minutes (thousands of deltas each making hundreds of MiB, or
// gigabytes of one repeated byte), long after the transfer ended. Indexing
// stops when the fetch's context ends (its timeout, a cancelled
// reconcile), checked every few MiB of work, and refuses a pack that
// inflates to more than the repository's size limit: every object as
// stored plus everything its deltas make (about the repository's size
// uncompressed, which is more than its size on disk).
type indexGuard struct {
	ctx       context.Context
	limit     int64 // Limits.MaxRepoBytes
	inflated  int64 // bytes inflated from the pack or made by deltas so far
	unchecked int64 // work since ctx was last checked
}

const (
	// guardCheckBytes is the work between two looks at the context (a
	// few milliseconds); guardObjectCost counts an object's overhead, so
	// a pack of many small objects is checked every thousand or so.
	guardCheckBytes = 4 << 20
	guardObjectCost = 4 << 10
)

// charge counts n bytes about to be inflated or made by a delta, refusing
// them past the limit before any of them is made.
func (g *indexGuard) charge(n int64, what string, offset int64) error {
	if n < 0 || n > g.limit-g.inflated { // no overflow: 0 <= inflated <= limit
		g.inflated = g.limit
		return fmt.Errorf("%w: the pack inflates to more than the repository's size limit of %d bytes (reached at the %s at offset %d); "+
			"raise the repository's limit (gitsource Limits.MaxRepoBytes) if it is really this large",
			ErrTooLarge, g.limit, what, offset)
	}
	g.inflated += n
	return nil
}

// tick counts n bytes of work and, every guardCheckBytes, returns the
// context's error once it has ended.
func (g *indexGuard) tick(n int64) error {
	g.unchecked += n
	if g.unchecked < guardCheckBytes {
		return nil
	}
	g.unchecked = 0
	if err := g.ctx.Err(); err != nil {
		return fmt.Errorf("indexing stopped after %d bytes: %w", g.inflated, err)
	}
	return nil
}

// writer passes writes to w, ticking for each: one large object's
// inflation stops as soon as the context ends.
func (g *indexGuard) writer(w io.Writer) io.Writer { return guardWriter{w, g} }

type guardWriter struct {
	w io.Writer
	g *indexGuard
}

func (gw guardWriter) Write(p []byte) (int, error) {
	if err := gw.g.tick(int64(len(p))); err != nil {
		return 0, err
	}
	return gw.w.Write(p)
}

// Index reads a pack file and returns its checksum and its index
// (version 2, as `git index-pack` writes it). It checks the pack's
// checksum, every object's inflated size and every delta. Memory: the
// entries above, plus the contents along the delta chain being resolved.
// It stops when ctx ends, and refuses a pack that inflates to more than
// maxInflated bytes (see indexGuard).
func Index(ctx context.Context, f io.ReadSeeker, maxInflated int64) (plumbing.Hash, []byte, error) {
	g := &indexGuard{ctx: ctx, limit: maxInflated}
	if err := ctx.Err(); err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("indexing not started: %w", err)
	}
	entries, refDeltas, checksum, err := scanPack(f, g)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	if err := resolveDeltas(f, entries, refDeltas, g); err != nil {
		return plumbing.ZeroHash, nil, err
	}
	return checksum, encodeIndex(entries, checksum), nil
}

// scanPack reads the pack once, in order: every object's offset, CRC and
// base, and the hash of every object that is not a delta (streamed).
func scanPack(f io.ReadSeeker, g *indexGuard) ([]packEntry, map[plumbing.Hash][]int32, plumbing.Hash, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, plumbing.ZeroHash, err
	}
	sc := packfile.NewScanner(f)
	_, count, err := sc.Header()
	if err != nil {
		return nil, nil, plumbing.ZeroHash, err
	}
	entries := make([]packEntry, 0, min(count, 1<<16))
	refDeltas := map[plumbing.Hash][]int32{} // base hash -> REF deltas on it
	for i := uint32(0); i < count; i++ {
		oh, err := sc.NextObjectHeader()
		if err != nil {
			return nil, nil, plumbing.ZeroHash, fmt.Errorf("object %d of %d: %w", i+1, count, err)
		}
		e := packEntry{offset: oh.Offset, base: -1, typ: oh.Type}
		// The scanner inflates no more than the header declares.
		if err := g.charge(oh.Length, "object", oh.Offset); err != nil {
			return nil, nil, plumbing.ZeroHash, err
		}
		var n int64
		switch oh.Type {
		case plumbing.OFSDeltaObject:
			e.base = oh.OffsetReference
			n, e.crc, err = sc.NextObject(g.writer(io.Discard))
		case plumbing.REFDeltaObject:
			refDeltas[oh.Reference] = append(refDeltas[oh.Reference], int32(len(entries)))
			n, e.crc, err = sc.NextObject(g.writer(io.Discard))
		case plumbing.CommitObject, plumbing.TreeObject, plumbing.BlobObject, plumbing.TagObject:
			h := plumbing.NewHasher(oh.Type, oh.Length)
			n, e.crc, err = sc.NextObject(g.writer(h))
			e.hash, e.done = h.Sum(), true
		default:
			return nil, nil, plumbing.ZeroHash, fmt.Errorf("%w: object at offset %d has type %d", ErrMalformed, oh.Offset, oh.Type)
		}
		if err == nil && n != oh.Length {
			err = fmt.Errorf("%w: object at offset %d inflates to %d bytes, its header says %d", ErrMalformed, oh.Offset, n, oh.Length)
		}
		if err == nil {
			err = g.tick(guardObjectCost)
		}
		if err != nil {
			return nil, nil, plumbing.ZeroHash, fmt.Errorf("object at offset %d: %w", oh.Offset, err)
		}
		entries = append(entries, e)
	}
	checksum, err := sc.Checksum()
	if err != nil {
		return nil, nil, plumbing.ZeroHash, err
	}
	return entries, refDeltas, checksum, nil
}

// resolveDeltas computes every delta's hash: from each object that is not
// a delta, depth first through the deltas based on it, keeping only the
// contents of the chain being walked. Buffers are reused (one per chain
// level, one for delta data): resolving allocates next to nothing per object.
func resolveDeltas(f io.ReadSeeker, entries []packEntry, refDeltas map[plumbing.Hash][]int32, g *indexGuard) error {
	children, first := ofsChildren(entries)
	if first == nil {
		return fmt.Errorf("%w: an OFS delta's base is not at an object's offset", ErrMalformed)
	}
	if children == nil && len(refDeltas) == 0 {
		return nil // no deltas
	}
	r := &packReader{sc: packfile.NewScanner(f), g: g}
	var deltaBuf bytes.Buffer
	var levels [][]byte // levels[d]: the content of the object being resolved at depth d+1
	// held: the bytes of the contents along the chain, content's included.
	var resolve func(i int32, typ plumbing.ObjectType, content []byte, depth int, held int64) error
	resolve = func(i int32, typ plumbing.ObjectType, content []byte, depth int, held int64) error {
		kids := children[first[i]:first[i+1]]
		refs := refDeltas[entries[i].hash]
		delete(refDeltas, entries[i].hash)
		if len(kids)+len(refs) > 0 && depth >= maxDeltaDepth {
			return fmt.Errorf("%w: delta chain deeper than %d", ErrMalformed, maxDeltaDepth)
		}
		if len(levels) == depth {
			levels = append(levels, nil)
		}
		for _, list := range [][]int32{kids, refs} {
			for _, c := range list {
				if entries[c].done {
					continue // a duplicate REF delta
				}
				delta, err := r.read(entries[c].offset, &deltaBuf)
				if err != nil {
					return err
				}
				size, err := checkDeltaTarget(delta, held, entries[c].offset)
				if err == nil {
					err = g.charge(int64(size), "delta", entries[c].offset)
				}
				if err == nil {
					err = g.tick(int64(size) + guardObjectCost)
				}
				if err != nil {
					return err
				}
				// Sized once: growing by appends copied a large object ~5
				// times over (a 400 MiB one allocated 2 GiB).
				target, err := applyDelta(slices.Grow(levels[depth][:0], size), content, delta)
				if err != nil {
					return fmt.Errorf("%w: delta at offset %d: %v", ErrMalformed, entries[c].offset, err)
				}
				levels[depth] = target
				entries[c].hash, entries[c].done = hashObject(typ, target), true
				if err := resolve(c, typ, target, depth+1, held+int64(len(target))); err != nil {
					return err
				}
			}
		}
		if cap(levels[depth]) > 1<<20 {
			levels[depth] = nil // do not keep a large object's buffer
		}
		return nil
	}
	var rootBuf bytes.Buffer
	for i := range entries {
		e := &entries[i]
		if e.typ.IsDelta() {
			continue
		}
		if first[i] == first[i+1] && len(refDeltas[e.hash]) == 0 {
			continue // no delta is based on it
		}
		if err := g.tick(guardObjectCost); err != nil {
			return err
		}
		content, err := r.read(e.offset, &rootBuf)
		if err != nil {
			return err
		}
		if err := resolve(int32(i), e.typ, content, 0, int64(len(content))); err != nil {
			return err
		}
		if rootBuf.Cap() > 1<<20 {
			rootBuf = bytes.Buffer{}
		}
	}
	for i := range entries {
		if !entries[i].done {
			return fmt.Errorf("%w: the base of the delta at offset %d is not in the pack", packfile.ErrReferenceDeltaNotFound, entries[i].offset)
		}
	}
	return nil
}

// checkDeltaTarget returns the size of the delta's result, refusing one
// that would not fit the memory bounds above before any of it is made;
// held is what the chain holds. A malformed header is left to applyDelta
// to report (size 0).
func checkDeltaTarget(delta []byte, held, offset int64) (int, error) {
	_, rest, ok := deltaSize(delta)
	if !ok {
		return 0, nil
	}
	size, _, ok := deltaSize(rest)
	if !ok {
		return 0, nil
	}
	if size > MaxResolvedObjectBytes || uint64(held)+size > MaxResolvedChainBytes {
		return 0, fmt.Errorf("%w: the delta at offset %d makes a %d-byte object on a chain of %d bytes; an index holds at most %d bytes per object and %d per chain in memory",
			ErrTooLarge, offset, size, held, MaxResolvedObjectBytes, MaxResolvedChainBytes)
	}
	return int(size), nil
}

// applyDelta appends to dst (normally empty, reused) the object that git's
// delta encoding describes from base: a header of two sizes (base, result;
// little-endian base-128), then instructions that copy a range of base or
// insert the next 1-127 bytes of the delta.
func applyDelta(dst, base, delta []byte) ([]byte, error) {
	baseSize, delta, ok := deltaSize(delta)
	if !ok {
		return nil, errDeltaHeader
	}
	if baseSize != uint64(len(base)) {
		return nil, errors.New("delta's base size does not match its base")
	}
	size, delta, ok := deltaSize(delta)
	if !ok {
		return nil, errDeltaHeader
	}
	dst = slices.Grow(dst[:0], int(min(size, 1<<20)))
	for len(delta) > 0 {
		cmd := delta[0]
		delta = delta[1:]
		switch {
		case cmd&0x80 != 0: // copy from base: offset and size bytes named by the bits
			var offset, n uint64
			for b := 0; b < 7; b++ {
				if cmd&(1<<b) == 0 {
					continue
				}
				if len(delta) == 0 {
					return nil, errors.New("delta copy instruction is cut short")
				}
				if b < 4 {
					offset |= uint64(delta[0]) << (8 * b)
				} else {
					n |= uint64(delta[0]) << (8 * (b - 4))
				}
				delta = delta[1:]
			}
			if n == 0 {
				n = 0x10000
			}
			if offset+n > uint64(len(base)) || uint64(len(dst))+n > size {
				return nil, errors.New("delta copies outside its base or past its size")
			}
			dst = append(dst, base[offset:offset+n]...)
		case cmd != 0: // insert the next cmd bytes
			n := int(cmd)
			if n > len(delta) || uint64(len(dst)+n) > size {
				return nil, errors.New("delta inserts past its data or its size")
			}
			dst = append(dst, delta[:n]...)
			delta = delta[n:]
		default:
			return nil, errors.New("delta has a reserved instruction (0)")
		}
	}
	if uint64(len(dst)) != size {
		return nil, fmt.Errorf("delta makes %d bytes, its header says %d", len(dst), size)
	}
	return dst, nil
}

// errDeltaHeader: a delta's size is cut short (go-git reads such a size as
// complete; git and applyDelta refuse it).
var errDeltaHeader = errors.New("delta's header is cut short")

// deltaSize decodes a delta header's size (little-endian base-128).
func deltaSize(b []byte) (uint64, []byte, bool) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, b[i+1:], true
		}
	}
	return 0, nil, false
}

// ofsChildren lists each object's OFS deltas: children[first[i]:first[i+1]]
// are object i's. first is nil when a base offset names no object.
func ofsChildren(entries []packEntry) (children, first []int32) {
	type edge struct{ parent, child int32 }
	var edges []edge
	for i, e := range entries {
		if e.base < 0 {
			continue
		}
		// Entries are in offset order: the base is found by binary search.
		p := sort.Search(i, func(j int) bool { return entries[j].offset >= e.base })
		if p == i || entries[p].offset != e.base {
			return nil, nil
		}
		edges = append(edges, edge{int32(p), int32(i)})
	}
	first = make([]int32, len(entries)+1)
	if len(edges) == 0 {
		return nil, first
	}
	slices.SortStableFunc(edges, func(a, b edge) int { return int(a.parent - b.parent) })
	children = make([]int32, len(edges))
	for k, e := range edges {
		children[k] = e.child
		first[e.parent+1]++
	}
	for i := 1; i < len(first); i++ {
		first[i] += first[i-1]
	}
	return children, first
}

// packReader inflates objects at given offsets (already charged to g
// by the scan).
type packReader struct {
	sc *packfile.Scanner
	g  *indexGuard
}

func (r *packReader) read(offset int64, buf *bytes.Buffer) ([]byte, error) {
	oh, err := r.sc.SeekObjectHeader(offset)
	if err != nil {
		return nil, fmt.Errorf("object at offset %d: %w", offset, err)
	}
	if oh.Length > MaxResolvedObjectBytes {
		return nil, fmt.Errorf("%w: object at offset %d, needed whole to resolve deltas, is %d bytes; an index holds at most %d bytes per object in memory",
			ErrTooLarge, offset, oh.Length, MaxResolvedObjectBytes)
	}
	buf.Reset()
	buf.Grow(int(min(oh.Length, 64<<20)))
	n, _, err := r.sc.NextObject(r.g.writer(buf))
	if err == nil && n != oh.Length {
		err = fmt.Errorf("%w: inflates to %d bytes, its header says %d", ErrMalformed, n, oh.Length)
	}
	if err != nil {
		return nil, fmt.Errorf("object at offset %d: %w", offset, err)
	}
	return buf.Bytes(), nil
}

func hashObject(t plumbing.ObjectType, content []byte) plumbing.Hash {
	h := plumbing.NewHasher(t, int64(len(content)))
	h.Write(content)
	return h.Sum()
}

// encodeIndex writes a version 2 pack index: fan-out table, sorted object
// names, CRCs, 31-bit offsets (with a 64-bit table for larger ones), the
// pack's checksum and the index's own. An object present twice is
// indexed once, at its first offset.
func encodeIndex(entries []packEntry, packChecksum plumbing.Hash) []byte {
	slices.SortStableFunc(entries, func(a, b packEntry) int { return bytes.Compare(a.hash[:], b.hash[:]) })
	entries = slices.CompactFunc(entries, func(a, b packEntry) bool { return a.hash == b.hash })
	var out bytes.Buffer
	out.Grow(8 + 256*4 + len(entries)*28 + 40)
	sum := sha1.New()
	w := bufio.NewWriter(io.MultiWriter(&out, sum))
	u32 := func(v uint32) { _ = binary.Write(w, binary.BigEndian, v) }
	w.Write([]byte{0xff, 't', 'O', 'c'})
	u32(2)
	var fanout [256]uint32
	for _, e := range entries {
		fanout[e.hash[0]]++
	}
	var total uint32
	for _, n := range fanout {
		total += n
		u32(total)
	}
	for _, e := range entries {
		w.Write(e.hash[:])
	}
	for _, e := range entries {
		u32(e.crc)
	}
	var large []int64
	for _, e := range entries {
		if e.offset < 1<<31 {
			u32(uint32(e.offset))
			continue
		}
		u32(1<<31 | uint32(len(large)))
		large = append(large, e.offset)
	}
	for _, off := range large {
		_ = binary.Write(w, binary.BigEndian, uint64(off))
	}
	w.Write(packChecksum[:])
	w.Flush()
	out.Write(sum.Sum(nil))
	return out.Bytes()
}
