package gitsource

import (
	"fmt"
	"sort"
	"strings"
	"text/template"
)

// MessageData is what a commit message template can use, for example
// "results: {{.Files}} files for {{.Branch}}".
type MessageData struct {
	Branch string   // the branch committed to
	Parent string   // the head the commit is built on ("" for a root commit)
	Files  int      // number of paths written or deleted
	Paths  []string // those paths, sorted
}

// renderMessage executes req.Message as a text/template when it contains
// "{{"; otherwise the message is used as it is.
func renderMessage(req CommitRequest, parent string) (string, error) {
	if !strings.Contains(req.Message, "{{") {
		return req.Message, nil
	}
	tmpl, err := template.New("message").Option("missingkey=error").Parse(req.Message)
	if err != nil {
		return "", fmt.Errorf("commit message template: %w", err)
	}
	paths := make([]string, 0, len(req.Files))
	for p := range req.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	if err := tmpl.Execute(&b, MessageData{Branch: req.Branch, Parent: parent, Files: len(paths), Paths: paths}); err != nil {
		return "", fmt.Errorf("commit message template: %w", err)
	}
	return b.String(), nil
}
