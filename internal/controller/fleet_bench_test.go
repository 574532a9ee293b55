package controller

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/internal/fleetbench"
)

// BenchmarkControllerFleet measures `expsync controller` (the real binary,
// a process of its own) reconciling a fleet of ExperimentRepositories on a
// real kube-apiserver (envtest) whose repositories are unchanged: 100,
// 1,000 and 10,000 by default (EXPSYNC_BENCH_FLEET=100,1000,10000), each
// repository a bare repository of its own (one experiment, its 2 runs done
// and committed back) behind git's own smart HTTP server on loopback, each
// object with a Git credentials Secret and an attestation key Secret, 10
// namespaces, interval 1 minute (EXPSYNC_BENCH_FLEET_INTERVAL).
//
// For each count it creates the objects, starts the controller and waits
// for the first pass (every object Ready at its repository's head), then
// measures EXPSYNC_BENCH_FLEET_CYCLES (2) intervals: CPU time per interval,
// resident memory (median; peak = VmHWM, first pass included), goroutines
// and Go heap (from the controller's /metrics), ref listings and fetches
// per repository (counted at the Git server), API requests by verb (the
// controller's rest_client_requests_total) and Jobs created (none may be).
//
// Peers, in the same run: `git ls-remote` by the git CLI (CPU of one
// listing, the least a poll can cost), and the floor of any
// controller-runtime controller of this many objects: a bare manager (this
// test binary re-executed) whose informer caches the same objects and whose
// Reconcile does nothing but requeue after the interval.
//
//	make envtest
//	EXPSYNC_BENCH_FLEET=1000,10000 KUBEBUILDER_ASSETS=$HOME/.cache/expsync/envtest/bin \
//	  go test -run '^$' -bench ControllerFleet -benchtime 1x -timeout 3h ./internal/controller
//
// EXPSYNC_BENCH_FLEET_PROFILE=DIR also saves the controller's heap profile
// at the end of each count (it serves Go's profiles when built with -tags
// pprof, as this benchmark builds it).
//
// EXPSYNC_BENCH_FLEET_BASELINE=<git revision> also builds the controller
// of that revision and measures it on the same fleet, right before this
// tree's, for each count: before/after side by side in one run (the
// machine's load varies; compare the two rows of a count, not runs).
//
// Each controller's whole stderr (its JSON log) is kept in
// EXPSYNC_BENCH_FLEET_LOGS (default $TMPDIR/expsync-fleet-bench), so an
// exit or an error line can be explained afterwards.
func BenchmarkControllerFleet(b *testing.B) {
	counts := fleetbench.Counts(b)
	interval := time.Minute
	if v, err := time.ParseDuration(os.Getenv("EXPSYNC_BENCH_FLEET_INTERVAL")); err == nil && v >= 10*time.Second {
		interval = v
	}
	cycles := fleetbench.Cycles()
	profiles := os.Getenv("EXPSYNC_BENCH_FLEET_PROFILE")

	cfg := apiServer(b)
	kubeconfig := fleetKubeconfig(b)
	c, err := client.New(cfg, client.Options{Scheme: NewScheme()})
	if err != nil {
		b.Fatal(err)
	}
	bin := buildExpsync(b)
	binaries := []fleetBinary{{label: "this tree", path: bin}}
	if rev := os.Getenv("EXPSYNC_BENCH_FLEET_BASELINE"); rev != "" {
		binaries = append([]fleetBinary{{label: "baseline " + rev, path: buildExpsyncAt(b, rev)}}, binaries...)
	}
	logs := os.Getenv("EXPSYNC_BENCH_FLEET_LOGS")
	if logs == "" {
		logs = filepath.Join(os.TempDir(), "expsync-fleet-bench")
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		b.Fatal(err)
	}
	template := fleetTemplate(b, c)
	root := b.TempDir()
	start := time.Now()
	fleetbench.CopyFleet(b, template.dir, root, counts[len(counts)-1])
	fmt.Printf("fleet: %d repositories made in %s\n", counts[len(counts)-1], time.Since(start).Round(time.Second))
	srv := fleetbench.NewFleetServer(b, root, 16)
	srv.ReplayListings = true
	fl := &fleet{b: b, c: c, srv: srv, key: template.key, pub: template.pub, run: fmt.Sprint(time.Now().Unix() % 100000)}
	fl.namespaces()

	var rows []fleetRow
	b.ResetTimer()
	for _, n := range counts {
		peer := srv.LsRemoteCPU(b, min(n, 100))
		floor := fleetRow{}
		for i, bin := range binaries {
			// Every controller meets the fleet as new: objects created
			// afresh (new UIDs, empty statuses).
			fl.create(n, interval)
			stderrFile := filepath.Join(logs, fmt.Sprintf("controller-%d-%s.log", n, strings.ReplaceAll(bin.label, " ", "-")))
			row := fl.measureController(bin.path, kubeconfig, n, interval, cycles, profiles, stderrFile)
			row.label, row.peerPerList = bin.label, peer
			if i == 0 {
				floor = fl.measureFloor(kubeconfig, n, interval)
			}
			row.floorRSS, row.floorCPU = floor.steadyRSS, floor.cpuPerCycle
			rows = append(rows, row)
			printFleetRow(row)
			fmt.Printf("fleet %d (%s): stderr in %s\n", n, bin.label, stderrFile)
			fl.deleteAll()
		}
	}
	b.StopTimer()
	printFleetTable(rows)
	for _, r := range rows {
		if r.steadyFetches != 0 {
			b.Errorf("%d repositories: %d fetches while nothing changed (want 0)", r.n, r.steadyFetches)
		}
		if r.listsPerRepoCycle < 0.9 || r.listsPerRepoCycle > 1.15 {
			b.Errorf("%d repositories: %.2f ref listings per repository per interval (want 1)", r.n, r.listsPerRepoCycle)
		}
		if r.jobs != 0 {
			b.Errorf("%d repositories: %d Jobs created for runs that are done", r.n, r.jobs)
		}
		if r.steadyWrites != 0 {
			b.Errorf("%d repositories: %d API writes while nothing changed (want 0)", r.n, r.steadyWrites)
		}
	}
}

// fleetBinary is an expsync binary the benchmark measures.
type fleetBinary struct{ label, path string }

// fleetRow is the controller reconciling n unchanged repositories.
type fleetRow struct {
	label             string // which binary
	n                 int
	interval          time.Duration
	firstPass         time.Duration
	firstPassPeak     int64 // VmHWM when the first pass ended (bytes)
	peak              int64 // VmHWM at the end
	steadyRSS         int64 // median VmRSS over the measured intervals
	heapInuse         int64
	goroutines        int
	cpuPerCycle       time.Duration
	listsPerRepoCycle float64
	firstFetches      int64
	steadyFetches     int64
	apiPerCycle       map[string]float64 // requests by verb per interval
	steadyWrites      int
	jobs              int
	errorLines        int
	peerPerList       time.Duration
	floorRSS          int64
	floorCPU          time.Duration
}

type fleet struct {
	b   *testing.B
	c   client.Client
	srv *fleetbench.FleetServer
	key map[string][]byte // the attestation Secret's data
	pub []byte
	run string // makes the object names of this run unique
}

const fleetNamespaces = 10

// fleetConcurrent is the controller's --concurrent in the benchmark (the
// default is 4): on a loaded 2-core machine each first reconcile waits
// seconds for the API server, and 4 at a time made the first pass of
// 10,000 objects last hours. More reconciles at once can only raise the
// peak memory measured.
const fleetConcurrent = 16

func (f *fleet) ns(i int) string { return fmt.Sprintf("fleet-%s-%d", f.run, i%fleetNamespaces) }

func (f *fleet) name(i int) string { return fmt.Sprintf("r%05d", i) }

// namespaces makes the fleet's namespaces, each with the Secrets every
// object names: Git credentials and the attestation key.
func (f *fleet) namespaces() {
	ctx := context.Background()
	for i := 0; i < fleetNamespaces; i++ {
		newNamespace(f.b, f.c, f.ns(i))
		for _, s := range []*corev1.Secret{
			{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns(i), Name: "git"},
				Data: map[string][]byte{"username": []byte(gitUser), "password": []byte(gitPassword)}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns(i), Name: "signing-key"}, Data: f.key},
		} {
			if err := f.c.Create(ctx, s); err != nil {
				f.b.Fatal(err)
			}
		}
	}
}

// create makes the objects of the first n repositories (before the
// controller starts: its first pass meets all of them at once).
func (f *fleet) create(n int, interval time.Duration) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				obj := &v1alpha1.ExperimentRepository{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns(i), Name: f.name(i)},
					Spec: v1alpha1.ExperimentRepositorySpec{
						URL: f.srv.URL(fleetbench.FleetRepoName(i)), AllowHTTP: true, SecretRef: &meta.LocalObjectReference{Name: "git"},
						Refs:        []v1alpha1.WatchedRef{{Pattern: "main", Trusted: true}},
						Interval:    &metav1.Duration{Duration: interval},
						Attestation: v1alpha1.Attestation{SecretRef: &meta.LocalObjectReference{Name: "signing-key"}},
						Store:       v1alpha1.Store{ClaimName: "store"},
					}}
				if err := f.c.Create(context.Background(), obj); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		f.b.Fatal(err)
	default:
	}
	fmt.Printf("fleet: %d ExperimentRepositories created in %s\n", n, time.Since(start).Round(time.Second))
}

// deleteAll removes every object of the fleet (the next count starts
// afresh: new UIDs, empty statuses).
func (f *fleet) deleteAll() {
	for i := 0; i < fleetNamespaces; i++ {
		if err := f.c.DeleteAllOf(context.Background(), &v1alpha1.ExperimentRepository{}, client.InNamespace(f.ns(i))); err != nil {
			f.b.Fatal(err)
		}
	}
	for {
		n := 0
		for i := 0; i < fleetNamespaces; i++ {
			var list v1alpha1.ExperimentRepositoryList
			if err := f.c.List(context.Background(), &list, client.InNamespace(f.ns(i))); err != nil {
				f.b.Fatal(err)
			}
			n += len(list.Items)
		}
		if n == 0 {
			return
		}
		time.Sleep(time.Second)
	}
}

// ready counts the objects Ready at a commit of their repository.
func (f *fleet) ready() (int, error) {
	n := 0
	for i := 0; i < fleetNamespaces; i++ {
		var list v1alpha1.ExperimentRepositoryList
		if err := f.c.List(context.Background(), &list, client.InNamespace(f.ns(i))); err != nil {
			return 0, err
		}
		for j := range list.Items {
			o := &list.Items[j]
			if conditions.IsReady(o) && o.Status.ObservedGeneration == o.Generation && len(o.Status.Refs) == 1 && o.Status.Refs[0].ObservedCommit != "" {
				n++
			}
		}
	}
	return n, nil
}

func (f *fleet) jobs() int {
	n := 0
	for i := 0; i < fleetNamespaces; i++ {
		var list batchv1.JobList
		if err := f.c.List(context.Background(), &list, client.InNamespace(f.ns(i))); err != nil {
			f.b.Fatal(err)
		}
		n += len(list.Items)
	}
	return n
}

// measureController runs `expsync controller` on the fleet's first n
// objects until its first pass is done, then measures cycles intervals.
func (f *fleet) measureController(bin, kubeconfig string, n int, interval time.Duration, cycles int, profiles, stderrFile string) fleetRow {
	b := f.b
	work := b.TempDir()
	storeRoot := filepath.Join(work, "stores")
	for i := 0; i < fleetNamespaces; i++ {
		if err := os.MkdirAll(filepath.Join(storeRoot, f.ns(i), "store"), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	metricsAddr, pprofAddr := freeAddr(b), freeAddr(b)
	cmd := exec.Command(bin, "controller", "--concurrent", strconv.Itoa(fleetConcurrent), "--metrics-addr", metricsAddr, "--health-addr", "0",
		"--state-dir", filepath.Join(work, "state"), "--store-root", storeRoot, "--runner-image", testRunnerImage)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "EXPSYNC_PPROF_ADDR="+pprofAddr)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	row := fleetRow{n: n, interval: interval}
	var mu sync.Mutex
	var errorLines []string
	exited := make(chan struct{})
	posts0 := f.srv.Posts()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	keep, err := os.Create(stderrFile)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		defer close(exited)
		defer keep.Close()
		sc := bufio.NewScanner(io.TeeReader(stderr, keep))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, `"level":"error"`) {
				mu.Lock()
				row.errorLines++
				if len(errorLines) < 5 {
					errorLines = append(errorLines, line)
				}
				mu.Unlock()
			}
		}
	}()
	pid := cmd.Process.Pid
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = cmd.Wait()
	}
	defer stop()
	sampler := fleetbench.NewRSSSampler(pid)
	defer sampler.Stop()
	deadline := time.Now().Add(max(15*time.Minute, time.Duration(n)*100*time.Millisecond))
	last := -1
	for {
		// Listing 10,000 objects with their status is work for the API
		// server the controller waits on: not more often than needed.
		time.Sleep(min(30*time.Second, 5*time.Second+time.Duration(n)*2*time.Millisecond))
		select {
		case <-exited:
			b.Fatalf("the controller exited during the first pass; errors: %s", strings.Join(errorLines, "\n"))
		default:
		}
		got, err := f.ready()
		if err != nil {
			b.Fatal(err)
		}
		if got != last {
			fmt.Printf("fleet %d: %d Ready after %s (%.0f MiB)\n", n, got, time.Since(start).Round(time.Second), fleetbench.MiB(fleetbench.StatusKiB(pid, "VmRSS")<<10))
			last = got
		}
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			b.Fatalf("first pass of %d repositories not done after %s (%d Ready); first errors:\n%s", n, time.Since(start), got, strings.Join(errorLines, "\n"))
		}
	}
	row.firstPass = time.Since(start)
	row.firstPassPeak = fleetbench.StatusKiB(pid, "VmHWM") << 10
	row.firstFetches = f.srv.Posts() - posts0

	// One interval to settle (the controller's own wake-ups after the
	// first pass), then the measured cycles.
	time.Sleep(interval)
	cpu0, gets0, posts1, api0 := fleetbench.CPU(pid), f.srv.Gets(), f.srv.Posts(), scrape(b, metricsAddr)
	t0 := time.Now()
	time.Sleep(time.Duration(cycles) * interval)
	cpu1, gets1, posts2, api1 := fleetbench.CPU(pid), f.srv.Gets(), f.srv.Posts(), scrape(b, metricsAddr)
	row.steadyRSS = sampler.MedianSince(t0)
	row.peak = fleetbench.StatusKiB(pid, "VmHWM") << 10
	row.cpuPerCycle = (cpu1 - cpu0) / time.Duration(cycles)
	row.steadyFetches = posts2 - posts1
	row.listsPerRepoCycle = float64((gets1-gets0)-(posts2-posts1)) / float64(n) / float64(cycles)
	row.apiPerCycle = map[string]float64{}
	for k, v := range api1 {
		if verb, ok := strings.CutPrefix(k, "requests "); ok {
			d := v - api0[k]
			row.apiPerCycle[verb] = d / float64(cycles)
			if verb != "GET" {
				row.steadyWrites += int(d)
			}
		}
	}
	row.heapInuse = int64(api1["go_memstats_heap_inuse_bytes"])
	row.goroutines = int(api1["go_goroutines"])
	row.jobs = f.jobs()
	if profiles != "" {
		saveProfile(b, pprofAddr, filepath.Join(profiles, fmt.Sprintf("controller-heap-%d.pprof", n)))
	}
	mu.Lock()
	if row.errorLines > 0 {
		fmt.Printf("fleet %d: %d error log lines, first ones:\n  %s\n", n, row.errorLines, strings.Join(errorLines, "\n  "))
	}
	mu.Unlock()
	return row
}

// scrape reads the controller's /metrics: API requests by verb (as
// "requests VERB"), go_goroutines and go_memstats_heap_inuse_bytes.
func scrape(b *testing.B, addr string) map[string]float64 {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name := line[:sp]
		switch {
		case strings.HasPrefix(name, "rest_client_requests_total{"):
			_, m, _ := strings.Cut(name, `method="`)
			m, _, _ = strings.Cut(m, `"`)
			out["requests "+m] += v
		case name == "go_goroutines", name == "go_memstats_heap_inuse_bytes":
			out[name] = v
		}
	}
	return out
}

func saveProfile(b *testing.B, addr, file string) {
	res, err := http.Get("http://" + addr + "/debug/pprof/heap")
	if err != nil {
		b.Logf("heap profile: %v", err)
		return
	}
	defer res.Body.Close()
	out, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	if _, err := bufio.NewReader(res.Body).WriteTo(out); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("heap profile: %s\n", file)
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// buildExpsyncAt builds the expsync binary of a git revision of this
// repository (git archive into a temporary folder), as buildExpsync does.
func buildExpsyncAt(b *testing.B, rev string) string {
	src := b.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", filepath.Join("..", ".."), rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		b.Fatalf("git archive %s: %v\n%s", rev, err, out)
	}
	bin := filepath.Join(b.TempDir(), "expsync-"+rev)
	cmd := exec.Command("go", "build", "-tags", "pprof", "-o", bin, "./cmd/expsync")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build expsync at %s: %v\n%s", rev, err, out)
	}
	return bin
}

// buildExpsync builds the expsync binary as `make build` does (static,
// cgo-free), with -tags pprof (profiles on EXPSYNC_PPROF_ADDR).
func buildExpsync(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "expsync")
	cmd := exec.Command("go", "build", "-tags", "pprof", "-o", bin, "../../cmd/expsync")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build expsync: %v\n%s", err, out)
	}
	return bin
}

// fleetKubeconfig writes a kubeconfig of an administrator of the test's
// API server, for the processes the benchmark starts.
func fleetKubeconfig(b *testing.B) string { return cluster.AdminKubeconfig(b, "fleet-bench") }

type fleetTemplateRepo struct {
	dir string
	key map[string][]byte
	pub []byte
}

// fleetTemplate is a packed bare repository with one experiment whose 2
// runs are done: this controller (in the test process, runs as host
// processes) executed them and committed the results back.
func fleetTemplate(b *testing.B, c client.Client) fleetTemplateRepo {
	f := newFixture(b, "fleet-template-"+fmt.Sprint(time.Now().UnixNano()%100000))
	f.lab.Commit("fleet experiment", squareSweep("1, 2"))
	f.create(time.Hour)
	p := startController(b, apiServer(b), f.state, f.execs)
	waitFor(b, f.c, f.key, "Ready with the results committed", 3*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 2 &&
			o.Status.Refs[0].LastResultsCommit != ""
	})
	p.stop()
	var key corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: f.key.Namespace, Name: "signing-key"}, &key); err != nil {
		b.Fatal(err)
	}
	if head := revision("refs/heads/main", f.lab.Head()); obj(b, c, f.key).Status.Refs[0].LastResultsCommit != head {
		b.Fatalf("the repository's head is not the results commit %s", head)
	}
	dir := filepath.Join(b.TempDir(), "template.git")
	f.lab.Git(filepath.Dir(dir), "clone", "-q", "--bare", "--no-local", filepath.Join(f.lab.Srv.Root(), "lab.git"), dir)
	f.lab.Git(dir, "repack", "-a", "-d", "-q")
	f.lab.Git(dir, "pack-refs", "--all")
	return fleetTemplateRepo{dir: dir, key: key.Data}
}

func printFleetRow(r fleetRow) {
	fmt.Printf("fleet %6d %s: first pass %6.1fs (peak %6.1f MiB, %d fetches), steady %6.1f MiB (floor %6.1f), heap %6.1f MiB, %d goroutines, %7.1f ms CPU per interval (floor %.1f), %.2f lists/repo/interval, %d fetches, API %v, %d Jobs, %d error lines\n",
		r.n, r.label, r.firstPass.Seconds(), fleetbench.MiB(r.firstPassPeak), r.firstFetches, fleetbench.MiB(r.steadyRSS), fleetbench.MiB(r.floorRSS),
		fleetbench.MiB(r.heapInuse), r.goroutines, float64(r.cpuPerCycle.Microseconds())/1000, float64(r.floorCPU.Microseconds())/1000,
		r.listsPerRepoCycle, r.steadyFetches, r.apiPerCycle, r.jobs, r.errorLines)
}

// printFleetTable prints every count, the growth per repository between
// counts, and the ratios to the peers.
func printFleetTable(rows []fleetRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Printf("\nexpsync controller --concurrent %d, unchanged ExperimentRepositories (envtest kube-apiserver, git http-backend on loopback), interval %s\n", fleetConcurrent, rows[0].interval)
	fmt.Printf("| controller | repos | first pass | peak MiB | steady MiB | KiB/repo | floor MiB (bare manager) | ratio to floor | goroutines | core (CPU/interval) | µs CPU/repo-poll | git ls-remote µs | ratio | API req/interval |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		perPoll := r.cpuPerCycle / time.Duration(r.n)
		fmt.Printf("| %s | %d | %.0f s | %.1f | %.1f | %.1f | %.1f | %.2f | %d | %.4f | %.0f | %.0f | %.2f | %v |\n", r.label, r.n, r.firstPass.Seconds(),
			fleetbench.MiB(r.peak), fleetbench.MiB(r.steadyRSS), float64(r.steadyRSS)/1024/float64(r.n), fleetbench.MiB(r.floorRSS),
			float64(r.steadyRSS)/float64(max(r.floorRSS, 1)), r.goroutines, r.cpuPerCycle.Seconds()/r.interval.Seconds(),
			float64(perPoll.Nanoseconds())/1000, float64(r.peerPerList.Nanoseconds())/1000, float64(perPoll)/float64(max(r.peerPerList, 1)), r.apiPerCycle)
	}
	for i := 1; i < len(rows); i++ {
		a, c := rows[i-1], rows[i]
		if a.n != c.n || a.label == c.label {
			continue
		}
		fmt.Printf("\n%d repos, %s / %s (same fleet, one run): steady RSS %.2f, peak %.2f, heap %.2f, CPU per interval %.2f, steady KiB/repo %.1f vs %.1f\n",
			c.n, c.label, a.label, float64(c.steadyRSS)/float64(max(a.steadyRSS, 1)), float64(c.peak)/float64(max(a.peak, 1)),
			float64(c.heapInuse)/float64(max(a.heapInuse, 1)), float64(c.cpuPerCycle)/float64(max(a.cpuPerCycle, 1)),
			float64(c.steadyRSS)/1024/float64(c.n), float64(a.steadyRSS)/1024/float64(a.n))
	}
	fmt.Printf("\ngrowth per added repository (slope between counts, same controller)\n")
	for i := 1; i < len(rows); i++ {
		c := rows[i]
		j := i - 1
		for j >= 0 && (rows[j].label != c.label || rows[j].n == c.n) {
			j--
		}
		if j < 0 {
			continue
		}
		a := rows[j]
		dn := float64(c.n - a.n)
		fmt.Printf("%s %6d→%-6d steady %+7.1f KiB/repo (floor %+7.1f), peak %+7.1f KiB/repo, goroutines %+.2f/repo, CPU %+7.1f µs/repo per interval\n", c.label, a.n, c.n,
			float64(c.steadyRSS-a.steadyRSS)/1024/dn, float64(c.floorRSS-a.floorRSS)/1024/dn, float64(c.peak-a.peak)/1024/dn,
			float64(c.goroutines-a.goroutines)/dn, float64((c.cpuPerCycle-a.cpuPerCycle).Nanoseconds())/1000/dn)
	}
}

func obj(b *testing.B, c client.Client, key client.ObjectKey) *v1alpha1.ExperimentRepository {
	o := &v1alpha1.ExperimentRepository{}
	if err := c.Get(context.Background(), key, o); err != nil {
		b.Fatal(err)
	}
	return o
}
