package gitpack

import (
	"errors"

	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// ErrTooLarge: a pack inflates to more than the repository's size limit
// (gitsource.ErrRepoTooLarge is this error).
var ErrTooLarge = errors.New("repository exceeds the size limit")

// ErrMalformed: a pack or its index cannot be read whole.
var ErrMalformed = packfile.ErrMalformedPackFile
