package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// validateOptions checks experiment repositories (working folders) without
// running anything: every file is loaded, every sweep expanded and every run
// ID computed, exactly as the controller would for a commit of them.
type validateOptions struct {
	Mode string
	// Format is how problems are printed: text (file:line:col: message),
	// github (workflow commands, shown as annotations on a pull request) or
	// json (one object per line: file, line, column, message).
	Format string
	Stdout io.Writer
	Stderr io.Writer
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &validateOptions{}
		c := &cobra.Command{
			Use:   "validate [PATH...]",
			Short: "Check the experiment files of repository folders (default .) and count their runs",
			Long: "validate loads expsync.yaml and every experiment file of each repository folder, expands the sweeps\n" +
				"and computes the run IDs. It prints one summary line per folder and exits 0, or prints every problem\n" +
				"as file:line:col: message and exits 1.",
			RunE: func(c *cobra.Command, args []string) error {
				o.Stdout, o.Stderr = c.OutOrStdout(), c.ErrOrStderr()
				return o.Exec(c.Context(), args)
			},
		}
		c.Flags().StringVar(&o.Mode, "mode", string(v1alpha1.ModeLocal), "execution mode the files must be valid for: local or kubernetes")
		c.Flags().StringVar(&o.Format, "format", "text", "how problems are printed: text, github (pull-request annotations) or json (one object per line)")
		return c
	})
}

func (o *validateOptions) Exec(ctx context.Context, paths []string) error {
	mode := v1alpha1.Mode(o.Mode)
	if mode != v1alpha1.ModeLocal && mode != v1alpha1.ModeKubernetes {
		return &exitError{code: 2, err: fmt.Errorf("--mode %q: use local or kubernetes", o.Mode)}
	}
	switch o.Format {
	case "", "text", "github", "json":
	default:
		return &exitError{code: 2, err: fmt.Errorf("--format %q: use text, github or json", o.Format)}
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	failed := false
	for _, p := range paths {
		ok, err := o.validate(p, mode)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		failed = failed || !ok
	}
	if failed {
		return &exitError{code: 1, err: errors.New("")}
	}
	return nil
}

// validate checks one folder; ok is false when it printed problems.
func (o *validateOptions) validate(path string, mode v1alpha1.Mode) (bool, error) {
	dir, err := tree.NewDir(path)
	if err != nil {
		return false, err
	}
	defer dir.Close()
	res, err := render.Plan(dir, render.PlanOptions{Mode: mode})
	var list v1alpha1.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			e.Pos.File = displayFile(path, e.Pos.File)
			o.printProblem(e)
		}
		fmt.Fprintf(o.Stderr, "%s: %d problem(s)\n", path, len(list))
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(o.Stdout, "%s: valid: %d experiment(s), %d run(s) in %s mode\n", path, len(res.Experiments), len(res.Runs), mode)
	o.noteUntracked(path, dir, res.Runs)
	return true, nil
}

// noteUntracked prints one line naming the files of the runs' contexts that
// Git neither tracks nor ignores: the IDs just computed include them, so a
// commit made without `git add` of them would get other IDs. Nothing is
// printed outside a Git work tree, or with --format json (whose lines are
// problems only).
func (o *validateOptions) noteUntracked(path string, dir *tree.Dir, runs []render.Run) {
	if o.Format == "json" {
		return
	}
	seen := map[string]bool{}
	var files []string
	for _, r := range runs {
		if seen["ctx:"+r.Contract.Context.Path] {
			continue
		}
		seen["ctx:"+r.Contract.Context.Path] = true
		untracked, ok := dir.Untracked(r.Contract.Context.Path)
		if !ok {
			return
		}
		for _, f := range untracked {
			if !seen[f] {
				seen[f] = true
				files = append(files, displayFile(path, f))
			}
		}
	}
	if len(files) == 0 {
		return
	}
	sort.Strings(files)
	shown := files
	if len(shown) > 5 {
		shown = shown[:5]
	}
	list := strings.Join(shown, ", ")
	if more := len(files) - len(shown); more > 0 {
		list += fmt.Sprintf(" and %d more", more)
	}
	msg := fmt.Sprintf("%d untracked file(s) in run contexts are part of these run IDs: %s; `git add` them or list them in .gitignore, or the IDs of the commit will differ", len(files), list)
	if o.Format == "github" {
		fmt.Fprintf(o.Stderr, "::notice::%s\n", githubEscapeData(msg))
		return
	}
	fmt.Fprintf(o.Stderr, "%s: note: %s\n", path, msg)
}

// displayFile makes a repository path usable from where the command runs.
func displayFile(root, file string) string {
	if root == "." || root == "" {
		return file
	}
	return filepath.Join(root, filepath.FromSlash(file))
}

func (o *validateOptions) printProblem(e *v1alpha1.Error) {
	switch o.Format {
	case "github":
		// https://docs.github.com/actions/reference/workflow-commands-for-github-actions
		fmt.Fprintf(o.Stderr, "::error file=%s,line=%d,col=%d::%s\n", githubEscapeProperty(e.Pos.File), e.Pos.Line, e.Pos.Column, githubEscapeData(e.Message))
	case "json":
		b, _ := json.Marshal(struct {
			File    string `json:"file"`
			Line    int    `json:"line"`
			Column  int    `json:"column"`
			Message string `json:"message"`
		}{e.Pos.File, e.Pos.Line, e.Pos.Column, e.Message})
		fmt.Fprintln(o.Stderr, string(b))
	default:
		fmt.Fprintln(o.Stderr, e.Error())
	}
}

func githubEscapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func githubEscapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
