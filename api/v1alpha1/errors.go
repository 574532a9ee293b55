package v1alpha1

import (
	"fmt"
	"sort"
	"strings"
)

// Position is a place in a repository file; Line and Column count from 1
// (0 when unknown, for example a file that could not be read at all).
type Position struct {
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

func (p Position) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	default:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	}
}

// Error is one problem of a repository file, printed as "file:line:col: message".
type Error struct {
	Pos     Position
	Message string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Message }

// ErrorList is every problem found, in file, line, column order. Load and
// render.Plan return one (as error) when anything is wrong.
type ErrorList []*Error

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders the list by file, line, column, then message.
func (l ErrorList) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return l[i].Message < l[j].Message
	})
}

// Err returns nil for an empty list, the sorted list otherwise.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	l.Sort()
	return l
}

// MaxErrors bounds the problems one Load records: a hostile or badly broken
// file must not cost time and memory in proportion to its mistakes.
const MaxErrors = 200

// add appends an error at pos; past MaxErrors it records one last note and
// then nothing.
func (l *ErrorList) add(pos Position, format string, args ...any) {
	switch {
	case len(*l) < MaxErrors:
		*l = append(*l, &Error{Pos: pos, Message: fmt.Sprintf(format, args...)})
	case len(*l) == MaxErrors:
		*l = append(*l, &Error{Pos: pos, Message: fmt.Sprintf("more than %d problems; stopped checking here", MaxErrors)})
	}
}

// full reports whether add would drop errors, so callers can skip work
// (such as finding a hint) whose result would be dropped. A pointer
// receiver: the decoder keeps the method value d.errs.full, which with a
// value receiver would copy the list once, empty, and never be full.
func (l *ErrorList) full() bool { return len(*l) > MaxErrors }
