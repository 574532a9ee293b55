package gitsource

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// History fetches the whole history of the repository's branches into the
// cache (every refs/heads/*, no depth) and opens its object store, for a
// reader that looks objects up by ID: a reproduction reads the context tree
// and the experiment file an attestation names, which no branch head may
// hold any more (a squash merge keeps the trees reachable, not the
// commit). The Source's cache must be one that only History uses: go-git
// cannot reliably deepen a shallow cache such as Snapshot keeps. Later calls
// fetch only what is new. release closes the store.
func (s *Source) History(ctx context.Context) (objects storer.EncodedObjectStorer, release func(), err error) {
	const op = "fetch history"
	fetchCtx, cancel := s.limits.withTimeout(ctx)
	defer cancel()
	unlock, err := s.lockCache(fetchCtx)
	if err != nil {
		return nil, nil, s.wrap(op, err)
	}
	defer unlock()
	st, unpin, err := s.openPinnedStorage()
	if err != nil {
		return nil, nil, s.wrap(op, err)
	}
	fail := func(err error) (storer.EncodedObjectStorer, func(), error) {
		st.Close()
		unpin()
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return nil, nil, s.newError(op, ErrEmptyRepository, "")
		}
		return nil, nil, s.wrap(op, err)
	}
	auth, err := s.repo.Auth.transportAuth(s.repo.URL)
	if err != nil {
		return fail(err)
	}
	s.stats.fetches.Add(1)
	remote := git.NewRemote(s.fetchStorer(fetchCtx, st), &config.RemoteConfig{Name: remoteName, URLs: []string{s.repo.URL}})
	px, done := sshProxy(fetchCtx, s.repo.URL)
	defer done()
	err = remote.FetchContext(fetchCtx, &git.FetchOptions{
		ProxyOptions: px,
		RemoteName:   remoteName,
		RefSpecs:     []config.RefSpec{config.RefSpec(fmt.Sprintf("+refs/heads/*:%s", cacheRef("refs/heads/*")))},
		Tags:         git.NoTags,
		Auth:         auth,
		CABundle:     s.repo.Auth.caBundle(),
		Force:        true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		if fetchCtx.Err() != nil && !errors.Is(err, fetchCtx.Err()) {
			err = fmt.Errorf("%w (%v)", fetchCtx.Err(), err)
		}
		return fail(err)
	}
	if err := s.checkCacheSize(op); err != nil {
		st.Close()
		unpin()
		return nil, nil, err
	}
	return st, func() { st.Close(); unpin() }, nil
}
