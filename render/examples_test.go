package render_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

const examplesDir = "../examples/experiments"

func planExamples(t *testing.T, dir string, mode v1alpha1.Mode) *render.PlanResult {
	t.Helper()
	r, err := tree.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := render.Plan(r, render.PlanOptions{Mode: mode})
	if err != nil {
		t.Fatalf("plan %s in %s mode:\n%v", dir, mode, err)
	}
	return res
}

// TestExamplesPlan plans the example repository users copy, in both modes,
// and checks what each experiment promises in its README.
func TestExamplesPlan(t *testing.T) {
	corpus, err := os.ReadFile(filepath.Join(examplesDir, "data", "corpus.txt"))
	if err != nil {
		t.Fatal(err)
	}
	corpusSum := sha256.Sum256(corpus)

	for _, mode := range []v1alpha1.Mode{v1alpha1.ModeLocal, v1alpha1.ModeKubernetes} {
		t.Run(string(mode), func(t *testing.T) {
			res := planExamples(t, examplesDir, mode)
			counts := map[string]int{}
			points := map[string][]string{}
			for _, run := range res.Runs {
				counts[run.Experiment]++
				if run.Experiment == "descent-sweep" {
					points[run.Experiment] = append(points[run.Experiment], strings.Join(run.Contract.Command[2:], " "))
				}
				image := run.Contract.Identity.Image
				switch {
				case mode == v1alpha1.ModeLocal && image != contract.HostImage:
					t.Errorf("%s: local run identity image %q, want host", run.Experiment, image)
				case mode == v1alpha1.ModeKubernetes && !strings.Contains(run.Contract.Image, "@"+image):
					t.Errorf("%s: kubernetes run image %q, identity %q: not its digest", run.Experiment, run.Contract.Image, image)
				case mode == v1alpha1.ModeKubernetes && !strings.HasPrefix(image, "sha256:"):
					t.Errorf("%s: kubernetes run identity image %q is not a digest", run.Experiment, image)
				}
				if len(run.Contract.Outputs) == 0 || run.Contract.Metrics == "" {
					t.Errorf("%s declares no outputs or metrics", run.Experiment)
				}
			}
			want := map[string]int{"pi-montecarlo": 3, "descent-sweep": 12, "word-frequencies": 2}
			if diff := cmp.Diff(want, counts); diff != "" {
				t.Errorf("runs per experiment (-want +got):\n%s", diff)
			}
			if len(res.Runs) != 17 {
				t.Errorf("%d runs, want 17", len(res.Runs))
			}
			// The 4 x 3 matrix minus {lr 0.09, momentum 0} plus the include.
			got := points["descent-sweep"]
			sort.Strings(got)
			if len(got) != 12 || contains(got, "0.09 0 300") || !contains(got, "0.02 0.8 600") {
				t.Errorf("descent-sweep points %q: want 12 with the exclude gone and the include (steps 600) added", got)
			}
			for _, run := range res.Runs {
				if run.Experiment != "word-frequencies" {
					continue
				}
				if len(run.Contract.Inputs) != 1 || run.Contract.Inputs[0].SHA256 != hex.EncodeToString(corpusSum[:]) || run.Contract.Inputs[0].Path != "inputs/corpus.txt" {
					t.Errorf("word-frequencies inputs %+v, want data/corpus.txt by its sha256 at inputs/corpus.txt", run.Contract.Inputs)
				}
			}
			for _, run := range res.Runs {
				if run.Experiment == "pi-montecarlo" && (len(run.Templates) != 1 || run.Templates[0].Path != "templates/python.yaml") {
					t.Errorf("pi-montecarlo templates %+v, want templates/python.yaml", run.Templates)
				}
			}
		})
	}
}

// TestExamplesRefuseAnEditedInput: editing the declared input without its
// sha256 is an error at the sha256 line, as the examples' README says.
func TestExamplesRefuseAnEditedInput(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(examplesDir)); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data", "corpus.txt"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("One more line.\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err := tree.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = render.Plan(r, render.PlanOptions{Mode: v1alpha1.ModeLocal})
	var list v1alpha1.ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("Plan: %v, want one error", err)
	}
	if p := list[0].Pos; p.File != "experiments/wordfreq/wordfreq.yaml" || p.Line != 20 || !strings.Contains(list[0].Message, "sha256") {
		t.Errorf("error %q, want one at experiments/wordfreq/wordfreq.yaml:20 about the sha256", list[0])
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
