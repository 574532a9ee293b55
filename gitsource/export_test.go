package gitsource

import "github.com/expsync/expsync/tree"

type treeEntry = tree.Entry
