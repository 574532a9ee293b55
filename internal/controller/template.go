package controller

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/expsync/expsync/reconcile"
)

// A results commit message template comes from a user's object and runs in
// the controller every tenant shares, so it must not be able to hang or
// exhaust it. text/template alone allows both: {{range 1000000000}} loops
// (integers are rangeable), nested ranges multiply, and
// {{printf "%999999999d" 1}} allocates a gigabyte. So:
//   - range is allowed over .Experiments only (the one list of the
//     summary, as long as the commit's experiments), never nested;
//   - printf refuses widths and precisions above 999 and '*';
//   - the message is cut off with an error past maxMessageBytes.
const maxMessageBytes = 64 << 10

var (
	errMessageTooLong = fmt.Errorf("the commit message is longer than %d bytes", maxMessageBytes)
	// bigWidth finds a width or precision of 4+ digits, or one taken from
	// the arguments (*), in a printf format.
	bigWidth = regexp.MustCompile(`%[-+# 0]*(\d{4,}|\*|\d*\.(\d{4,}|\*))`)
)

// messageTemplate parses the results commit message template and checks
// it against the rules above, then executes it once on a sample so a
// template naming a field that does not exist fails now, not at the first
// commit.
func messageTemplate(text string) (func(reconcile.CommitSummary) (string, error), error) {
	tmpl, err := template.New("message").Option("missingkey=error").Funcs(template.FuncMap{"printf": safePrintf}).Parse(text)
	if err != nil {
		return nil, err
	}
	for _, t := range tmpl.Templates() {
		if t.Tree == nil {
			continue
		}
		if err := checkTemplateNode(t.Tree.Root, 0); err != nil {
			return nil, err
		}
	}
	execute := func(s reconcile.CommitSummary) (string, error) {
		var b boundedBuilder
		if err := tmpl.Execute(&b, s); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	if _, err := execute(reconcile.CommitSummary{Experiments: []reconcile.ExperimentSummary{{}}}); err != nil {
		return nil, err
	}
	return execute, nil
}

// checkTemplateNode walks a template's tree: ranges only over
// .Experiments and only at the top level (depth counts enclosing ranges).
func checkTemplateNode(n parse.Node, depth int) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkTemplateNode(c, depth); err != nil {
				return err
			}
		}
	case *parse.RangeNode:
		if depth > 0 {
			return fmt.Errorf("%s: a range inside a range is not allowed (the message must stay small)", n.String())
		}
		if !rangesOverExperiments(n.Pipe) {
			return fmt.Errorf("{{range %s}}: only {{range .Experiments}} is allowed", n.Pipe)
		}
		if err := checkTemplateNode(n.List, depth+1); err != nil {
			return err
		}
		return checkTemplateNode(n.ElseList, depth)
	case *parse.IfNode:
		if err := checkTemplateNode(n.List, depth); err != nil {
			return err
		}
		return checkTemplateNode(n.ElseList, depth)
	case *parse.WithNode:
		if err := checkTemplateNode(n.List, depth); err != nil {
			return err
		}
		return checkTemplateNode(n.ElseList, depth)
	case *parse.TemplateNode:
		// A called template is checked as one of tmpl.Templates(); called
		// inside a range its own range would nest.
		if depth > 0 {
			return errors.New("{{template}} inside a range is not allowed")
		}
	}
	return nil
}

func rangesOverExperiments(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	f, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
	return ok && len(f.Ident) == 1 && f.Ident[0] == "Experiments"
}

// safePrintf is fmt.Sprintf without huge widths or precisions.
func safePrintf(format string, args ...any) (string, error) {
	if bigWidth.MatchString(format) {
		return "", fmt.Errorf("printf %q: widths and precisions above 999 and * are not allowed", format)
	}
	return fmt.Sprintf(format, args...), nil
}

// boundedBuilder fails a write past maxMessageBytes, which stops the
// template's execution.
type boundedBuilder struct{ strings.Builder }

func (b *boundedBuilder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxMessageBytes {
		return 0, errMessageTooLong
	}
	return b.Builder.Write(p)
}
