package gitsource

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/expsync/expsync/gitsource/internal/gitpack"
)

// maxCachePacks: a fetch that leaves more packs than this merges them
// (git's gc --auto repacks at 50 packs, or ~6,700 loose objects). Why
// merging is needed at all, and how: gitsource/internal/gitpack.
const maxCachePacks = 16

func (s *Source) packDir() string { return filepath.Join(s.gitDir(), "objects", "pack") }

// consolidatePacks merges the cache's packs once there are more than
// maxCachePacks. It reports how many packs it merged (0: none). The caller
// holds the cache lock and re-reads the pack list of any storage it keeps
// open (Reindex).
func (s *Source) consolidatePacks(ctx context.Context) (int, error) {
	dir := s.packDir()
	packs, err := gitpack.List(dir)
	if err != nil || len(packs) <= maxCachePacks {
		return 0, err
	}
	merge := gitpack.ToMerge(packs, maxCachePacks/2)
	if len(merge) < 2 {
		return 0, nil
	}
	if _, err := gitpack.Merge(ctx, s.gitDir(), merge); err != nil {
		return 0, fmt.Errorf("merge the cache's %d packs: %w", len(merge), err)
	}
	return len(merge), nil
}
