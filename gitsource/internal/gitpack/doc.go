// Package gitpack holds gitsource's workarounds for go-git v5's pack
// handling, in one place so that they can go as a whole when go-git no
// longer needs them. Each is measured (figures and commands:
// docs/performance.md) and each has a canary test (canary_test.go) that
// fails when go-git's behaviour changes, saying which workaround to
// reconsider.
//
// # Indexing a received pack (Index, FetchStorage)
//
// A fetch's pack is indexed here, not by go-git's packfile.Parser. The
// parser keeps the content of every object that is a delta base in an LRU
// of up to 96 MiB until the whole pack is indexed, and reads every object
// into memory: on a repository of similar files (source code: nearly every
// blob is a delta) a shallow fetch of 8,000 4 KiB files peaked at 56 MiB
// against git's 6 MiB. Index streams what it can and holds only the chain
// of bases it is resolving, as `git index-pack` does. It also watches the
// fetch's context and the repository's size limit while it works (go-git
// indexes after the transfer, where nothing watches the context).
//
// go-git's side: https://github.com/go-git/go-git/issues/1774 (a pack
// scanner with a low memory profile, planned for v6),
// https://github.com/go-git/go-git/pull/2069 (a low-memory mode for the
// indexing of a received pack, open) and
// https://github.com/go-git/go-git/issues/813 (buildIndex's delta
// resolution is slow). To drop Index: once go-git's PackfileWriter indexes
// with bounded memory and can be stopped (TestGoGitParserHoldsTheBases
// fails then), remove FetchStorage from gitsource's fetch and this file's
// Index; keep the size limit by measuring the received pack.
//
// # Merging the packs of a long-lived cache (List, ToMerge, Merge, Lock)
//
// Every incremental fetch adds a pack to the cache, and `expsync serve`
// fetches for weeks. go-git looks an object up in every pack's index in
// turn and loads every index each time a storage is opened: with 500 packs
// a snapshot of the next commit took about 10x longer than after 10
// fetches. So gitsource merges the small packs into one once a fetch
// leaves more than a few (its maxCachePacks).
//
// Merging concatenates the packs as they are: a pack's objects are copied
// byte for byte, so an OFS delta still finds its base at the same distance
// and a REF delta by its ID (every pack in the cache is self-contained:
// Index refuses a delta whose base is not in its pack). The new index is
// the old indexes' entries with their offsets moved: nothing is inflated,
// no delta resolved; memory is the entries (48 bytes per object, as Index
// holds for a fetch) and one old index at a time. The cache keeps exactly
// the objects it had, so verification (which reads the cache's history)
// and the shallow boundaries see no difference. It does not compress them
// better either: unlike git's gc, which deltas each tree against its
// previous versions, a merge leaves the cache ~3.7x git's size after 500
// fetches (the repository's size limit bounds it).
//
// The merged pack is in place before the old packs are removed, so the
// folder always holds every object. A storage open across a merge read its
// list of packs before; when it meets a removed pack (Replaced) its user
// lists them again holding the packs lock (Lock, <git>/packs.lock) shared,
// which Merge holds exclusively while it moves its pack in and removes the
// old ones (milliseconds).
//
// go-git's side: https://github.com/go-git/go-git/issues/1821 (multi-pack
// index and concurrent pack look-up, open) and
// https://github.com/go-git/go-git/issues/2242 ("object not found" when
// packs are replaced under an open storage, open). To drop the merge: once
// go-git reads a multi-pack-index or otherwise stops loading every pack's
// index per look-up (TestGoGitLoadsEveryPackIndex fails then), write
// `git multi-pack-index`-style indexes or nothing, and let packs grow.
package gitpack
