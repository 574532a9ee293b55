package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// runnerImageEnv overrides the default of --runner-image.
const runnerImageEnv = "EXPSYNC_RUNNER_IMAGE"

// renderOptions is `expsync render`: print the Jobs that kubernetes mode
// would create for repository folders, for review in a pull request and for
// `kubectl apply --dry-run=server -f -`.
type renderOptions struct {
	Output      string
	RunnerImage string
	Namespace   string
	Repository  string
	Commit      string
	Store       string
	StoreClaim  string
	Stdout      io.Writer
	Stderr      io.Writer
}

func defaultRunnerImage() string {
	if img := os.Getenv(runnerImageEnv); img != "" {
		return img
	}
	return "ghcr.io/expsync/expsync:" + version
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &renderOptions{}
		c := &cobra.Command{
			Use:   "render [PATH...]",
			Short: "Print the Kubernetes Jobs the experiments of repository folders (default .) would create",
			Long: "render plans each repository folder in kubernetes mode (digest-pinned images only) and prints, per run,\n" +
				"its batch/v1 Job (the run contract in the pod template): a YAML stream (-o yaml) or one v1 List (-o json),\n" +
				"ready for `kubectl apply --dry-run=server -f -`. Invalid experiment files are printed as\n" +
				"file:line:col: message (exit 1).",
			RunE: func(c *cobra.Command, args []string) error {
				o.Stdout, o.Stderr = c.OutOrStdout(), c.ErrOrStderr()
				return o.Exec(c.Context(), args)
			},
		}
		f := c.Flags()
		f.StringVarP(&o.Output, "output", "o", "yaml", "output format: yaml (a stream of documents) or json (a v1 List)")
		f.StringVar(&o.RunnerImage, "runner-image", defaultRunnerImage(), "image with the expsync binary for the init container (default from $"+runnerImageEnv+"); pin it by digest")
		f.StringVarP(&o.Namespace, "namespace", "n", "", "namespace of the objects (default: none, kubectl's current namespace)")
		f.StringVar(&o.Repository, "repository", "", "repository URL recorded in the expsync.dev/repository label and annotation")
		f.StringVar(&o.Commit, "commit", "", "commit recorded in the expsync.dev/commit annotation")
		f.StringVar(&o.Store, "store", "", "store URL written into every run contract (for example s3://bucket/prefix)")
		f.StringVar(&o.StoreClaim, "store-claim", "", "PersistentVolumeClaim holding the store, as the controller mounts it (inputs/ read-only, runs/<run ID>/ per pod)")
		return c
	})
}

// Exec plans and checks every folder first, so invalid files print
// nothing half-done; then it renders run by run straight to the output,
// never holding more than one run's objects.
func (o *renderOptions) Exec(ctx context.Context, paths []string) error {
	var w *render.ManifestWriter
	switch o.Output {
	case "yaml", "":
		w = render.NewYAMLWriter(o.Stdout)
	case "json":
		// Opened below, once every folder checked out.
	default:
		return &exitError{code: 2, err: fmt.Errorf("-o %q: use yaml or json", o.Output)}
	}
	if o.RunnerImage == "" {
		return &exitError{code: 2, err: errors.New("--runner-image is empty: name the image that holds the expsync binary")}
	}
	if !v1alpha1.IsDigestImage(o.RunnerImage) {
		// The runner verifies inputs and hashes outputs: a tag could hand
		// the pod a different runner than the one that was reviewed.
		fmt.Fprintf(o.Stderr, "warning: --runner-image %s is not pinned by digest; the runner behind a tag can change: pass IMAGE@sha256:...\n", o.RunnerImage)
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	opts := render.JobOptions{
		Namespace:   o.Namespace,
		RunnerImage: o.RunnerImage,
		Repository:  o.Repository,
		Commit:      o.Commit,
		StoreClaim:  o.StoreClaim,
	}
	var runs [][]render.Run
	failed := false
	for _, p := range paths {
		planned, ok, err := o.planFolder(p, opts)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		failed = failed || !ok
		runs = append(runs, planned)
	}
	if failed {
		return &exitError{code: 1, err: errors.New("")}
	}
	if w == nil {
		w = render.NewJSONListWriter(o.Stdout)
	}
	for _, r := range runs {
		if err := render.RenderJobsFunc(r, opts, w.Write); err != nil {
			return err
		}
	}
	return w.Close()
}

// planFolder plans one folder and checks that its experiments render as
// Jobs; ok is false when it printed problems.
func (o *renderOptions) planFolder(path string, opts render.JobOptions) ([]render.Run, bool, error) {
	dir, err := tree.NewDir(path)
	if err != nil {
		return nil, false, err
	}
	defer dir.Close()
	plan, err := render.Plan(dir, render.PlanOptions{Mode: v1alpha1.ModeKubernetes, StoreURL: o.Store})
	var list v1alpha1.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			e.Pos.File = displayFile(path, e.Pos.File)
			fmt.Fprintln(o.Stderr, e.Error())
		}
		fmt.Fprintf(o.Stderr, "%s: %d problem(s)\n", path, len(list))
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	if err := render.CheckJobs(plan.Runs, opts); err != nil {
		fmt.Fprintf(o.Stderr, "%s: %v\n", path, err)
		return nil, false, nil
	}
	fmt.Fprintf(o.Stderr, "%s: %d Job(s) from %d experiment(s)\n", path, len(plan.Runs), len(plan.Experiments))
	return plan.Runs, true, nil
}
