package results

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// recordBuilder makes run records for tests; each With* returns the builder.
type recordBuilder struct{ r Record }

func aRun(exp string, params map[string]any) *recordBuilder {
	id := contract.Identity{IDVersion: contract.IDVersion, Experiment: exp, Image: contract.HostImage,
		Command: []string{"sh", "run.sh"}, Params: params, ContextTree: "4b825dc642cb6eb9a060e54bf8d69288fbee4904"}
	runID, err := id.ID()
	if err != nil {
		panic(err)
	}
	start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	return &recordBuilder{Record{
		RunID: runID, IDVersion: contract.IDVersion, Experiment: exp, SpecPath: "experiments/" + exp + ".yaml",
		Repository: "https://git.example/lab/exps.git", Ref: "refs/heads/main", Commit: strings.Repeat("a", 40),
		ContextTree: id.ContextTree, SpecBlob: strings.Repeat("b", 40), Params: params, Image: contract.HostImage,
		Status: contract.Succeeded, StartedAt: start, FinishedAt: start.Add(1500 * time.Millisecond), Attempts: 1,
		Usage:    contract.Usage{CPUSeconds: 1.234, MaxRSSBytes: 50 << 20},
		Requests: contract.Requests{CPU: "1", Memory: "512Mi"}, Executor: "local", Identity: id,
	}}
}

func (b *recordBuilder) failed(code int) *recordBuilder {
	b.r.Status, b.r.ExitCode, b.r.Reason = contract.Failed, code, fmt.Sprintf("exit code %d", code)
	return b
}

func (b *recordBuilder) record() *Record { r := b.r; return &r }

func (b *recordBuilder) run(metrics map[string]float64) Run {
	return Run{Record: b.record(), Metrics: metrics}
}

// sweepRuns is a 3x2 sweep of samples x seed with an error metric that
// falls with samples, plus one failed run.
func sweepRuns() []Run {
	var runs []Run
	for _, samples := range []int{1000, 10000, 100000} {
		for _, seed := range []int{1, 2} {
			err := 1.0 / float64(samples) * 50 * float64(seed)
			runs = append(runs, aRun("pi", map[string]any{"samples": samples, "seed": seed}).
				run(map[string]float64{"abs_error": err, "estimate": 3.14159 + err}))
		}
	}
	runs = append(runs, aRun("pi", map[string]any{"samples": 1000000, "seed": 1}).failed(137).run(nil))
	return runs
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read golden %s (run with -update to create it): %v", file, err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from golden (-want +got):\n%s", file, diff)
	}
}

func TestRenderExperimentGolden(t *testing.T) {
	runs := sweepRuns()
	page := RenderExperiment("pi", runs, nil)
	golden(t, "sweep-README.md", page.Readme)
	if len(page.Plots) == 0 {
		t.Fatal("a sweep with a numeric metric got no plot")
	}
	golden(t, "sweep-plot.svg", firstPlot(t, page))

	// The order runs are given in does not change a byte.
	reversed := make([]Run, len(runs))
	for i, r := range runs {
		reversed[len(runs)-1-i] = r
	}
	again := RenderExperiment("pi", reversed, nil)
	if diff := cmp.Diff(string(page.Readme), string(again.Readme)); diff != "" {
		t.Errorf("README depends on input order:\n%s", diff)
	}
	if diff := cmp.Diff(string(firstPlot(t, page)), string(firstPlot(t, again))); diff != "" {
		t.Errorf("plot depends on input order:\n%s", diff)
	}
}

func TestRenderExperimentSingleRunHasNoPlot(t *testing.T) {
	page := RenderExperiment("one", []Run{aRun("one", map[string]any{"n": 3}).run(map[string]float64{"x": 1})}, nil)
	if len(page.Plots) != 0 {
		t.Errorf("a single run got a plot")
	}
	golden(t, "single-README.md", page.Readme)
}

func TestDefaultPlot(t *testing.T) {
	runs := sweepRuns()
	for _, tc := range []struct {
		name         string
		choice       PlotChoice
		wantX, wantY string
	}{
		{"default picks first varying numeric param and first metric", PlotChoice{}, "samples", "abs_error"},
		{"chosen", PlotChoice{X: "seed", Y: "estimate"}, "seed", "estimate"},
		{"unknown choice falls back", PlotChoice{X: "nope", Y: "nope"}, "samples", "abs_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, y, ok := DefaultPlot(runs, tc.choice)
			if !ok || x != tc.wantX || y != tc.wantY {
				t.Errorf("DefaultPlot = %q, %q, %v; want %q, %q", x, y, ok, tc.wantX, tc.wantY)
			}
		})
	}
	if _, _, ok := DefaultPlot([]Run{aRun("s", map[string]any{"name": "a"}).run(map[string]float64{"m": 1}),
		aRun("s", map[string]any{"name": "b"}).run(map[string]float64{"m": 2})}, PlotChoice{}); ok {
		t.Errorf("string-only params gave a plot")
	}
}

func TestSanitizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:s3cret@git.example/lab/x.git":    "https://git.example/lab/x.git",
		"https://ghp_TOKEN@git.example/lab/x.git":      "https://git.example/lab/x.git",
		"https://git.example/lab/x.git?token=abc#frag": "https://git.example/lab/x.git",
		"ssh://git:pw@git.example/lab/x.git":           "ssh://git@git.example/lab/x.git",
		"git@git.example:lab/x.git":                    "git@git.example:lab/x.git",
		"/srv/git/x.git":                               "/srv/git/x.git",
		"":                                             "",
	} {
		if got := SanitizeURL(in); got != want {
			t.Errorf("SanitizeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuildFolder(t *testing.T) {
	rec := aRun("pi", map[string]any{"seed": 1}).record()
	rec.Repository = "https://tok@git.example/x.git"
	small := []byte(`{"estimate": 3.14}`)
	big := []byte(strings.Repeat("x", 2048))
	outputs := []OutputFile{
		{Path: "out/big.bin", SHA256: contract.SHA256Hex(big), Size: int64(len(big)), Open: func() ([]byte, error) { return big, nil }},
		{Path: "out/estimate.json", SHA256: contract.SHA256Hex(small), Size: int64(len(small)), Open: func() ([]byte, error) { return small, nil }},
	}
	limits := Limits{MaxOutputFileBytes: 1024, MaxRunOutputBytes: 4096, MaxLogBytes: 10}
	logData := []byte("a long log line\n")
	log := &OutputFile{SHA256: contract.SHA256Hex(logData), Size: int64(len(logData)), Open: func() ([]byte, error) { return logData, nil }}
	f, err := BuildFolder(Layout{}, rec, []byte(`{"b":2,"a":1.50}`), log, outputs, limits)
	if err != nil {
		t.Fatal(err)
	}
	f.SetEnvelope([]byte(`{"payload":"x"}`))
	dir := "results/pi/" + rec.RunID
	var names []string
	for p := range f.Files() {
		names = append(names, strings.TrimPrefix(p, dir+"/"))
	}
	wantNames := []string{"metrics.json", "outputs/out/estimate.json", "provenance.intoto.jsonl", "run.json"}
	if diff := cmp.Diff(wantNames, sortedKeys(toSet(names))); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("{\n  \"a\": 1.50,\n  \"b\": 2\n}\n", string(f.File(MetricsFile))); diff != "" {
		t.Errorf("metrics.json (-want +got):\n%s", diff)
	}
	back, err := ParseRecord(f.File(RunFile))
	if err != nil {
		t.Fatal(err)
	}
	wantOutputs := []Output{
		{Path: "out/big.bin", SHA256: contract.SHA256Hex(big), Size: 2048, Committed: false},
		{Path: "out/estimate.json", SHA256: contract.SHA256Hex(small), Size: int64(len(small)), Committed: true},
	}
	if diff := cmp.Diff(wantOutputs, back.Outputs); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if back.Repository != "https://git.example/x.git" {
		t.Errorf("credentials leaked into run.json: %q", back.Repository)
	}
	if back.LogCommitted || back.LogSHA256 != contract.SHA256Hex([]byte("a long log line\n")) {
		t.Errorf("log over the limit: committed=%v sha=%s", back.LogCommitted, back.LogSHA256)
	}
	wantSubjects := []string{"log.txt", "metrics.json", "outputs/out/big.bin", "outputs/out/estimate.json", "run.json"}
	var gotSubjects []string
	for _, s := range f.Subjects() {
		gotSubjects = append(gotSubjects, s.Name)
	}
	if diff := cmp.Diff(wantSubjects, gotSubjects); diff != "" {
		t.Errorf("subjects (-want +got):\n%s", diff)
	}
	if !strings.HasSuffix(string(f.File(RunFile)), "}\n") || !strings.HasSuffix(string(f.File(EnvelopeFile)), "}\n") {
		t.Errorf("files must end with a newline")
	}

	// A manifest digest that does not match the content is refused.
	bad := []OutputFile{{Path: "o", SHA256: strings.Repeat("0", 64), Size: 1, Open: func() ([]byte, error) { return []byte("x"), nil }}}
	if _, err := BuildFolder(Layout{}, aRun("pi", nil).record(), nil, nil, bad, limits); err == nil {
		t.Errorf("mismatching output digest accepted")
	}
	escape := []OutputFile{{Path: "../x", SHA256: contract.SHA256Hex([]byte("x")), Size: 1, Open: func() ([]byte, error) { return []byte("x"), nil }}}
	if _, err := BuildFolder(Layout{}, aRun("pi", nil).record(), nil, nil, escape, limits); err == nil {
		t.Errorf("escaping output path accepted")
	}
	if _, err := BuildFolder(Layout{}, aRun("pi", nil).record(), []byte("[1,2]"), nil, nil, limits); err == nil {
		t.Errorf("metrics that are not an object accepted")
	}
}

func toSet(s []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

// folderOf builds a signed-looking folder for a test record.
func folderOf(t *testing.T, rec *Record, metrics string, envelope string) map[string][]byte {
	t.Helper()
	f, err := BuildFolder(Layout{}, rec, []byte(metrics), nil, nil, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	f.SetEnvelope([]byte(envelope))
	return f.Files()
}

func writeAll(t *testing.T, m *tree.Memory, files map[string][]byte) {
	t.Helper()
	for p, data := range files {
		if err := m.Write(p, data, tree.ModeFile); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMerge(t *testing.T) {
	theirs := aRun("pi", map[string]any{"seed": 1}).record()
	ours := aRun("pi", map[string]any{"seed": 2}).record()
	forged := aRun("pi", map[string]any{"seed": 3}).record()
	head := tree.NewMemory()
	writeAll(t, head, folderOf(t, theirs, `{"m": 1}`, `{"sig":"theirs"}`))
	forgedFiles := folderOf(t, forged, `{"m": 99}`, `{"sig":"copied"}`)
	forgedFiles["results/pi/"+forged.RunID+"/extra.txt"] = []byte("junk")
	writeAll(t, head, forgedFiles)
	writeAll(t, head, map[string][]byte{"README.md": []byte("top"), "results/pi/README.md": []byte("stale")})
	// Pushed by hand: a folder with no signature (metric 999) and one whose
	// verification fails; neither is a run of the summaries.
	unsigned := aRun("pi", map[string]any{"seed": 4}).record()
	unsignedFiles := folderOf(t, unsigned, `{"m": 999}`, "")
	delete(unsignedFiles, "results/pi/"+unsigned.RunID+"/"+EnvelopeFile)
	writeAll(t, head, unsignedFiles)
	linked := "results/pi/" + strings.Repeat("c", 64)
	if err := head.Write(linked, []byte("/etc"), tree.ModeSymlink); err != nil {
		t.Fatal(err)
	}
	alien := aRun("pi", map[string]any{"seed": 5}).record()
	writeAll(t, head, folderOf(t, alien, `{"m": 555}`, `{"sig":"other experiment"}`))

	batch := map[string][]byte{}
	for _, files := range []map[string][]byte{
		folderOf(t, ours, `{"m": 2}`, `{"sig":"ours"}`),
		folderOf(t, theirs, `{"m": 1}`, `{"sig":"theirs"}`),                                       // identical
		folderOf(t, aRun("pi", map[string]any{"seed": 3}).record(), `{"m": 3}`, `{"sig":"real"}`), // replaces forged
	} {
		for p, d := range files {
			batch[p] = d
		}
	}
	replace := func(_ tree.Reader, dir string) bool { return strings.HasSuffix(dir, forged.RunID) }
	// A stand-in for the signature check (reconcile passes attest's): an
	// envelope must be there and not one the test marks as bad.
	verify := func(r tree.Reader, dir, experiment string) error {
		env, err := r.ReadFile(dir+"/"+EnvelopeFile, 0)
		switch {
		case err != nil:
			return err
		case strings.Contains(string(env), "other experiment"):
			return errors.New("attests experiment other, not " + experiment)
		}
		return nil
	}
	changes, report, err := Layout{}.Merge(head, batch, MergeOptions{Replace: replace, Verify: verify})
	if err != nil {
		t.Fatal(err)
	}
	wantReport := MergeReport{
		Added:       []string{"results/pi/" + ours.RunID},
		Identical:   []string{"results/pi/" + theirs.RunID},
		Replaced:    []string{"results/pi/" + forged.RunID},
		Experiments: []string{"pi"},
	}
	if diff := cmp.Diff(wantReport, report); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if d, ok := changes["results/pi/"+forged.RunID+"/extra.txt"]; !ok || d != nil {
		t.Errorf("forged folder's extra file not deleted")
	}
	if _, ok := changes["results/pi/"+theirs.RunID+"/run.json"]; ok {
		t.Errorf("identical folder rewritten")
	}
	readme := string(changes["results/pi/README.md"])
	for _, id := range []string{theirs.RunID, ours.RunID, forged.RunID} {
		if !strings.Contains(readme, id[:12]) {
			t.Errorf("merged README lacks run %s:\n%s", id[:12], readme)
		}
	}
	if strings.Contains(readme, "| 99 |") || !strings.Contains(readme, "| 3 |") {
		t.Errorf("README shows the forged metric instead of ours:\n%s", readme)
	}
	if !strings.Contains(readme, "3 verified runs: 3 succeeded") {
		t.Errorf("README summary wrong:\n%s", readme)
	}
	table, apart, ok := strings.Cut(readme, "Unverified folders")
	if !ok {
		t.Fatalf("README has no unverified section:\n%s", readme)
	}
	for _, id := range []string{unsigned.RunID, alien.RunID, strings.Repeat("c", 64)} {
		if strings.Contains(table, id[:12]) || !strings.Contains(apart, "`"+id+"`") {
			t.Errorf("unverified folder %s is in the table or missing from the list:\n%s", id[:12], readme)
		}
	}
	if strings.Contains(readme, "999") || strings.Contains(readme, "555") {
		t.Errorf("README shows an unverified folder's metric:\n%s", readme)
	}
	if !strings.Contains(apart, "attests experiment other, not pi") {
		t.Errorf("unverified folder listed without its reason:\n%s", apart)
	}
	if changes["results/pi/plot.svg"] == nil {
		t.Errorf("sweep merged without a plot")
	}
	if !strings.Contains(string(changes["results/README.md"]), "| [pi](pi/) | 3 | 3 | 0 | 3 |") {
		t.Errorf("index wrong:\n%s", changes["results/README.md"])
	}

	// A trusted, different folder in the head wins over ours.
	head2 := tree.NewMemory()
	writeAll(t, head2, folderOf(t, ours, `{"m": 7}`, `{"sig":"first"}`))
	_, report2, err := Layout{}.Merge(head2, folderOf(t, ours, `{"m": 2}`, `{"sig":"second"}`), MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"results/pi/" + ours.RunID}, report2.Kept); diff != "" {
		t.Errorf("first writer did not win (-want +got):\n%s", diff)
	}

	// Paths outside the results root are refused.
	if _, _, err := (Layout{}).Merge(head, map[string][]byte{"src/x": []byte("x")}, MergeOptions{}); err == nil {
		t.Errorf("a file outside results/ was accepted")
	}
}

func TestMarshalRecordDeterministic(t *testing.T) {
	rec := aRun("pi", map[string]any{"z": 1, "a": "x", "m": 0.5}).record()
	loc := time.FixedZone("X", 3600)
	rec.StartedAt = rec.StartedAt.In(loc)
	a, err := MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.StartedAt = rec.StartedAt.UTC()
	b, _ := MarshalRecord(rec)
	if string(a) != string(b) {
		t.Errorf("time zone changes run.json")
	}
	golden(t, "run.json", a)
}

func TestTickLabel(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 0.005: "0.005", 1000: "1k", 2500: "2.5k", 100000: "100k", 3e6: "3M",
		1e-30: "1e-30", 1.5e-6: "1.5e-6", 1e-90: "1e-90", -2e-5: "-2e-5",
	} {
		if got := tickLabel(v); got != want {
			t.Errorf("tickLabel(%g) = %q, want %q", v, got, want)
		}
	}
	for e := -300; e <= -4; e++ {
		if got := tickLabel(math.Pow(10, float64(e))); got != fmt.Sprintf("1e%d", e) {
			t.Errorf("tickLabel(1e%d) = %q", e, got)
		}
	}
}

// TestLogScalePlotGolden: a metric spanning many decades against a
// parameter spanning several gets log axes with clean labels.
func TestLogScalePlotGolden(t *testing.T) {
	var runs []Run
	for _, lr := range []float64{0.001, 0.01, 0.1, 1} {
		for _, m := range []float64{0, 0.9} {
			loss := math.Pow(10, -3-30*lr*(1+m))
			runs = append(runs, aRun("descent", map[string]any{"lr": lr, "momentum": m}).run(map[string]float64{"final_loss": loss}))
		}
	}
	page := RenderExperiment("descent", runs, nil)
	golden(t, "log-plot.svg", firstPlot(t, page))
	for _, want := range []string{"lr (log scale)", "final_loss (log scale)", ">1e-30<", "momentum=0.9"} {
		if !strings.Contains(string(firstPlot(t, page)), want) {
			t.Errorf("log plot lacks %q", want)
		}
	}
}

// TestRenderExperimentFailureReasonAndRepeat: a failed row says why in one
// short escaped cell, and repeats of one point get a repeat column.
func TestRenderExperimentFailureReasonAndRepeat(t *testing.T) {
	long := "metrics file out/m.json: not a JSON object | <b>bold</b> [x](javascript:alert(1))\n" + strings.Repeat("detail ", 40)
	failed := aRun("r", map[string]any{"n": 1}).failed(2)
	failed.r.Reason = long
	timedOut := aRun("r", map[string]any{"n": 2}).failed(-1)
	timedOut.r.Status, timedOut.r.Reason = "TimedOut", "timed out after 2s"
	again := aRun("r", map[string]any{"n": 1})
	again.r.Identity.Repeat = 1
	page := RenderExperiment("r", []Run{failed.run(nil), again.run(nil), timedOut.run(nil)}, nil)
	readme := string(page.Readme)
	for _, want := range []string{
		"| run | n | repeat | status |",
		"| **Failed**: exit 2, metrics file out/m.json: not a JSON object \\| &lt;b&gt;bold&lt;/b&gt; \\[x\\](javascript:alert(1…",
		"…",
		"| 1 | 1 | Succeeded |",
		"| 2 | 0 | **TimedOut**: timed out after 2s |",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README lacks %q:\n%s", want, readme)
		}
	}
	if strings.Contains(readme, strings.Repeat("detail ", 20)) {
		t.Errorf("failure reason not shortened:\n%s", readme)
	}
}

// TestLogScaleTicksAreWholeDecades: every y label of a log axis is
// 1e<integer>, the top decade is labelled, and labels start right of the
// rotated axis title whatever their length.
func TestLogScaleTicksAreWholeDecades(t *testing.T) {
	for _, c := range []struct {
		name   string
		losses []float64
		top    string
	}{
		{"90 decades", []float64{1e-3, 1e-40, 1e-91}, ">1<"},
		{"7 decades", []float64{2e-3, 5e-6, 3e-10}, ">0.01<"},
		{"long linear labels", []float64{-1.234567e-5, -2.345678e-5, -3.456789e-5}, ""},
	} {
		var runs []Run
		for i, loss := range c.losses {
			runs = append(runs, aRun("d", map[string]any{"lr": i + 1}).run(map[string]float64{"loss": loss}))
		}
		svg := string(PlotSVG("d", runs, "lr", "loss"))
		if c.top != "" && !strings.Contains(svg, c.top) {
			t.Errorf("%s: top decade label %s missing:\n%s", c.name, c.top, svg)
		}
		for _, m := range regexp.MustCompile(`<text x="([0-9.]+)" y="[0-9.]+" text-anchor="end">([^<]*)</text>`).FindAllStringSubmatch(svg, -1) {
			label := m[2]
			if c.top != "" && !regexp.MustCompile(`^(1e-?[0-9]+|0\.01|0\.1|1|10|100|0\.001)$`).MatchString(label) {
				t.Errorf("%s: y label %q is not a whole decade", c.name, label)
			}
			x, _ := strconv.ParseFloat(m[1], 64)
			if start := x - 6.5*float64(len([]rune(label))); start < 28 {
				t.Errorf("%s: y label %q starts at x=%.1f, under the axis title", c.name, label, start)
			}
		}
	}
}
