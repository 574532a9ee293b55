package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
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
			Short: "Check the experiment files of repository folders or files (default .) and count their runs",
			Long: "validate loads expsync.yaml and every experiment file of each repository folder, expands the sweeps\n" +
				"and computes the run IDs. It prints one summary line per folder and exits 0, or prints every problem\n" +
				"as file:line:col: message and exits 1.\n\n" +
				"A PATH that is a file (an experiment file, a template, expsync.yaml) checks the repository it belongs to:\n" +
				"the nearest folder above it holding .git (or else expsync.yaml), planned as a commit would be, since an\n" +
				"error in any file stops every run. A file expsync would not read fails. This is what the pre-commit hook\n" +
				"runs (.pre-commit-hooks.yaml).",
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
	folders, files, err := repositoriesOf(paths)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	failed := false
	for _, p := range folders {
		ok, err := o.validate(p, mode, files[p])
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

// validate checks one folder; ok is false when it printed problems. named
// are the files the command line named in it (repository paths), which
// must be files expsync reads.
func (o *validateOptions) validate(path string, mode v1alpha1.Mode, named []string) (bool, error) {
	dir, err := tree.NewDir(path)
	if err != nil {
		return false, err
	}
	defer dir.Close()
	res, err := render.Plan(dir, render.PlanOptions{Mode: mode})
	var list v1alpha1.ErrorList
	if err != nil && !errors.As(err, &list) {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if res != nil {
		for _, f := range notSpecFiles(res, named) {
			list = append(list, &v1alpha1.Error{Pos: v1alpha1.Position{File: f, Line: 1, Column: 1},
				Message: fmt.Sprintf("expsync does not read this file: experiments are the *.yaml and *.yml files below %s/ (experiments: in %s), templates are the files they name", res.Config.Experiments, v1alpha1.ConfigFile)})
		}
	}
	if len(list) > 0 {
		for _, e := range list {
			e.Pos.File = displayFile(path, e.Pos.File)
			o.printProblem(e)
		}
		fmt.Fprintf(o.Stderr, "%s: %d problem(s)\n", path, len(list))
		return false, nil
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

// repositoriesOf sorts the command line's paths: folders are checked as
// they are; a file checks the repository it belongs to, the nearest folder
// above it holding .git (or, outside Git, expsync.yaml). It returns the
// folders to check, in order, and the files named in each (repository
// paths).
func repositoriesOf(paths []string) ([]string, map[string][]string, error) {
	var folders []string
	files := map[string][]string{}
	add := func(folder string) {
		if _, ok := files[folder]; !ok {
			files[folder] = nil
			folders = append(folders, folder)
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		if fi.IsDir() {
			add(p)
			continue
		}
		if !fi.Mode().IsRegular() {
			return nil, nil, fmt.Errorf("%s is neither a file nor a folder", p)
		}
		root, err := repositoryRoot(p)
		if err != nil {
			return nil, nil, err
		}
		absRoot, err1 := filepath.Abs(root)
		absFile, err2 := filepath.Abs(p)
		if err := errors.Join(err1, err2); err != nil {
			return nil, nil, err
		}
		rel, err := filepath.Rel(absRoot, absFile)
		if err != nil {
			return nil, nil, err
		}
		add(root)
		files[root] = append(files[root], filepath.ToSlash(rel))
	}
	return folders, files, nil
}

// repositoryRoot finds the folder of file's repository, as the command
// line names it (relative stays relative, so problems print as paths the
// user can open).
func repositoryRoot(file string) (string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	var configAt string
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
			return asGiven(file, abs, dir), nil
		}
		if configAt == "" {
			if fi, err := os.Stat(filepath.Join(dir, v1alpha1.ConfigFile)); err == nil && fi.Mode().IsRegular() {
				configAt = dir
			}
		}
		if parent := filepath.Dir(dir); parent == dir {
			break
		}
	}
	if configAt != "" {
		return asGiven(file, abs, configAt), nil
	}
	return "", fmt.Errorf("%s: no repository above it (no folder holding .git or %s); name the repository's folder instead", file, v1alpha1.ConfigFile)
}

// asGiven expresses root like file was given: relative to the working
// folder when file was relative.
func asGiven(file, abs, root string) string {
	if filepath.IsAbs(file) {
		return root
	}
	cwd, err := os.Getwd()
	if err != nil {
		return root
	}
	if rel, err := filepath.Rel(cwd, root); err == nil {
		return rel
	}
	return root
}

// notSpecFiles lists the named files (repository paths) that planning did
// not read: neither expsync.yaml, nor below the experiments folder, nor a
// template an experiment names.
func notSpecFiles(res *render.PlanResult, named []string) []string {
	read := map[string]bool{v1alpha1.ConfigFile: true}
	for _, f := range res.SpecFiles {
		read[f] = true
	}
	var out []string
	for _, f := range named {
		ext := strings.ToLower(path.Ext(f))
		inExperiments := tree.Contains(res.Config.Experiments, f) && !tree.Contains(res.Config.Results, f) && (ext == ".yaml" || ext == ".yml")
		for _, pattern := range res.Config.Ignore {
			if ok, _ := path.Match(pattern, f); ok {
				inExperiments = false
			}
		}
		if !read[f] && !inExperiments {
			out = append(out, f)
		}
	}
	return out
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
