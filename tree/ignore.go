package tree

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	gitconfig "github.com/go-git/go-git/v5/plumbing/format/config"
	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// A working folder is read as `git add -A` would record it, so the IDs shown
// by validate/render before a commit equal the commit's: what Git ignores
// (.gitignore files at every level, .git/info/exclude, the user's
// core.excludesFile) is left out, unless the Git index tracks it.
//
// Matching itself is go-git's gitignore package (ignore_pattern.go); this
// file gathers the patterns Git would use and the index's tracked files.

// maxIgnoreFile is Git's own limit: larger .gitignore files are ignored.
const maxIgnoreFile = 100 << 20

// workTree is what the Git repository around a Dir contributes.
type workTree struct {
	// prefix is the Dir root's path inside the work tree, as components.
	prefix []string
	// patterns are the global excludes, info/exclude and the .gitignore
	// files of the folders above the Dir root, lowest priority first.
	patterns []ignorePattern
	// tracked holds the Dir-relative paths of the index's entries and of
	// every folder above one; nil when there is no index to ask (outside a
	// work tree, or an index go-git cannot read).
	tracked map[string]bool
}

// dirRules is what decides which children of one folder are recorded.
type dirRules struct {
	patterns []ignorePattern // lowest priority first, the folder's own .gitignore last
	ignored  bool            // the folder itself is ignored: only tracked entries count
}

// findWorkTree gathers the ignore rules and tracked files for the folder
// abs. Outside a work tree, only the user's global excludes apply (the
// folder's own .gitignore files are read as it is listed).
func findWorkTree(abs string) workTree {
	top, gitDir, ok := locateGitDir(abs)
	if !ok {
		return workTree{patterns: globalExcludes("")}
	}
	rel, err := filepath.Rel(top, abs)
	if err != nil {
		return workTree{patterns: globalExcludes("")}
	}
	var prefix []string
	if rel != "." {
		prefix = strings.Split(filepath.ToSlash(rel), "/")
	}
	common := commonDir(gitDir)
	patterns := globalExcludes(filepath.Join(common, "config"))
	patterns = append(patterns, readIgnoreFile(filepath.Join(common, "info", "exclude"), nil)...)
	// The .gitignore files of the folders from the work tree's top down to
	// the Dir root's parent; the root's own is read like any folder's.
	for i := range prefix {
		patterns = append(patterns, readIgnoreFile(filepath.Join(top, filepath.Join(prefix[:i]...), ".gitignore"), prefix[:i])...)
		if ignoredBy(patterns, prefix[:i+1], true) {
			// The folder is ignored where it lies, so it is not this
			// repository's content: hash it as a repository of its own.
			return workTree{patterns: globalExcludes("")}
		}
	}
	return workTree{prefix: prefix, patterns: patterns, tracked: trackedPaths(gitDir, prefix)}
}

// locateGitDir walks up from abs to the first folder holding `.git` (a
// folder, or a file naming the Git directory as linked work trees and
// submodules have) and returns that folder and the Git directory.
func locateGitDir(abs string) (top, gitDir string, ok bool) {
	for dir := abs; ; {
		dotGit := filepath.Join(dir, ".git")
		if info, err := os.Lstat(dotGit); err == nil {
			switch {
			case info.IsDir():
				return dir, dotGit, true
			case info.Mode().IsRegular():
				if target, ok := readGitFile(dotGit); ok {
					return dir, target, true
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", "", false
		}
		dir = parent
	}
}

// readGitFile reads a `.git` file's "gitdir: PATH" line.
func readGitFile(dotGit string) (string, bool) {
	data, err := readSmall(dotGit, 64<<10)
	if err != nil {
		return "", false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	target, ok := strings.CutPrefix(strings.TrimSpace(line), "gitdir: ")
	if !ok || target == "" {
		return "", false
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(dotGit), target)
	}
	return target, true
}

// commonDir is where a linked work tree's shared files (config,
// info/exclude) live: the Git directory itself for a main work tree.
func commonDir(gitDir string) string {
	data, err := readSmall(filepath.Join(gitDir, "commondir"), 64<<10)
	if err != nil {
		return gitDir
	}
	dir := strings.TrimSpace(string(data))
	if dir == "" {
		return gitDir
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(gitDir, dir)
	}
	return dir
}

// trackedPaths reads the index with go-git and returns the Dir-relative
// paths of its entries below prefix, and of their folders; nil when the
// index cannot be read (then ignored files are left out even if tracked).
// GIT_INDEX_FILE is honoured as Git does: in a pre-commit hook of
// `git commit -a` it names the index being committed.
func trackedPaths(gitDir string, prefix []string) map[string]bool {
	file := filepath.Join(gitDir, "index")
	if env := os.Getenv("GIT_INDEX_FILE"); env != "" {
		file = env
	}
	f, err := os.Open(file)
	if err != nil {
		if os.IsNotExist(err) {
			return map[string]bool{} // nothing added yet
		}
		return nil
	}
	defer f.Close()
	var idx index.Index
	if err := index.NewDecoder(bufio.NewReader(f)).Decode(&idx); err != nil {
		return nil
	}
	under := strings.Join(prefix, "/")
	tracked := make(map[string]bool, len(idx.Entries))
	for _, e := range idx.Entries {
		p := e.Name
		if under != "" {
			var ok bool
			if p, ok = strings.CutPrefix(p, under+"/"); !ok {
				continue
			}
		}
		for p != "" && !tracked[p] {
			tracked[p] = true
			p, _ = Split(p)
		}
	}
	return tracked
}

// globalExcludes reads the file core.excludesFile names, as Git resolves it:
// system, then global (GIT_CONFIG_GLOBAL, or the XDG file then
// ~/.gitconfig), then the repository's config (repoConfig, may be ""); the
// last setting wins; unset means $XDG_CONFIG_HOME/git/ignore. [include]
// sections are not followed.
func globalExcludes(repoConfig string) []ignorePattern {
	home, _ := os.UserHomeDir()
	xdg := os.Getenv("XDG_CONFIG_HOME")
	if xdg == "" && home != "" {
		xdg = filepath.Join(home, ".config")
	}
	var files []string
	if os.Getenv("GIT_CONFIG_NOSYSTEM") == "" {
		files = append(files, "/etc/gitconfig")
	}
	if g := os.Getenv("GIT_CONFIG_GLOBAL"); g != "" {
		files = append(files, g)
	} else {
		if xdg != "" {
			files = append(files, filepath.Join(xdg, "git", "config"))
		}
		if home != "" {
			files = append(files, filepath.Join(home, ".gitconfig"))
		}
	}
	if repoConfig != "" {
		files = append(files, repoConfig)
	}
	excludes := ""
	if xdg != "" {
		excludes = filepath.Join(xdg, "git", "ignore")
	}
	for _, file := range files {
		if v := configExcludesFile(file); v != "" {
			excludes = v
		}
	}
	if rest, ok := strings.CutPrefix(excludes, "~/"); ok && home != "" {
		excludes = filepath.Join(home, rest)
	}
	if excludes == "" {
		return nil
	}
	return readIgnoreFile(excludes, nil)
}

// configExcludesFile is core.excludesFile in one config file ("" if unset
// or unreadable).
func configExcludesFile(file string) string {
	data, err := readSmall(file, 1<<20)
	if err != nil {
		return ""
	}
	cfg := gitconfig.New()
	if err := gitconfig.NewDecoder(bytes.NewReader(data)).Decode(cfg); err != nil {
		return ""
	}
	v := ""
	for _, s := range cfg.Sections {
		if s.IsName("core") {
			if got := s.Options.Get("excludesfile"); got != "" {
				v = got
			}
		}
	}
	return v
}

// readIgnoreFile parses the ignore file at the OS path file, its patterns
// relative to the work-tree folder domain. A missing, unreadable, symlinked
// (Git does not follow those) or oversized file gives none.
func readIgnoreFile(file string, domain []string) []ignorePattern {
	info, err := os.Lstat(file)
	if err != nil || !info.Mode().IsRegular() || info.Size() > maxIgnoreFile {
		return nil
	}
	data, err := readSmall(file, maxIgnoreFile)
	if err != nil {
		return nil
	}
	return parseIgnore(data, domain)
}

// parseIgnore turns ignore-file content into go-git patterns: comments and
// blank lines dropped, a leading UTF-8 BOM and CRLF endings tolerated as Git
// does.
func parseIgnore(data []byte, domain []string) []ignorePattern {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var ps []ignorePattern
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		ps = append(ps, parsePattern(line, domain))
	}
	return ps
}

func readSmall(file string, limit int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// childRules adds the .gitignore of folder p (Dir-relative) to its
// parent's rules. An ignored folder's .gitignore is not read, as in Git.
func (d *Dir) childRules(parent dirRules, p string, ignored bool) dirRules {
	if ignored {
		return dirRules{patterns: parent.patterns, ignored: true}
	}
	own := d.readOwnIgnore(p)
	if len(own) == 0 {
		return dirRules{patterns: parent.patterns}
	}
	// Full slice expression: siblings must not share appended patterns.
	return dirRules{patterns: append(parent.patterns[:len(parent.patterns):len(parent.patterns)], own...)}
}

// readOwnIgnore reads folder p's .gitignore through the Dir's root, so a
// symlink cannot lead it outside.
func (d *Dir) readOwnIgnore(p string) []ignorePattern {
	name := osPath(Join(p, ".gitignore"))
	info, err := d.root.Lstat(name)
	if err != nil || !info.Mode().IsRegular() || info.Size() > maxIgnoreFile {
		return nil
	}
	f, err := d.root.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIgnoreFile))
	if err != nil {
		return nil
	}
	return parseIgnore(data, d.workPath(p))
}

// workPath is p's path inside the work tree, as go-git's matcher takes it.
func (d *Dir) workPath(p string) []string {
	out := append([]string(nil), d.wt.prefix...)
	if p != "" {
		out = append(out, strings.Split(p, "/")...)
	}
	return out
}

// skip reports whether child p of a folder with rules r is left out, and
// whether it is ignored (a tracked ignored entry is kept).
func (d *Dir) skip(r dirRules, p string, isDir bool) (skip, ignored bool) {
	ignored = r.ignored || ignoredBy(r.patterns, d.workPath(p), isDir)
	return ignored && !d.wt.tracked[p], ignored
}

// Untracked returns the files below folder (Dir-relative, "" for all)
// that neither Git's index tracks nor an ignore rule excludes — files the
// IDs include but the last commit may lack. Only folders read so far are
// reported. ok is false when there is no index to ask (outside a work tree,
// or an index go-git cannot read).
func (d *Dir) Untracked(folder string) (paths []string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wt.tracked == nil {
		return nil, false
	}
	for _, p := range d.untracked {
		if Contains(folder, p) {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	return paths, true
}
