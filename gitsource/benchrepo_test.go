package gitsource

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/internal/platform"
)

// generateRepo writes a bare repository of `commits` commits whose head
// holds `files` files (100 per folder, ~300 bytes each), through
// `git fast-import`: one process, a few seconds, affordable in CI. Every
// commit after the first changes 5 files.
func generateRepo(tb testing.TB, bare string, commits, files int) {
	tb.Helper()
	generateRepoWith(tb, bare, commits, files, randomContent)
}

// randomContent is ~300 bytes of random hex: no two files share content,
// so the server's pack has almost no deltas.
func randomContent(rng *rand.Rand, i, version int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "file %d version %d\n", i, version)
	for b.Len() < 300 {
		fmt.Fprintf(&b, "%016x\n", rng.Uint64())
	}
	return b.Bytes()
}

// similarTemplate is the text every similarContent file shares.
var similarTemplate = func() []string {
	lines := make([]string, 60)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %d of a template that every file shares, like code in a repository", i)
	}
	return lines
}()

// similarContent is ~4.5 KiB that differs from every other file by one
// line, like source code: the server's pack stores nearly every blob as a
// delta, in chains up to 50 deep.
func similarContent(rng *rand.Rand, i, version int) []byte {
	lines := append([]string{}, similarTemplate...)
	lines[rng.IntN(len(lines))] = fmt.Sprintf("file %d version %d: %016x", i, version, rng.Uint64())
	return []byte(strings.Join(lines, "\n") + "\n")
}

// generateSimilarRepo is generateRepo with similarContent files.
func generateSimilarRepo(tb testing.TB, bare string, commits, files int) {
	tb.Helper()
	generateRepoWith(tb, bare, commits, files, similarContent)
}

func generateRepoWith(tb testing.TB, bare string, commits, files int, content func(rng *rand.Rand, i, version int) []byte) {
	tb.Helper()
	runGit(tb, filepath.Dir(bare), "init", "-q", "--bare", "-b", "main", filepath.Base(bare))
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = bare
	cmd.Env = gitEnv(os.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(stdin, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	path := func(i int) string { return fmt.Sprintf("dir%03d/file%04d.txt", i/100, i) }
	when := int64(1700000000)
	for c := 1; c <= commits; c++ {
		msg := fmt.Sprintf("commit %d", c)
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter Gen <gen@example.org> %d +0000\ndata %d\n%s\n", when+int64(c), len(msg), msg)
		n := 5
		if c == 1 {
			n = files
		}
		for k := 0; k < n; k++ {
			i := k
			if c > 1 {
				i = rng.IntN(files)
			}
			data := content(rng, i, c)
			fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n", path(i), len(data))
			w.Write(data)
			w.WriteString("\n")
		}
	}
	if err := w.Flush(); err != nil {
		cmd.Wait()
		tb.Fatalf("git fast-import: %v: %s", err, stderr.String())
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("git fast-import: %v: %s", err, stderr.String())
	}
	runGit(tb, bare, "repack", "-adq")
}

// gitDaemon serves root over git:// (smart protocol, pushes enabled) in a
// separate process, so the server's memory is not counted as ours.
//
// It runs git-daemon itself, not the `git daemon` wrapper: the wrapper forks
// git-daemon as a child, and killing the wrapper left that child serving
// forever. The daemon also gets its own process group — it forks a
// process per connection, killed with it — and dies with the test binary
// (Pdeathsig) when the binary is killed before its cleanups run (a -timeout
// panic, a signal).
func gitDaemon(tb testing.TB, root string) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(gitDaemonPath(tb), "--reuseaddr", "--export-all", "--enable=receive-pack",
		"--base-path="+root, "--listen=127.0.0.1", "--port="+strconv.Itoa(port), root)
	cmd.Env = gitEnv(os.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	platform.DieWithParent(cmd.SysProcAttr, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// The negative pid names the whole group: the daemon and the
		// processes serving connections.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "git://" + addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatal("git daemon did not start")
	return ""
}

// gitDaemonPath is git-daemon's path in git's exec-path.
func gitDaemonPath(tb testing.TB) string {
	tb.Helper()
	dir, err := gitErr("", nil, "--exec-path")
	if err != nil {
		tb.Fatalf("git --exec-path: %v", err)
	}
	return filepath.Join(dir, "git-daemon")
}
