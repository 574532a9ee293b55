package chart

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/shlex"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// The commands of the deployment docs run here, extracted from their
// Markdown, so docs that drift from the chart fail:
//
//   - `helm install|upgrade|template NAME CHART [flags]` renders the chart
//     with exactly those flags (--namespace, -f/--values, --set,
//     --set-string; the chart is charts/expsync, whatever the command
//     names it: an OCI reference is its published copy), schema and
//     checks included;
//   - `kubectl apply [--server-side] -f PATH` creates PATH's objects on
//     envtest's API server;
//   - `expsync validate ...` runs this checkout's expsync in the
//     repository's root.
//
// A block that needs a real cluster (a controller running, kubectl wait,
// cosign writing a Secret) is marked with the line <!-- real-cluster -->
// right above it; hack/cluster's tier is where those run. Any other
// command in these files fails the test: make it runnable here or mark it.
var commandDocs = []string{"docs/helm.md", "docs/flux.md", "docs/kueue.md"}

// docCommand is one shell command of a Markdown file.
type docCommand struct {
	File        string
	Line        int
	Text        string
	RealCluster bool
}

// extractCommands reads the fenced sh/bash/shell blocks of a Markdown file,
// joining backslash-continued lines and dropping comments.
func extractCommands(t *testing.T, file string) []docCommand {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docCommand
	sc := bufio.NewScanner(f)
	inBlock, realCluster, prev := false, false, ""
	var cur *docCommand
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case !inBlock && strings.HasPrefix(trimmed, "```"):
			lang := strings.TrimPrefix(trimmed, "```")
			if lang == "sh" || lang == "bash" || lang == "shell" {
				inBlock, realCluster = true, prev == "<!-- real-cluster -->"
			} else if lang != "" {
				// Another language's block: skip to its end.
				for sc.Scan() {
					n++
					if strings.TrimSpace(sc.Text()) == "```" {
						break
					}
				}
			}
		case inBlock && trimmed == "```":
			inBlock = false
		case inBlock:
			if cur != nil {
				cur.Text += " " + strings.TrimSuffix(trimmed, "\\")
			} else if trimmed != "" && !strings.HasPrefix(trimmed, "#") {
				cur = &docCommand{File: file, Line: n, Text: strings.TrimSuffix(trimmed, "\\"), RealCluster: realCluster}
			}
			if cur != nil && !strings.HasSuffix(trimmed, "\\") {
				out = append(out, *cur)
				cur = nil
			}
		}
		if trimmed != "" {
			prev = trimmed
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDocsCommands(t *testing.T) {
	var a *applier
	ran := 0
	for _, doc := range commandDocs {
		cmds := extractCommands(t, filepath.Join(repoRoot, doc))
		if len(cmds) == 0 {
			t.Errorf("%s has no commands: the extraction is broken or the guide lost its commands", doc)
		}
		for _, c := range cmds {
			name := fmt.Sprintf("%s:%d", c.File[len(repoRoot)+1:], c.Line)
			if c.RealCluster {
				t.Logf("%s needs a real cluster (hack/cluster's tier): %s", name, c.Text)
				continue
			}
			args, err := shlex.Split(c.Text)
			if err != nil || len(args) < 2 {
				t.Errorf("%s: cannot parse %q: %v", name, c.Text, err)
				continue
			}
			ran++
			switch {
			case args[0] == "helm":
				t.Run(name, func(t *testing.T) { runHelmCommand(t, args) })
			case args[0] == "expsync" && args[1] == "validate":
				t.Run(name, func(t *testing.T) { runExpsync(t, args) })
			case args[0] == "kubectl" && args[1] == "apply":
				if a == nil {
					a = newApplier(t)
				}
				t.Run(name, func(t *testing.T) { runKubectlApply(t, a, args) })
			default:
				t.Errorf("%s: %q is run by no test: make it a command this test runs (helm, kubectl apply -f) or mark its block <!-- real-cluster -->", name, c.Text)
			}
		}
	}
	t.Logf("%d commands of %v run", ran, commandDocs)
}

// runHelmCommand renders the chart as the command would install it.
func runHelmCommand(t *testing.T, args []string) {
	if len(args) < 4 || (args[1] != "install" && args[1] != "upgrade" && args[1] != "template") {
		t.Fatalf("%v: only helm install|upgrade|template RELEASE CHART run here", args)
	}
	namespace := "default"
	values := map[string]any{}
	reuse := false
	for i := 4; i < len(args); i++ {
		flag, inline, hasInline := strings.Cut(args[i], "=")
		value := func() string {
			if hasInline {
				return inline
			}
			i++
			if i >= len(args) {
				t.Fatalf("%v: %s without a value", args, flag)
			}
			return args[i]
		}
		switch flag {
		case "-n", "--namespace":
			namespace = value()
		case "-f", "--values":
			data, err := os.ReadFile(filepath.Join(repoRoot, value()))
			if err != nil {
				t.Fatal(err)
			}
			var v map[string]any
			if err := yaml.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			values = mergeMaps(values, v)
		case "--set":
			if err := strvals.ParseInto(value(), values); err != nil {
				t.Fatalf("--set: %v", err)
			}
		case "--set-string":
			if err := strvals.ParseIntoString(value(), values); err != nil {
				t.Fatalf("--set-string: %v", err)
			}
		case "--reuse-values":
			reuse = true
		case "--create-namespace", "--wait", "--atomic":
		case "--version", "--timeout":
			value()
		default:
			t.Fatalf("%v: flag %s is not understood by this test: teach runHelmCommand, or mark the block <!-- real-cluster -->", args, flag)
		}
	}
	if reuse {
		// An upgrade on top of the install above: the documented default
		// install's values under the command's.
		values = mergeMaps(mergeYAML(t, baseValues(), `store: {create: {enabled: true}}`), values)
	}
	if _, err := render(t, namespace, values); err != nil {
		t.Fatalf("%s fails: %v", strings.Join(args, " "), err)
	}
}

// runKubectlApply creates the objects of the -f paths on envtest.
func runKubectlApply(t *testing.T, a *applier, args []string) {
	var paths []string
	for i := 2; i < len(args); i++ {
		switch args[i] {
		case "-f", "--filename":
			i++
			paths = append(paths, args[i])
		case "--server-side":
		default:
			t.Fatalf("%v: %s is not understood by this test", args, args[i])
		}
	}
	if len(paths) == 0 {
		t.Fatalf("%v: no -f", args)
	}
	for _, p := range paths {
		full := filepath.Join(repoRoot, p)
		files := []string{full}
		if st, err := os.Stat(full); err != nil {
			t.Fatal(err)
		} else if st.IsDir() {
			files, _ = filepath.Glob(filepath.Join(full, "*.yaml"))
		}
		for _, f := range files {
			for _, o := range decodeFile(t, f) {
				if o.GetKind() == "Namespace" {
					a.namespace(t, o.GetName())
				}
			}
			a.apply(t, decodeFile(t, f))
		}
	}
}

// runExpsync runs this checkout's expsync with the command's arguments in
// the repository's root; it must exit 0.
func runExpsync(t *testing.T, args []string) {
	bin, err := expsyncBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args[1:]...)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
