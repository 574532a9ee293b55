package runner

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/store"
)

func TestRunSucceeds(t *testing.T) {
	f := newFixture(t)
	ctxTree := f.exportContext(map[string]string{
		"train.sh*":    "#!/bin/sh\nmkdir -p out/plots\ncat data/in.txt > out/copy.txt\necho \"$GREETING\" > out/plots/b.txt\necho z > out/plots/a.txt\necho '{\"loss\": 0.25, \"acc\": 1}' > metrics.json\nsleep 0.2\necho done\n",
		"data/in.txt":  "input data\n",
		"unused/x.txt": "x",
	})
	c := newContract("./train.sh").context(ctxTree).env("GREETING", "hi").
		outputs("out/copy.txt", "out/plots/").metrics("metrics.json").
		limits(func(l *contract.Limits) { l.CPU, l.Memory = "1", "64Mi" }).build()
	res := f.run(c)
	if res.Status != contract.Succeeded {
		t.Fatalf("status %s (%s); log:\n%s", res.Status, res.Error, res.LogTail)
	}
	want := []contract.File{
		{Path: "out/copy.txt", Mode: store.ModeFile, SHA256: shaOf("input data\n"), Size: 11},
		{Path: "out/plots/a.txt", Mode: store.ModeFile, SHA256: shaOf("z\n"), Size: 2},
		{Path: "out/plots/b.txt", Mode: store.ModeFile, SHA256: shaOf("hi\n"), Size: 3},
	}
	if diff := cmp.Diff(want, res.Outputs); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	for _, o := range want {
		if got := f.blob(o.SHA256); shaOf(got) != o.SHA256 {
			t.Errorf("output %s in the store hashes differently", o.Path)
		}
	}
	if diff := cmp.Diff(map[string]float64{"loss": 0.25, "acc": 1}, res.Metrics); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	if res.MetricsSHA256 != shaOf("{\"loss\": 0.25, \"acc\": 1}\n") {
		t.Errorf("metrics digest %s", res.MetricsSHA256)
	}
	if got := f.blob(res.LogSHA256); got != "done\n" {
		t.Errorf("stored log = %q, want %q", got, "done\n")
	}
	if res.LogTail != "done\n" || res.ExitCode != 0 || res.Attempts != 1 {
		t.Errorf("tail %q exit %d attempts %d", res.LogTail, res.ExitCode, res.Attempts)
	}
	// The script sleeps so its peak memory is sampled even on a loaded
	// machine: a run of a few ms can end before the sampler's first look
	// ("unmeasured", by design; see memory.go).
	if res.Usage.MaxRSSBytes <= 0 || res.Usage.WallSeconds <= 0 || res.Usage.SelfReported {
		t.Errorf("usage not measured: %+v", res.Usage)
	}
	if diff := cmp.Diff(contract.Requests{CPU: "1", Memory: "64Mi"}, res.Requests); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if !res.FinishedAt.After(res.StartedAt) {
		t.Errorf("timings %v .. %v", res.StartedAt, res.FinishedAt)
	}
	WaitCleanup()
	DropPool(f.opts.WorkRoot)
	if entries, _ := os.ReadDir(f.opts.WorkRoot); len(entries) != 0 {
		t.Errorf("attempt folders left behind: %v", entries)
	}
}

func TestRunMeasuresCPU(t *testing.T) {
	f := newFixture(t)
	// A grandchild's CPU counts too: sh waits for it.
	res := f.run(shell(`sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done'`).build())
	if res.Status != contract.Succeeded {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	if res.Usage.CPUSeconds < 0.05 {
		t.Errorf("CPUSeconds = %v for a busy loop, want > 0.05", res.Usage.CPUSeconds)
	}
}

func TestRunEnvironmentIsClean(t *testing.T) {
	f := newFixture(t)
	t.Setenv("EXPSYNC_TEST_LEAK", "leaked")
	res := f.run(shell(`env | sort > env.txt`).outputs("env.txt").env("DECLARED", "yes").build())
	if res.Status != contract.Succeeded {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	env := f.blob(res.Outputs[0].SHA256)
	if strings.Contains(env, "EXPSYNC_TEST_LEAK") {
		t.Errorf("the operator's environment leaked into the run:\n%s", env)
	}
	for _, want := range []string{"DECLARED=yes", "EXPSYNC_RUN_ID=", "EXPSYNC_ATTEMPT=1", "HOME=", "PATH="} {
		if !strings.Contains(env, want) {
			t.Errorf("environment lacks %s:\n%s", want, env)
		}
	}
}

func TestRunFailureIsAResult(t *testing.T) {
	f := newFixture(t)
	res := f.run(shell(`echo "bad things" >&2; exit 3`).outputs("never.txt").build())
	if diff := cmp.Diff(&contract.Result{Status: contract.Failed, ExitCode: 3, Attempts: 1, LogTail: "bad things\n", Error: "exit code 3"}, res,
		cmpopts.IgnoreFields(contract.Result{}, "RunID", "QueuedAt", "StartedAt", "FinishedAt", "LogSHA256", "LogSize", "Usage", "SchedulingDigest")); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if res.LogSHA256 == "" {
		t.Errorf("a failed run's log was not stored")
	}
}

func TestRunMissingOutputFails(t *testing.T) {
	f := newFixture(t)
	res := f.run(shell(`true`).outputs("result.json").build())
	if res.Status != contract.Failed || !strings.Contains(res.Error, "declared output result.json was not produced") {
		t.Errorf("status %s error %q; want Failed naming the output", res.Status, res.Error)
	}
}

func TestRunCommandNotFound(t *testing.T) {
	f := newFixture(t)
	// A command that cannot start is the experiment's failure:
	// recorded like a shell's 127/126, cacheable, not retried, with a short
	// error (the PATH searched is in the log).
	res := f.run(newContract("no-such-program-expsync").retries(3, 127).build())
	if res.Status != contract.Failed || res.ExitCode != 127 || res.Attempts != 1 || !res.Status.Cacheable() ||
		!strings.Contains(res.Error, `"no-such-program-expsync" not found`) || len(res.Error) > 120 {
		t.Errorf("status %s exit %d attempts %d error %q", res.Status, res.ExitCode, res.Attempts, res.Error)
	}
	if log := f.blob(res.LogSHA256); !strings.Contains(log, "PATH=") {
		t.Errorf("the log does not say which PATH was searched: %q", log)
	}
	tr := f.exportContext(map[string]string{"run.sh": "#!/bin/sh\necho hi\n"})
	res = f.run(newContract("./run.sh").context(tr).build())
	if res.Status != contract.Failed || res.ExitCode != 126 {
		t.Errorf("not executable: status %s exit %d error %q", res.Status, res.ExitCode, res.Error)
	}
}

func TestTimeoutKillsWholeProcessGroup(t *testing.T) {
	f := newFixture(t)
	// The grandchild ignores SIGTERM, so only the SIGKILL after the grace
	// period ends it.
	script := `sh -c 'trap "" TERM; echo $$ > "$PIDFILE"; while :; do sleep 1; done' & wait`
	// On a loaded machine the timeout can end the run before the grandchild
	// even wrote its PID (nothing to check then): try again with a longer
	// timeout until it did. Every check below holds for the attempt that
	// counts.
	for _, timeout := range []time.Duration{300 * time.Millisecond, 2 * time.Second, 10 * time.Second} {
		pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
		start := time.Now()
		res := f.run(shell(script).env("PIDFILE", pidFile).timeout(timeout).build())
		elapsed := time.Since(start)
		if res.Status != contract.TimedOut || !strings.Contains(res.Error, "timeout of "+timeout.String()) {
			t.Errorf("status %s error %q; want TimedOut", res.Status, res.Error)
		}
		// The run has ended: a grandchild that started wrote its PID by now.
		if _, err := os.Stat(pidFile); err != nil {
			t.Logf("the %v timeout ended the run before the grandchild wrote its PID; trying a longer one", timeout)
			continue
		}
		pid := readPID(t, pidFile)
		if !waitGone(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d survived the timeout", pid)
		}
		if elapsed > timeout+5*time.Second {
			t.Errorf("a timeout of %v took %v", timeout, elapsed)
		}
		return
	}
	t.Fatal("the grandchild never wrote its PID, even with a 10s timeout")
}

func TestLeftoverBackgroundProcessIsKilled(t *testing.T) {
	f := newFixture(t)
	pidFile := filepath.Join(t.TempDir(), "bg.pid")
	res := f.run(shell(`sleep 300 >/dev/null 2>&1 & echo $! > "$PIDFILE"; exit 0`).env("PIDFILE", pidFile).build())
	if res.Status != contract.Succeeded {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	if pid := readPID(t, pidFile); !waitGone(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("background process %d outlived its run", pid)
	}
}

func TestCancelEndsRun(t *testing.T) {
	f := newFixture(t)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		readPID(t, pidFile)
		cancel()
	}()
	res, err := Run(ctx, shell(`sleep 300 & echo $! > "$PIDFILE"; wait`).env("PIDFILE", pidFile).build(), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != contract.Cancelled || res.LogSHA256 == "" {
		t.Errorf("status %s log %q, want Cancelled with its log kept", res.Status, res.LogSHA256)
	}
	if pid := readPID(t, pidFile); !waitGone(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("process %d survived cancellation", pid)
	}
}

func TestTransientExitCodeRetriedThenSucceeds(t *testing.T) {
	f := newFixture(t)
	counter := filepath.Join(t.TempDir(), "attempts")
	script := `echo x >> "$COUNTER"; n=$(wc -l < "$COUNTER"); echo "attempt $n $EXPSYNC_ATTEMPT"; [ "$n" -ge 3 ] || exit 75`
	res := f.run(shell(script).env("COUNTER", counter).retries(3, 75).build())
	if res.Status != contract.Succeeded || res.Attempts != 3 || res.ExitCode != 0 {
		t.Errorf("status %s attempts %d exit %d; want Succeeded after 3 attempts", res.Status, res.Attempts, res.ExitCode)
	}
	if res.LogTail != "attempt 3 3\n" {
		t.Errorf("log tail %q, want the last attempt's log", res.LogTail)
	}
}

func TestTransientRetriesAreBounded(t *testing.T) {
	f := newFixture(t)
	res := f.run(shell(`exit 75`).retries(2, 75).build())
	if res.Status != contract.Failed || res.Attempts != 3 || res.ExitCode != 75 {
		t.Errorf("status %s attempts %d exit %d; want Failed after 3 attempts", res.Status, res.Attempts, res.ExitCode)
	}
}

func TestNonTransientExitNotRetried(t *testing.T) {
	f := newFixture(t)
	counter := filepath.Join(t.TempDir(), "attempts")
	res := f.run(shell(`echo x >> "$COUNTER"; exit 1`).env("COUNTER", counter).retries(5, 75).build())
	data, _ := os.ReadFile(counter)
	if res.Status != contract.Failed || res.Attempts != 1 || strings.Count(string(data), "x") != 1 {
		t.Errorf("status %s attempts %d, command ran %d times; want one attempt", res.Status, res.Attempts, strings.Count(string(data), "x"))
	}
}

func TestURLInputs(t *testing.T) {
	var hits atomic.Int32
	var fail atomic.Int32
	fail.Store(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/flaky" && fail.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("served bytes\n"))
	}))
	defer srv.Close()

	t.Run("fetched, verified, cached in the store", func(t *testing.T) {
		f := newFixture(t)
		in := contract.Input{Name: "data", Path: "inputs/x.csv", SHA256: shaOf("served bytes\n"), URI: srv.URL + "/x.csv?token=abc"}
		hits.Store(0)
		for range 2 {
			res := f.run(shell(`cat inputs/x.csv`).input(in).build())
			if res.Status != contract.Succeeded || res.LogTail != "served bytes\n" {
				t.Fatalf("status %s (%s) log %q", res.Status, res.Error, res.LogTail)
			}
		}
		if hits.Load() != 1 {
			t.Errorf("fetched %d times, want once (then from the store)", hits.Load())
		}
	})
	t.Run("transient fetch error retried", func(t *testing.T) {
		f := newFixture(t)
		in := contract.Input{Name: "data", Path: "x", SHA256: shaOf("served bytes\n"), URI: srv.URL + "/flaky"}
		res := f.run(shell(`cat x`).input(in).build())
		if res.Status != contract.Succeeded || res.Attempts != 2 {
			t.Errorf("status %s (%s) attempts %d; want success on the second attempt", res.Status, res.Error, res.Attempts)
		}
	})
	t.Run("404 is the run's result, not retried", func(t *testing.T) {
		// A URL the server says is not there fails the same way every
		// time: a Failed result (cached and committed, so the researcher
		// sees it), never an Errored one tried again at every reconcile.
		f := newFixture(t)
		in := contract.Input{Name: "data", Path: "x", SHA256: shaOf("served bytes\n"), URI: srv.URL + "/missing"}
		hits.Store(0)
		res := f.run(shell(`cat x`).input(in).retries(3, 1).build())
		if res.Status != contract.Failed || res.Attempts != 1 || !res.Status.Cacheable() ||
			!strings.Contains(res.Error, "404") || !strings.Contains(res.Error, `input "data"`) {
			t.Errorf("status %s attempts %d error %q; want Failed naming the input and the 404", res.Status, res.Attempts, res.Error)
		}
		if hits.Load() != 1 {
			t.Errorf("fetched %d times, want once", hits.Load())
		}
	})
	t.Run("too large", func(t *testing.T) {
		f := newFixture(t)
		f.opts.MaxInputBytes = 4
		in := contract.Input{Name: "data", Path: "x", SHA256: shaOf("served bytes\n"), URI: srv.URL + "/x"}
		res := f.run(shell(`cat x`).input(in).build())
		if res.Status != contract.Errored || !strings.Contains(res.Error, "input limit of 4 bytes") {
			t.Errorf("status %s error %q", res.Status, res.Error)
		}
	})
}

func TestInputWithWrongDigestNeverStarts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("tampered\n"))
	}))
	defer srv.Close()
	f := newFixture(t)
	marker := filepath.Join(t.TempDir(), "started")
	want := shaOf("original\n")
	in := contract.Input{Name: "dataset", Path: "d.csv", SHA256: want, URI: srv.URL + "/d.csv"}
	res := f.run(shell(`touch "$MARKER"`).env("MARKER", marker).input(in).retries(3, 1).build())
	if res.Status != contract.InputMismatch || res.Attempts != 1 {
		t.Errorf("status %s attempts %d; want InputMismatch without retries", res.Status, res.Attempts)
	}
	for _, part := range []string{`input "dataset"`, want, shaOf("tampered\n")} {
		if !strings.Contains(res.Error, part) {
			t.Errorf("error %q does not name %s", res.Error, part)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the command ran although an input mismatched")
	}
	if ok, _ := f.st.Has(context.Background(), shaOf("tampered\n")); ok {
		t.Errorf("mismatched bytes were kept in the store")
	}
}

func TestRepositoryInputFromStore(t *testing.T) {
	f := newFixture(t)
	obj, err := f.st.PutBytes(context.Background(), []byte("table\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := contract.Input{Name: "table", Path: "data/t.csv", SHA256: obj.SHA256, RepoPath: "data/t.csv"}
	res := f.run(shell(`cat data/t.csv`).input(in).build())
	if res.Status != contract.Succeeded || res.LogTail != "table\n" {
		t.Errorf("status %s (%s) log %q", res.Status, res.Error, res.LogTail)
	}
	missing := contract.Input{Name: "gone", Path: "g", SHA256: shaOf("absent"), RepoPath: "g"}
	res = f.run(shell(`true`).input(missing).build())
	if res.Status != contract.Errored || !strings.Contains(res.Error, `input "gone" (repository file g)`) {
		t.Errorf("status %s error %q", res.Status, res.Error)
	}
}

func TestContextMaterialisation(t *testing.T) {
	f := newFixture(t)
	files := map[string]string{"bin/tool*": "#!/bin/sh\necho tool ran\n", "data.txt": "d\n", "conf/x.yaml": "x: 1\n"}
	tr := f.exportContext(files)
	res := f.run(newContract("sh", "-c", `bin/tool; cat conf/x.yaml; [ -x bin/tool ] && [ ! -x data.txt ] && echo modes ok`).context(tr).build())
	if res.Status != contract.Succeeded || res.LogTail != "tool ran\nx: 1\nmodes ok\n" {
		t.Fatalf("status %s (%s), log %q", res.Status, res.Error, res.LogTail)
	}

	// Context files are hard links to read-only store objects. Root can
	// write through them anyway: the run fails, and the changed object
	// leaves the store instead of serving wrong bytes under its digest.
	res = f.run(newContract("sh", "-c", `chmod u+w data.txt; echo changed > data.txt`).context(tr).build())
	if res.Status != contract.Failed || !strings.Contains(res.Error, "the run wrote to data.txt in place") {
		t.Errorf("status %s error %q; want Failed naming data.txt", res.Status, res.Error)
	}
	if ok, _ := f.st.Has(context.Background(), shaOf("d\n")); ok && f.blob(shaOf("d\n")) != "d\n" {
		t.Fatalf("the store serves changed bytes under the old digest")
	}
	// A same-size write right after the link (timestamps may not move) is
	// caught too.
	f.exportContext(files)
	res = f.run(newContract("sh", "-c", `chmod u+w data.txt; printf 'X\n' > data.txt`).context(tr).build())
	if res.Status != contract.Failed || !strings.Contains(res.Error, "the run wrote to data.txt in place") {
		t.Errorf("same-size write: status %s error %q", res.Status, res.Error)
	}
	// Exporting the tree again restores the object; runs that replace a
	// file instead of writing through it are fine.
	f.exportContext(files)
	res = f.run(newContract("sh", "-c", `rm data.txt; echo new > data.txt; cat data.txt`).context(tr).build())
	if res.Status != contract.Succeeded || res.LogTail != "new\n" {
		t.Errorf("status %s (%s), log %q", res.Status, res.Error, res.LogTail)
	}
	if got := f.blob(shaOf("d\n")); got != "d\n" {
		t.Errorf("store object = %q after re-export", got)
	}
}

func TestSecretsNeverRecorded(t *testing.T) {
	const secret = "s3cr3t-value-91f2"
	check := func(t *testing.T, f *fixture, res *contract.Result) {
		t.Helper()
		data, _ := json.Marshal(res)
		if strings.Contains(string(data), secret) {
			t.Errorf("secret in the result: %s", data)
		}
		if res.LogSHA256 == "" {
			t.Fatalf("no log stored")
		}
		log := f.blob(res.LogSHA256)
		if strings.Contains(log, secret) {
			t.Errorf("secret in the stored log: %q", log)
		}
		if !strings.Contains(log, "token=[REDACTED]") {
			t.Errorf("log %q: the command did not see the secret", log)
		}
	}
	script := `echo "token=$API_TOKEN"; echo "token=$API_TOKEN" >&2; exit 2`
	t.Run("from the operator's environment", func(t *testing.T) {
		f := newFixture(t)
		f.opts.Secrets = nil
		t.Setenv("EXPSYNC_SECRET_LAB_TOKENS_API", secret)
		res := f.run(shell(script).secret("API_TOKEN", "lab-tokens", "api").build())
		if res.Status != contract.Failed {
			t.Fatalf("status %s: %s", res.Status, res.Error)
		}
		check(t, f, res)
	})
	t.Run("from a secrets file", func(t *testing.T) {
		f := newFixture(t)
		f.opts.Secrets = nil
		f.opts.SecretsFile = filepath.Join(t.TempDir(), "secrets.yaml")
		os.WriteFile(f.opts.SecretsFile, []byte("lab-tokens:\n  api: "+secret+"\n"), 0o600)
		res := f.run(shell(script).secret("API_TOKEN", "lab-tokens", "api").build())
		check(t, f, res)
	})
	t.Run("log truncated around the secret", func(t *testing.T) {
		f := newFixture(t)
		f.opts.Secrets = func(string, string) (string, bool, error) { return secret, true, nil }
		f.opts.MaxLogBytes = 20
		res := f.run(shell(`i=0; while [ $i -lt 500 ]; do echo "token=$API_TOKEN"; i=$((i+1)); done`).secret("API_TOKEN", "a", "b").build())
		check(t, f, res)
		if strings.Contains(res.LogTail, secret[:8]) {
			t.Errorf("a secret prefix is in the tail: %q", res.LogTail)
		}
	})
	t.Run("missing secret names where to set it", func(t *testing.T) {
		f := newFixture(t)
		f.opts.Secrets = nil
		res := f.run(shell(`true`).secret("API_TOKEN", "lab-tokens", "api").build())
		if res.Status != contract.Errored || !strings.Contains(res.Error, "EXPSYNC_SECRET_LAB_TOKENS_API") {
			t.Errorf("status %s error %q", res.Status, res.Error)
		}
	})
	t.Run("every value of the secrets file, declared or not", func(t *testing.T) {
		// The run can read the file (same user), as it can read the
		// operator's EXPSYNC_SECRET_* variables: all of them are redacted.
		f := newFixture(t)
		f.opts.Secrets = nil
		f.opts.SecretsFile = filepath.Join(t.TempDir(), "secrets.yaml")
		os.WriteFile(f.opts.SecretsFile, []byte("lab-tokens:\n  api: "+secret+"\n"), 0o600)
		res := f.run(shell(`sed -n 's/ *api: /token=/p' "$F"; exit 2`).env("F", f.opts.SecretsFile).build())
		check(t, f, res)
	})
	t.Run("bad secrets file does not echo its content", func(t *testing.T) {
		f := newFixture(t)
		f.opts.Secrets = nil
		f.opts.SecretsFile = filepath.Join(t.TempDir(), "secrets.yaml")
		os.WriteFile(f.opts.SecretsFile, []byte("- "+secret+"\n"), 0o600)
		res := f.run(shell(`true`).secret("API_TOKEN", "lab-tokens", "api").build())
		if res.Status != contract.Errored || strings.Contains(res.Error, secret) {
			t.Errorf("status %s error %q", res.Status, res.Error)
		}
	})
}

func TestOutputsHashedDeterministically(t *testing.T) {
	f := newFixture(t)
	// Same files, created in opposite orders and with different timestamps.
	a := f.run(shell(`mkdir -p o/s; echo 1 > o/s/z; echo 2 > o/a; echo 3 > o/m; echo r > r.txt`).outputs("r.txt", "o/").build())
	time.Sleep(10 * time.Millisecond)
	b := f.run(shell(`mkdir -p o/s; echo 3 > o/m; echo 2 > o/a; echo r > r.txt; echo 1 > o/s/z`).outputs("o/", "r.txt").build())
	if a.Status != contract.Succeeded || b.Status != contract.Succeeded {
		t.Fatalf("status %s %s", a.Status, b.Status)
	}
	if diff := cmp.Diff(a.Outputs, b.Outputs); diff != "" {
		t.Errorf("manifests differ (-a +b):\n%s", diff)
	}
	var paths []string
	for _, o := range a.Outputs {
		paths = append(paths, o.Path)
	}
	if diff := cmp.Diff([]string{"o/a", "o/m", "o/s/z", "r.txt"}, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}

func TestSymlinksNeverFollowedOutOfTheWorkFolder(t *testing.T) {
	f := newFixture(t)
	outside := filepath.Join(t.TempDir(), "private.txt")
	const private = "private content 7c1d\n"
	os.WriteFile(outside, []byte(private), 0o600)
	res := f.run(shell(`mkdir out; ln -s "$OUTSIDE" out/leak; ln -s "$(dirname "$OUTSIDE")" viadir`).
		env("OUTSIDE", outside).outputs("out/", "viadir/private.txt").build())
	if ok, _ := f.st.Has(context.Background(), shaOf(private)); ok {
		t.Errorf("the content behind a symlink leaked into the store")
	}
	want := []contract.File{{Path: "out/leak", Mode: store.ModeSymlink, SHA256: shaOf(outside), Size: int64(len(outside))}}
	if diff := cmp.Diff(want, res.Outputs); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if res.Status != contract.Failed || !strings.Contains(res.Error, "viadir is a symlink") {
		t.Errorf("status %s error %q; want a failure naming the symlinked folder", res.Status, res.Error)
	}
}

func TestOutputSizeLimit(t *testing.T) {
	f := newFixture(t)
	res := f.run(shell(`head -c 600 /dev/zero > a; head -c 600 /dev/zero > b`).outputs("a", "b").
		limits(func(l *contract.Limits) { l.MaxOutputBytes = 1000 }).build())
	if res.Status != contract.Failed || !strings.Contains(res.Error, "outputs exceed the limit") || !strings.Contains(res.Error, "b alone has 600 bytes") {
		t.Errorf("status %s error %q", res.Status, res.Error)
	}
}

func TestLogSizeLimit(t *testing.T) {
	f := newFixture(t)
	f.opts.MaxLogBytes = 1000
	res := f.run(shell(`i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; echo LAST`).build())
	if res.Status != contract.Succeeded || !res.LogTruncated {
		t.Fatalf("status %s truncated %v", res.Status, res.LogTruncated)
	}
	log := f.blob(res.LogSHA256)
	if !strings.HasPrefix(log, "line 0\n") || !strings.HasSuffix(log, "LAST\n") || !strings.Contains(log, "log truncated") {
		t.Errorf("truncated log lacks its head, marker or end (%d bytes)", len(log))
	}
	if len(log) > 1000+200+tailBytes {
		t.Errorf("stored log has %d bytes, limit 1000 + tail", len(log))
	}
	if !strings.HasSuffix(res.LogTail, "LAST\n") || len(res.LogTail) > tailBytes {
		t.Errorf("tail of %d bytes ends %q", len(res.LogTail), res.LogTail[max(0, len(res.LogTail)-20):])
	}
}

func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          map[string]float64
		wantErr       string
	}{
		{"flat numbers", `{"a": 1, "b": -2.5e-3}`, map[string]float64{"a": 1, "b": -0.0025}, ""},
		{"nested", `{"a": {"b": 1}}`, nil, `metric "a" is map[string]interface {}, want a number`},
		{"string", `{"a": "1"}`, nil, `metric "a" is string`},
		{"not json", `loss=1`, nil, "not a JSON object"},
		{"array", `[1]`, nil, "not a JSON object"},
		{"trailing", `{"a": 1} {}`, nil, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			res := f.run(shell(`printf '%s' "$M" > m.json`).env("M", tc.content).metrics("m.json").build())
			if res.Status != contract.Succeeded {
				t.Fatalf("invalid metrics changed the status to %s", res.Status)
			}
			if diff := cmp.Diff(tc.want, res.Metrics); diff != "" {
				t.Errorf("metrics (-want +got):\n%s", diff)
			}
			if tc.wantErr == "" && res.MetricsError != "" || !strings.Contains(res.MetricsError, tc.wantErr) {
				t.Errorf("metrics error %q, want %q", res.MetricsError, tc.wantErr)
			}
		})
	}
	f := newFixture(t)
	res := f.run(shell(`true`).metrics("out/m.json").build())
	// Named as declared, without the work folder's absolute path.
	if res.MetricsError != "metrics file out/m.json: not found" {
		t.Errorf("missing metrics file: error %q", res.MetricsError)
	}
}

func TestValidateRefusesEscapingPaths(t *testing.T) {
	for _, c := range []contract.Contract{
		newContract("true").outputs("../x").build(),
		newContract("true").outputs("/etc/passwd").build(),
		newContract("true").input(contract.Input{Name: "a", Path: "../a", SHA256: shaOf("a")}).build(),
		newContract("true").metrics("../m.json").build(),
		newContract().build(),
		func() contract.Contract { c := newContract("true").build(); c.Version = "v0"; return c }(),
	} {
		if _, err := Run(context.Background(), c, newFixture(t).opts); err == nil {
			t.Errorf("Run accepted an invalid contract: %+v", c)
		}
	}
}

func TestCleanupNeverLeavesTheWorkFolder(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	keep := filepath.Join(outside, "keep.txt")
	os.WriteFile(keep, []byte("keep"), 0o644)
	for _, script := range []string{
		`mkdir sub; ln -s "$OUTSIDE" sub/link; ln -s "$OUTSIDE" top`,
		// The run replaces its own work folder by a symlink to elsewhere.
		`d=$(pwd); cd ..; rm -rf "$d"; ln -s "$OUTSIDE" "$d"`,
		`mkdir ro; touch ro/f; chmod 0500 ro; chmod 0500 .`,
	} {
		res := f.run(shell(script).env("OUTSIDE", outside).build())
		if res.Status != contract.Succeeded {
			t.Fatalf("%s: status %s (%s)", script, res.Status, res.Error)
		}
		WaitCleanup()
		if _, err := os.Stat(keep); err != nil {
			t.Fatalf("after %q, cleanup deleted a file outside the work folder: %v", script, err)
		}
	}
	// Folders kept for reuse are empty.
	poolMu.Lock()
	pooled := append([]string(nil), pools[f.opts.WorkRoot]...)
	poolMu.Unlock()
	for _, d := range pooled {
		if entries, _ := os.ReadDir(d); len(entries) != 0 {
			t.Errorf("pooled folder %s not empty: %v", d, entries)
		}
	}
	DropPool(f.opts.WorkRoot)
	if entries, _ := os.ReadDir(f.opts.WorkRoot); len(entries) != 0 {
		t.Errorf("left in the work root: %v", entries)
	}
}

func TestRetryRecordsOnlyTheLastAttempt(t *testing.T) {
	f := newFixture(t)
	counter := filepath.Join(t.TempDir(), "n")
	// The first attempt writes an output and exits 75; the second times out
	// (2 s: the first must finish within it on a loaded machine too).
	script := `echo x >> "$C"; if [ "$(wc -l < "$C")" -eq 1 ]; then echo first > o.txt; echo '{"m":1}' > m.json; exit 75; fi; sleep 30`
	res := f.run(shell(script).env("C", counter).outputs("o.txt").metrics("m.json").retries(1, 75).timeout(2 * time.Second).build())
	if res.Status != contract.TimedOut || res.Attempts != 2 {
		t.Fatalf("status %s attempts %d", res.Status, res.Attempts)
	}
	if res.Outputs != nil || res.Metrics != nil || res.ExitCode != -1 {
		t.Errorf("the first attempt's outputs %v, metrics %v or exit code %d leaked into the result", res.Outputs, res.Metrics, res.ExitCode)
	}
}
