package v1alpha1

import (
	"errors"

	"github.com/expsync/expsync/tree"
)

// Load reads expsync.yaml and every experiment file of the repository r,
// merges templates, applies defaults and validates everything. Validation
// problems come back together as an ErrorList.
func Load(r tree.Reader, opts LoadOptions) (*Repository, error) {
	return nil, errors.New("v1alpha1.Load: not implemented yet")
}
