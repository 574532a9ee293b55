package chart

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/shlex"
	"helm.sh/helm/v3/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Every command of the user docs runs here, extracted from their Markdown
// (every fenced sh/bash/shell block of README.md and of the .md files below
// docs/, examples/ and charts/), so docs that drift fail:
//
//   - `helm install|upgrade|template NAME CHART [flags]` renders the chart
//     with exactly those flags (--namespace, -f/--values, --set,
//     --set-string; the chart is charts/expsync, whatever the command
//     names it: an OCI reference is its published copy), schema and
//     checks included;
//   - `kubectl apply [--server-side] -f PATH` creates PATH's objects on
//     envtest's API server, and `COMMAND | kubectl apply ... -f -` creates
//     what COMMAND prints;
//   - `make TARGET` must be run by .ci/run (checked here), or is run here;
//   - every other command (expsync, git, cosign, python3, ...) runs with
//     bash in the docs' scenario (docs_scenario_test.go: a remote run
//     once, its clone with results, keys), in the clone, or in this
//     checkout's root when it names a path of it (examples/, charts/,
//     config/, hack/). It must exit 0, or the code its comment documents
//     ("# exit 1 ...").
//
// A block that needs a real cluster (a controller running, kubectl wait,
// cosign writing a Secret) is marked with the line <!-- real-cluster -->
// right above it; hack/cluster's tier is where those run (they are logged
// here). kubectl and flux commands outside such blocks (other than
// kubectl apply) fail the test: mark them. Blocks without a language (a
// folder layout, a synopsis) are not commands.

// docCommand is one shell command of a Markdown file.
type docCommand struct {
	File        string
	Line        int
	Text        string
	RealCluster bool
	// CI: the block shows how CI itself is run (<!-- ci -->).
	CI bool
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
	inBlock, realCluster, ci, prev := false, false, false, ""
	var cur *docCommand
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case !inBlock && strings.HasPrefix(trimmed, "```"):
			lang := strings.TrimPrefix(trimmed, "```")
			if lang == "sh" || lang == "bash" || lang == "shell" {
				inBlock, realCluster, ci = true, prev == "<!-- real-cluster -->", prev == "<!-- ci -->"
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
				cur = &docCommand{File: file, Line: n, Text: strings.TrimSuffix(trimmed, "\\"), RealCluster: realCluster, CI: ci}
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

// userDocs lists the Markdown files a user reads.
func userDocs(t *testing.T) []string {
	t.Helper()
	docs := []string{filepath.Join(repoRoot, "README.md")}
	for _, dir := range []string{"docs", "examples", "charts"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(path, ".md") {
				docs = append(docs, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return docs
}

// Guides whose commands are their point: an extraction that finds none
// there is broken.
var guidesWithCommands = []string{"README.md", "docs/helm.md", "docs/flux.md", "docs/kueue.md", "docs/overview.md",
	"docs/reproducing-runs.md", "docs/reviewing-pull-requests.md", "docs/results-branches.md"}

var (
	documentedExit = regexp.MustCompile(`#\s*exit (\d+)`)
	// A command naming a path of this checkout runs in its root.
	checkoutPath = regexp.MustCompile(`(^|[\s=])(examples|charts|config|hack)/`)
)

func TestDocsCommands(t *testing.T) {
	built := t.TempDir()
	if err := buildScenario(built); err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile(filepath.Join(repoRoot, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	var a *applier
	applierFor := func(t *testing.T) *applier {
		if a == nil {
			a = newApplier(t)
		}
		return a
	}
	ran, marked := 0, 0
	for _, doc := range userDocs(t) {
		rel, _ := filepath.Rel(repoRoot, doc)
		cmds := extractCommands(t, doc)
		if len(cmds) == 0 && slices.Contains(guidesWithCommands, rel) {
			t.Errorf("%s has no commands: the extraction is broken or the guide lost its commands", rel)
		}
		if len(cmds) == 0 {
			continue
		}
		t.Run(rel, func(t *testing.T) {
			var s *scenario // one copy per file, made when a command needs it
			for _, c := range cmds {
				name := fmt.Sprintf("%s:%d", rel, c.Line)
				if c.RealCluster {
					t.Logf("%s needs a real cluster (hack/cluster's tier): %s", name, c.Text)
					marked++
					continue
				}
				args, err := shlex.Split(c.Text)
				if err != nil || len(args) < 2 {
					t.Errorf("%s: cannot parse %q: %v", name, c.Text, err)
					continue
				}
				if c.CI || strings.Contains(c.Text, ".ci/run") {
					if !c.CI && !isCIItself(args) {
						t.Errorf("%s: %q runs CI: mark its block <!-- ci --> (it is never run from a test)", name, c.Text)
						continue
					}
					t.Logf("%s is how CI itself runs: %s", name, c.Text)
					marked++
					continue
				}
				ran++
				left, pipedToApply := strings.CutSuffix(strings.TrimSpace(strings.Split(c.Text, "#")[0]), "| kubectl apply --server-side --dry-run=server -f -")
				if !pipedToApply {
					left, pipedToApply = strings.CutSuffix(strings.TrimSpace(strings.Split(c.Text, "#")[0]), "| kubectl apply --dry-run=server -f -")
				}
				switch {
				case args[0] == "make":
					t.Run(fmt.Sprint(c.Line), func(t *testing.T) { runMake(t, string(ci), args) })
				case args[0] == "helm":
					t.Run(fmt.Sprint(c.Line), func(t *testing.T) { runHelmCommand(t, args) })
				case args[0] == "kubectl" && args[1] == "apply" && !strings.Contains(c.Text, "|"):
					t.Run(fmt.Sprint(c.Line), func(t *testing.T) { runKubectlApply(t, applierFor(t), args) })
				case pipedToApply:
					if s == nil {
						s = copyScenario(t, built)
					}
					t.Run(fmt.Sprint(c.Line), func(t *testing.T) { runIntoAPIServer(t, s, applierFor(t), left) })
				case args[0] == "kubectl" || args[0] == "flux" || strings.Contains(c.Text, "| kubectl") ||
					strings.Contains(c.Text, "hack/cluster") || strings.Contains(c.Text, "EXPSYNC_E2E"):
					t.Errorf("%s: %q is run by no test: mark its block <!-- real-cluster --> or make it a command this test runs", name, c.Text)
				default:
					if s == nil {
						s = copyScenario(t, built)
					}
					t.Run(fmt.Sprint(c.Line), func(t *testing.T) { runShell(t, s, c.Text) })
				}
			}
		})
	}
	t.Logf("%d commands of the docs run, %d marked for the real-cluster tier", ran, marked)
}

// commandDir is where a documented command runs: this checkout's root when
// it names one of its paths, else the scenario's clone.
func (s *scenario) commandDir(text string) string {
	if checkoutPath.MatchString(text) {
		return repoRoot
	}
	return s.clone
}

// runShell runs a documented command with bash in the scenario; it must
// exit with the code its comment documents (0 when it documents none).
func runShell(t *testing.T, s *scenario, text string) {
	want := 0
	if m := documentedExit.FindStringSubmatch(text); m != nil {
		want, _ = strconv.Atoi(m[1])
	}
	if strings.Contains(text, "cosign ") {
		if _, err := exec.LookPath(filepath.Join(os.Getenv("HOME"), ".cache", "expsync", "tools", "cosign")); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("cosign is not built (hack/tools/build-cosign.sh ~/.cache/expsync/tools; .ci/run does): %v", err)
			}
			t.Skipf("cosign is not built: run hack/tools/build-cosign.sh ~/.cache/expsync/tools (CI fails instead of skipping)")
		}
	}
	cmd := s.substitute(text)
	// `export NAME=VALUE` holds for the file's later commands.
	name, isExport := "", false
	if rest, ok := strings.CutPrefix(cmd, "export "); ok {
		name, _, isExport = strings.Cut(rest, "=")
		cmd += fmt.Sprintf("\nprintf %%s \"$%s\"", name)
	}
	out, code, err := s.sh(s.commandDir(text), cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if code != want {
		t.Fatalf("documented: %s\nran: %s\nexit %d, the docs say %d:\n%s", text, cmd, code, want, tail(out, 3000))
	}
	if isExport {
		s.env = append(s.env, name+"="+out)
	}
	// The hand check of a context tree must give the identity's.
	if strings.Contains(text, "# = identity.contextTree") {
		want := s.runJSON()["identity"].(map[string]any)["contextTree"]
		if strings.TrimSpace(out) != want {
			t.Fatalf("%s printed %q; run.json's identity.contextTree is %q", cmd, strings.TrimSpace(out), want)
		}
	}
	t.Logf("%s\n%s", cmd, tail(out, 600))
}

// runIntoAPIServer runs the command left of `| kubectl apply ... -f -` and
// creates what it prints on envtest's API server.
func runIntoAPIServer(t *testing.T, s *scenario, a *applier, left string) {
	cmd := s.substitute(left)
	out, code, err := s.sh(s.commandDir(left), cmd+" 2>/dev/null")
	if err != nil || code != 0 {
		t.Fatalf("%s: exit %d %v\n%s", cmd, code, err, tail(out, 3000))
	}
	listed, err := decodeManifests(out)
	var objs []*unstructured.Unstructured
	for _, o := range listed {
		// kubectl applies a List's items.
		if o.IsList() {
			err = errors.Join(err, o.EachListItem(func(item runtime.Object) error {
				objs = append(objs, item.(*unstructured.Unstructured))
				return nil
			}))
			continue
		}
		objs = append(objs, o)
	}
	for _, o := range objs {
		// kubectl puts what names no namespace in its context's, "default".
		if o.GetNamespace() == "" && o.GetKind() != "Namespace" && o.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(o.GetKind(), "Cluster") {
			o.SetNamespace("default")
		}
	}
	if err != nil || len(objs) == 0 {
		t.Fatalf("%s printed %d objects: %v\n%s", cmd, len(objs), err, tail(out, 2000))
	}
	a.apply(t, objs)
}

// runMake accepts a make target that .ci/run runs; of the others, only
// the quickstart (the whole loop on a scratch remote, ~20 s) and
// chart-push (against a registry on loopback) run here.
func runMake(t *testing.T, ci string, args []string) {
	if ciRuns(ci, args) {
		t.Logf("%s is run by .ci/run", strings.Join(args, " "))
		return
	}
	if len(args) == 3 && args[1] == "chart-push" && strings.HasPrefix(args[2], "REGISTRY=oci://") {
		runChartPush(t, args)
		return
	}
	if strings.Join(args, " ") != "make quickstart" {
		t.Fatalf("%s is run neither by .ci/run nor here: add it to .ci/run or mark its block <!-- real-cluster -->", strings.Join(args, " "))
	}
	cmd := exec.Command("hack/quickstart.sh", t.TempDir())
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make quickstart (hack/quickstart.sh): %v\n%s", err, tail(string(out), 3000))
	}
	if !strings.Contains(string(out), "Done.") {
		t.Fatalf("make quickstart did not finish:\n%s", tail(string(out), 3000))
	}
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

// runChartPush runs `make chart-push REGISTRY=oci://HOST/PATH` against a
// registry on loopback standing in for HOST, and checks that it printed
// the digest the registry serves for the chart's tag.
func runChartPush(t *testing.T, args []string) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	u, err := url.Parse(strings.TrimPrefix(args[2], "REGISTRY="))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "chart-push", "REGISTRY=oci://"+host+u.Path, "PLAIN_HTTP=1")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, tail(string(out), 3000))
	}
	version := loadChart(t).Metadata.Version
	desc, err := remote.Get(mustTag(t, host+u.Path+"/expsync:"+version))
	if err != nil {
		t.Fatalf("the registry has no %s%s/expsync:%s after make chart-push: %v\n%s", host, u.Path, version, err, out)
	}
	if !strings.Contains(string(out), "digest "+desc.Digest.String()) {
		t.Errorf("make chart-push printed no line 'digest %s':\n%s", desc.Digest, out)
	}
}

func mustTag(t *testing.T, ref string) name.Tag {
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

var quoted = regexp.MustCompile(`"[^"]*"|'[^']*'`)

// ciRuns says whether a line of the script (not a comment, quoted text
// left out) runs `make TARGET` with the command's arguments.
func ciRuns(script string, args []string) bool {
	want := regexp.MustCompile(`(^|[\s;|&(])` + regexp.QuoteMeta(strings.Join(args, " ")) + `([\s;|&)]|$)`)
	for _, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		if want.MatchString(quoted.ReplaceAllString(line, "")) {
			return true
		}
	}
	return false
}

// isCIItself: the command is `[VAR=value ...] .ci/run`.
func isCIItself(args []string) bool {
	for _, a := range args {
		if strings.Contains(a, "=") && !strings.HasPrefix(a, "-") {
			continue
		}
		return a == ".ci/run"
	}
	return false
}
