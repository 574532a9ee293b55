package runner

import (
	"context"
	"errors"
	"fmt"

	"github.com/expsync/expsync/contract"
)

// ErrInputGone is wrapped by FetchInput's error when the input's URL can
// never give the file: it answers 404 or 410, or is not http(s).
var ErrInputGone = errors.New("input gone from its URL")

// FetchInput makes sure the store holds a URL input's bytes, fetching them
// and checking them against the input's sha256 when it does not; it reports
// whether it fetched. A reproduction calls it before it starts anything, to
// say why an input cannot be had rather than spend compute first: the URL
// answers 404 or 410 (ErrInputGone), it serves other bytes
// (*InputMismatchError, naming both digests), or it cannot be reached.
func FetchInput(ctx context.Context, c contract.Contract, in contract.Input, opts Options) (fetched bool, err error) {
	st, err := openStore(c, opts)
	if err != nil {
		return false, err
	}
	opts.Store = st
	opts = opts.withDefaults()
	what := describeInput(in)
	has, _, err := inputPresent(ctx, st, in, what)
	if err != nil || has {
		return false, err
	}
	if in.URI == "" {
		return false, fmt.Errorf("%s: sha256 %s is not in the store and the input has no URI to fetch it from", what, in.SHA256)
	}
	err = fetch(ctx, st, opts, in, what)
	var unusable *unusableInputError
	if errors.As(err, &unusable) {
		return false, fmt.Errorf("%w: %w", ErrInputGone, err)
	}
	return err == nil, err
}
