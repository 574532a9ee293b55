package v1alpha1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yamlDoc is one non-empty document of a file.
type yamlDoc struct {
	index int
	node  *yaml.Node // the document's content (not the DocumentNode)
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseDocuments parses data into documents, refusing before any decoding
// what exceeds the limits: more than MaxDocuments documents, more than
// MaxAliases alias uses, or more than MaxYAMLNodes nodes once aliases are
// expanded (the billion-laughs check: sizes are computed per node once, so
// the check itself is linear in the file).
func parseDocuments(file string, data []byte, lim Limits) (docs []yamlDoc, errs ErrorList) {
	defer func() {
		// yaml.v3 has panicked on malformed input in the past; a panic is a
		// refusal of the file, never a crash of the controller.
		if r := recover(); r != nil {
			docs = nil
			errs = ErrorList{{Pos: Position{File: file, Line: 1, Column: 1}, Message: fmt.Sprintf("YAML parser failed: %v", r)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	budget := sizeBudget{max: lim.MaxYAMLNodes, memo: map[*yaml.Node]int{}}
	aliases := 0
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, ErrorList{yamlError(file, err)}
		}
		if lim.MaxDocuments > 0 && i >= lim.MaxDocuments {
			return nil, ErrorList{{Pos: Position{File: file, Line: max(n.Line, 1), Column: max(n.Column, 1)},
				Message: fmt.Sprintf("more than %d YAML documents in one file (limits.maxDocuments); split the file", lim.MaxDocuments)}}
		}
		if n.Kind != yaml.DocumentNode || len(n.Content) == 0 {
			continue
		}
		root := n.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // an empty document, as after a trailing "---"
		}
		aliases += countAliases(root)
		if lim.MaxAliases > 0 && aliases > lim.MaxAliases {
			return nil, ErrorList{{Pos: pos(file, root),
				Message: fmt.Sprintf("more than %d YAML aliases in one file (limits.maxAliases); write the values out", lim.MaxAliases)}}
		}
		if !budget.fits(root) {
			return nil, ErrorList{{Pos: pos(file, root),
				Message: fmt.Sprintf("more than %d YAML nodes in one file with aliases expanded (limits.maxYAMLNodes)", lim.MaxYAMLNodes)}}
		}
		docs = append(docs, yamlDoc{index: i, node: root})
	}
}

func yamlError(file string, err error) *Error {
	msg := err.Error()
	if m := yamlLineErr.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if isParserProblem(m[2]) {
			// yaml.v3 prints parser (not scanner) errors with a 0-based line.
			line++
		}
		return &Error{Pos: Position{File: file, Line: line, Column: 1}, Message: "invalid YAML: " + m[2]}
	}
	return &Error{Pos: Position{File: file, Line: 1, Column: 1}, Message: "invalid YAML: " + msg}
}

// isParserProblem recognises the problems yaml.v3's parser (as opposed to
// its scanner) reports; parserc.go is their only source.
func isParserProblem(msg string) bool {
	return strings.HasPrefix(msg, "did not find expected ") || strings.HasPrefix(msg, "found duplicate %") ||
		msg == "found incompatible YAML document" || msg == "found undefined tag handle"
}

func pos(file string, n *yaml.Node) Position {
	return Position{File: file, Line: max(n.Line, 1), Column: max(n.Column, 1)}
}

// countAliases counts alias nodes without following them.
func countAliases(n *yaml.Node) int {
	if n.Kind == yaml.AliasNode {
		return 1
	}
	c := 0
	for _, child := range n.Content {
		c += countAliases(child)
	}
	return c
}

// sizeBudget sums the expanded size of documents against max; memo makes an
// anchor used a million times cost one visit.
type sizeBudget struct {
	max  int
	used int
	memo map[*yaml.Node]int
}

func (b *sizeBudget) fits(n *yaml.Node) bool {
	size := b.size(n, 0)
	if size < 0 {
		return false
	}
	b.used += size
	return b.max <= 0 || b.used <= b.max
}

// size returns the expanded node count of n, or -1 once it exceeds the
// budget (or an alias loops).
func (b *sizeBudget) size(n *yaml.Node, depth int) int {
	if s, ok := b.memo[n]; ok {
		return s
	}
	if depth > 10_000 {
		return -1
	}
	b.memo[n] = -1 // in progress: a loop through an alias is refused
	total := 1
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return -1
		}
		total = b.size(n.Alias, depth+1)
	} else {
		for _, child := range n.Content {
			s := b.size(child, depth+1)
			if s < 0 {
				return -1
			}
			total += s
			if b.max > 0 && total > b.max {
				return -1
			}
		}
	}
	if b.max > 0 && total > b.max {
		total = -1
	}
	b.memo[n] = total
	return total
}
