package gitsource

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Source tracks one repository: it polls refs, snapshots commits from an
// on-disk cache and commits results back. A Source keeps only small state in
// memory (the last observed commit per ref and counters); Git objects live in
// the cache folder and are opened per operation, never kept open between
// polls. A Source is safe for concurrent use; operations on its cache are
// serialised.
type Source struct {
	repo     Repository
	limits   Limits
	redacted string
	dir      string // cache folder of this repository

	// cacheSem (capacity 1) with the flock of lockCache serialises cache
	// use; a channel rather than a mutex, so a waiter gives up when its
	// context ends instead of queueing behind a slow operation.
	cacheSem chan struct{}
	pollMu   sync.Mutex // one Poll at a time
	stateMu  sync.Mutex
	observed map[string]string // full ref name -> last observed commit

	stats counters
	// dropPending: a pack merge met a malformed pack; the next fetch
	// drops the cache first (fetch.go).
	dropPending atomic.Bool

	trashMu       sync.Mutex
	openSnapshots int
	trash         []trashDir // dropped cache folders still read by a Snapshot
}

// Stats counts network operations, so tests and benchmarks can prove that an
// unchanged repository costs one listing and no fetch.
type Stats struct {
	Lists, Fetches, Pushes, CacheDrops int64
}

type counters struct{ lists, fetches, pushes, drops atomic.Int64 }

// New validates repo and returns its Source, caching Git objects under
// cacheRoot/<hash of the URL>.
func New(repo Repository, cacheRoot string) (*Source, error) {
	if err := ValidateURL(repo.URL, repo.URLPolicy); err != nil {
		return nil, err
	}
	if len(repo.Refs) == 0 {
		return nil, fmt.Errorf("repository %s: no refs to watch: add at least one ref pattern such as \"main\"", RedactURL(repo.URL))
	}
	for _, p := range repo.Refs {
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("repository %s: %w", RedactURL(repo.URL), err)
		}
	}
	if repo.Verify != nil {
		if err := repo.Verify.validate(); err != nil {
			return nil, fmt.Errorf("repository %s: %w", RedactURL(repo.URL), err)
		}
	}
	if cacheRoot == "" {
		return nil, fmt.Errorf("repository %s: no cache folder given", RedactURL(repo.URL))
	}
	sum := sha256.Sum256([]byte(repo.URL))
	return &Source{
		repo:     repo,
		limits:   repo.Limits.withDefaults(),
		redacted: RedactURL(repo.URL),
		dir:      filepath.Join(cacheRoot, hex.EncodeToString(sum[:10])),
		observed: map[string]string{},
		cacheSem: make(chan struct{}, 1),
	}, nil
}

// URL returns the repository URL without credentials.
func (s *Source) URL() string { return s.redacted }

// Repository returns the configuration the Source was built from.
func (s *Source) Repository() Repository { return s.repo }

// Stats returns the network operation counters.
func (s *Source) Stats() Stats {
	return Stats{Lists: s.stats.lists.Load(), Fetches: s.stats.fetches.Load(),
		Pushes: s.stats.pushes.Load(), CacheDrops: s.stats.drops.Load()}
}

// Observed returns the last observed commit of every watched ref, for a
// caller that persists it (for example in an object's status).
func (s *Source) Observed() map[string]string {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	out := make(map[string]string, len(s.observed))
	for k, v := range s.observed {
		out[k] = v
	}
	return out
}

// SetObserved restores state saved from Observed after a restart, so the
// first Poll reports only what changed since.
func (s *Source) SetObserved(m map[string]string) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.observed = make(map[string]string, len(m))
	for k, v := range m {
		s.observed[k] = v
	}
}

func (s *Source) redactor() redactor {
	return redactor{secrets: append(s.repo.Auth.secrets(), urlSecrets(s.repo.URL)...)}
}
