package v1alpha1_test

import (
	"strings"
	"testing"

	"github.com/expsync/expsync/api/v1alpha1"
)

// TestResultsFolderAndOutputsFollowGitsPathRules (issue 9, item 3): the
// results folder of expsync.yaml and the outputs an experiment declares are
// committed to Git; a name Git refuses on some platform (".git." on
// Windows, ".g\u200cit" on macOS, "git~1", "aux") passed validation and broke
// every later checkout. They are refused at load time with file:line:col.
func TestResultsFolderAndOutputsFollowGitsPathRules(t *testing.T) {
	for _, c := range []struct {
		name, config, spec string
		want               []string
	}{{
		name: "results under a .git spelling", config: "results: out/.git.\n",
		want: []string{`expsync.yaml:1:10: results: ".git." is .git on Windows`},
	}, {
		name: "results as git~1", config: "results: GIT~1/runs\n",
		want: []string{`expsync.yaml:1:10: results: "GIT~1" is .git on Windows`},
	}, {
		name: "results with an ignorable code point", config: "results: \".g\u200cit\"\n",
		want: []string{`expsync.yaml:1:10: results: ".g\u200cit" is .git on macOS`},
	}, {
		name: "results named after a device", config: "results: data/aux\n",
		want: []string{`expsync.yaml:1:10: results: "aux" is a Windows device name`},
	}, {
		name: "results too long", config: "results: " + strings.Repeat("r", 300) + "\n",
		want: []string{`expsync.yaml:1:10: results: "` + strings.Repeat("r", 300) + `" has 300 bytes; file systems refuse names longer than 255 bytes; choose another folder`},
	}, {
		name: "an output under .git",
		spec: "  outputs: [out/.GIT/x, \"plots \", ok.txt, out/.gitattributes]\n",
		want: []string{
			`experiments/a.yaml:8:13: spec.outputs[0]: "out/.GIT/x": ".GIT" is Git's own folder; Git refuses .git inside a tree in any case; outputs are committed to Git, choose another name`,
			`experiments/a.yaml:8:25: spec.outputs[1]: "plots ": "plots " ends in a space or a period, which Windows drops (Git for Windows refuses it); outputs are committed to Git, choose another name`,
			`experiments/a.yaml:8:43: spec.outputs[3]: "out/.gitattributes": ".gitattributes" is read by Git as the folder's .gitattributes (it changes how files are checked out, and git fsck checks its content); outputs are committed to Git, choose another name`,
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"experiments/a.yaml": experiment("a", valid+c.spec)}
			if c.config != "" {
				files["expsync.yaml"] = c.config
			}
			got := loadErrors(t, files, v1alpha1.ModeLocal)
			if len(got) != len(c.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.want[i]) {
					t.Errorf("error %d:\n got %s\nwant %s…", i, got[i], c.want[i])
				}
			}
		})
	}
	// A folder Git accepts everywhere is fine.
	if got := loadErrors(t, map[string]string{"expsync.yaml": "results: lab-results/2026\n", "experiments/a.yaml": experiment("a", valid)}, v1alpha1.ModeLocal); len(got) != 0 {
		t.Errorf("errors %v", got)
	}
}
