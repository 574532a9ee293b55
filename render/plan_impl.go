package render

import (
	"errors"

	"github.com/expsync/expsync/tree"
)

func plan(r tree.Reader, opts PlanOptions) (*PlanResult, error) {
	return nil, errors.New("render.Plan: not implemented yet")
}
