package tree_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pythonIgnore is the shape of a real project's .gitignore (GitHub's Python
// template, abridged): many patterns, each tried against every entry.
const pythonIgnore = `__pycache__/
*.py[cod]
*$py.class
*.so
.Python
build/
develop-eggs/
dist/
downloads/
eggs/
.eggs/
lib64/
parts/
sdist/
var/
wheels/
*.egg-info/
.installed.cfg
*.egg
MANIFEST
*.manifest
*.spec
pip-log.txt
htmlcov/
.tox/
.nox/
.coverage
.coverage.*
.cache
nosetests.xml
coverage.xml
*.cover
.hypothesis/
.pytest_cache/
*.log
instance/
.webassets-cache
.scrapy
docs/_build/
target/
.ipynb_checkpoints
.venv
venv/
ENV/
.mypy_cache/
!keep.log
`

// BenchmarkDirTreeIDGitIgnored hashes a work tree of 2,000 kept files in 40
// folders (8 MiB) with a 45-pattern .gitignore, a nested .gitignore per
// folder, 1,000 ignored files in __pycache__ folders and a 5,000-file .venv,
// against `git add -A && git write-tree` into a fresh index of the same work
// tree (x-git < 1: faster than git; git also writes objects).
func BenchmarkDirTreeIDGitIgnored(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("the git CLI is the peer of this benchmark and is not installed")
	}
	dir := benchFolder(b)
	small := []byte("ignored\n")
	write := func(p string, data []byte) {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write(".gitignore", []byte(pythonIgnore))
	for i := 0; i < 40; i++ {
		write(fmt.Sprintf("d%02d/.gitignore", i), []byte("*.tmp\nout/\n"))
	}
	for i := 0; i < 1000; i++ {
		write(fmt.Sprintf("d%02d/__pycache__/m%04d.cpython-312.pyc", i%20, i), small)
	}
	for i := 0; i < 5000; i++ {
		write(fmt.Sprintf(".venv/lib/p%02d/f%04d.py", i%50, i), small)
	}
	env := append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=B", "GIT_AUTHOR_EMAIL=b@example.org", "GIT_COMMITTER_NAME=B", "GIT_COMMITTER_EMAIL=b@example.org")
	git := func(extraEnv []string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(env, extraEnv...)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	git(nil, "init", "-q")
	git(nil, "add", "-A")
	git(nil, "commit", "-qm", "bench")
	want := git(nil, "rev-parse", "HEAD^{tree}")
	freshIndex := filepath.Join(b.TempDir(), "index")
	gitOnce := func() time.Duration {
		os.Remove(freshIndex)
		start := time.Now()
		git([]string{"GIT_INDEX_FILE=" + freshIndex}, "add", "-A")
		if got := git([]string{"GIT_INDEX_FILE=" + freshIndex}, "write-tree"); got != want {
			b.Fatalf("git write-tree %s, commit %s", got, want)
		}
		return time.Since(start)
	}
	benchDirAgainstGit(b, dir, want, gitOnce)
}
