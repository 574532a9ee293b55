package reproduce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/redact"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/store"
)

// Machine is what this machine offers a reproduction.
type Machine struct {
	// Store holds the context, inputs and outputs by digest.
	Store *store.Local
	// Objects are the repository's Git objects; nil when no repository was
	// given (the context cannot then be materialised).
	Objects *Objects
	// RepoName names the repository in messages.
	RepoName string
	// CPUs (default: the number of cores), MemoryBytes (default: available
	// memory) and GPUs (default 0) bound what a run may request.
	CPUs        float64
	MemoryBytes int64
	GPUs        int
	// Runner are the runner's options (secrets file, HTTP client, PATH...).
	Runner runner.Options
	// FreeBytes says how much space the file system of a folder has left
	// (default: statfs).
	FreeBytes func(dir string) (int64, error)
}

func statfsFree(dir string) (int64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, err
	}
	return int64(fs.Bavail) * int64(fs.Bsize), nil
}

// Problem is a reason a reproduction cannot work here, found before
// anything runs, and what to do about it.
type Problem struct {
	Check string `json:"check"`
	Why   string `json:"why"`
	Fix   string `json:"fix,omitempty"`
}

func (p Problem) String() string {
	if p.Fix == "" {
		return p.Check + ": " + p.Why
	}
	return p.Check + ": " + p.Why + " (" + p.Fix + ")"
}

// Prepare checks that contract c can be reproduced on this machine and
// puts what it reads into the store: the context tree (from the
// repository, by ID) and every input (from the store, the repository or
// its URL, each checked against its digest). It returns the problems found
// — none means the run can start — and where each input came from. Nothing
// of the run itself is started.
func Prepare(ctx context.Context, m *Material, c contract.Contract, mach Machine) ([]Problem, []attest.MaterialInput, error) {
	var problems []Problem
	add := func(check, fix, format string, args ...any) {
		problems = append(problems, Problem{Check: check, Why: fmt.Sprintf(format, args...), Fix: fix})
	}
	if c.Identity.Image != contract.HostImage {
		add("image", "reproduce it where it ran: in Kubernetes mode, on a cluster that can pull the image",
			"the run was attested for image %s; this machine runs local processes only (image host)", c.Image)
	}
	checkResources(c, mach, add)
	checkSecrets(c, mach, add)
	checkDisk(m, mach, add)
	if err := ctx.Err(); err != nil {
		return problems, nil, err
	}
	checkContext(ctx, c, mach, add)
	sources, err := prepareInputs(ctx, c, mach, add)
	return problems, sources, err
}

func checkResources(c contract.Contract, mach Machine, add func(check, fix, format string, args ...any)) {
	if c.Limits.GPU > mach.GPUs {
		add("gpu", "run it on a machine with the GPUs, and say how many with --gpus N",
			"the run requests %d GPU(s) and this machine offers %d", c.Limits.GPU, mach.GPUs)
	}
	cpus := mach.CPUs
	if cpus <= 0 {
		cpus = float64(runtime.NumCPU())
	}
	if q, err := resource.ParseQuantity(c.Limits.CPU); c.Limits.CPU != "" && err == nil && q.MilliValue() > int64(cpus*1000) {
		add("cpu", "run it on a larger machine", "the run requests %s CPUs and this machine has %g", c.Limits.CPU, cpus)
	}
	if q, err := resource.ParseQuantity(c.Limits.Memory); c.Limits.Memory != "" && err == nil && mach.MemoryBytes > 0 && q.Value() > mach.MemoryBytes {
		add("memory", "run it on a machine with more memory", "the run requests %s of memory and this machine has %s available",
			c.Limits.Memory, resource.NewQuantity(mach.MemoryBytes, resource.BinarySI))
	}
}

func checkSecrets(c contract.Contract, mach Machine, add func(check, fix, format string, args ...any)) {
	source := runner.EnvSecrets
	if mach.Runner.SecretsFile != "" {
		file, err := runner.FileSecrets(mach.Runner.SecretsFile)
		if err != nil {
			add("secrets", "fix the secrets file", "%v", err)
			return
		}
		source = chain(runner.EnvSecrets, file)
	}
	if mach.Runner.Secrets != nil {
		source = mach.Runner.Secrets
	}
	for _, e := range c.Env {
		if e.SecretRef == nil {
			continue
		}
		if _, ok, err := source(e.SecretRef.Name, e.SecretRef.Key); err != nil || !ok {
			add("secrets", fmt.Sprintf("set %s or give --secrets-file", runner.SecretEnvName(e.SecretRef.Name, e.SecretRef.Key)),
				"variable %s needs secret %s/%s, which this machine does not have", e.Name, e.SecretRef.Name, e.SecretRef.Key)
		}
	}
}

func chain(a, b runner.SecretSource) runner.SecretSource {
	return func(name, key string) (string, bool, error) {
		if v, ok, err := a(name, key); ok || err != nil {
			return v, ok, err
		}
		return b(name, key)
	}
}

// checkDisk refuses a reproduction whose attested outputs and log would not
// fit on the store's file system (they are written there first).
func checkDisk(m *Material, mach Machine, add func(check, fix, format string, args ...any)) {
	var need int64
	for _, o := range m.Record.Outputs {
		need += o.Size
	}
	need += m.Record.LogSize
	freeBytes := mach.FreeBytes
	if freeBytes == nil {
		freeBytes = statfsFree
	}
	free, err := freeBytes(mach.Store.Root())
	if err != nil {
		return
	}
	if need > free {
		add("disk", "free space there, or give --store on a larger file system",
			"the run's outputs and log were %s; %s has %s free", bytesText(need), mach.Store.Root(), bytesText(free))
	}
}

// checkContext exports the attested context tree into the store, by ID
// from the repository, after checking that the tree without the run's spec
// files is the one the identity names.
func checkContext(ctx context.Context, c contract.Contract, mach Machine, add func(check, fix, format string, args ...any)) {
	name := "context"
	if mach.Objects == nil {
		add(name, "give the repository with --repo (a clone or its URL)",
			"no repository to read the context tree %s from", c.Context.Tree)
		return
	}
	r, err := mach.Objects.Tree(c.Context.Tree)
	if errors.Is(err, ErrMissingObject) {
		add(name, "fetch the branch that ran it into the clone, or give the repository's URL with --repo",
			"tree %s (the run's context, %s) is not in the repository %s", c.Context.Tree, contextLabel(c.Context.Path), mach.RepoName)
		return
	}
	if err != nil {
		add(name, "", "%v", err)
		return
	}
	without, err := mach.Objects.TreeWithout(c.Context.Tree, c.Context.Excluded)
	switch {
	case err != nil:
		add(name, "", "%v", err)
		return
	case without != c.Identity.ContextTree:
		add(name, "", "tree %s without its spec files %v is %s, but the run identity names %s", c.Context.Tree, c.Context.Excluded, without, c.Identity.ContextTree)
		return
	}
	id, err := store.ExportTree(ctx, mach.Store, r, "")
	switch {
	case err != nil:
		add(name, "", "export tree %s to the store: %v", c.Context.Tree, err)
	case string(id) != c.Context.Tree:
		add(name, "", "tree %s read back as %s", c.Context.Tree, id)
	}
}

func contextLabel(p string) string {
	if p == "" {
		return "the repository root"
	}
	return p
}

// prepareInputs puts every input into the store: one already there (its
// bytes rehashed), a repository file from the repository by blob ID, a URL
// input fetched — each checked against the attested digest.
func prepareInputs(ctx context.Context, c contract.Contract, mach Machine, add func(check, fix, format string, args ...any)) ([]attest.MaterialInput, error) {
	var sources []attest.MaterialInput
	for _, in := range c.Inputs {
		if err := ctx.Err(); err != nil {
			return sources, err
		}
		check := fmt.Sprintf("input %q", in.Name)
		src := attest.MaterialInput{Name: in.Name, SHA256: in.SHA256, From: "store"}
		if mach.Store.Verify(ctx, in.SHA256) == nil {
			sources = append(sources, src)
			continue
		}
		switch {
		case in.RepoPath != "":
			src.From = "repository"
			if mach.Objects == nil {
				add(check, "give the repository with --repo", "repository file %s (blob %s) is not in the store and no repository was given", in.RepoPath, in.GitBlob)
				continue
			}
			data, err := mach.Objects.Blob(in.GitBlob, 0)
			if err != nil {
				add(check, "fetch the branch that ran it, or give the repository's URL with --repo", "repository file %s: %v", in.RepoPath, err)
				continue
			}
			if _, err := mach.Store.Put(ctx, bytes.NewReader(data), in.SHA256); err != nil {
				add(check, "", "repository file %s (blob %s) has sha256 %s, attested %s", in.RepoPath, in.GitBlob, contract.SHA256Hex(data), in.SHA256)
				continue
			}
		case in.URI != "":
			src.From = "url"
			opts := mach.Runner
			opts.Store = mach.Store
			_, err := runner.FetchInput(ctx, c, in, opts)
			var mm *runner.InputMismatchError
			switch {
			case errors.As(err, &mm):
				add(check, "put the original file in the store (a store that has it: --store), or the URL's old content back",
					"%s now serves bytes with sha256 %s, the run used %s", redact.URL(in.URI), mm.Got, mm.Want)
				continue
			case errors.Is(err, runner.ErrInputGone):
				add(check, "give --store a store that holds it (the machine that ran the run has it), or put the file back at its URL",
					"it is not in the store (sha256 %s) and %v", in.SHA256, err)
				continue
			case err != nil && ctx.Err() != nil:
				return sources, ctx.Err()
			case err != nil:
				add(check, "retry when the URL answers, or give --store a store that holds it", "%v", err)
				continue
			}
		default:
			add(check, "give --store a store that holds it", "sha256 %s is not in the store and the run names nowhere to fetch it from", in.SHA256)
			continue
		}
		sources = append(sources, src)
	}
	return sources, nil
}

// bytesText writes a size for people: "812 B", "1.5 GiB".
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, suffix := float64(n), "B"
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		if f < unit {
			break
		}
		f, suffix = f/unit, s
	}
	return fmt.Sprintf("%.1f %s", f, suffix)
}
