package results

import (
	"bytes"
	"testing"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// FuzzParseRecord: any bytes either fail to parse or give a record that
// re-encodes and parses back to the same encoding.
func FuzzParseRecord(f *testing.F) {
	seed, _ := MarshalRecord(aRun("pi", map[string]any{"seed": 1, "lr": 0.5, "name": "a"}).record())
	f.Add(seed)
	f.Add([]byte(`{"runID":"x","experiment":"y","params":{"a":[1,{"b":null}]}}`))
	f.Add([]byte(`{"runID":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := ParseRecord(data)
		if err != nil {
			return
		}
		enc, err := MarshalRecord(rec)
		if err != nil {
			return // for example a time the encoder refuses
		}
		back, err := ParseRecord(enc)
		if err != nil {
			t.Fatalf("re-encoded record does not parse: %v\n%s", err, enc)
		}
		enc2, err := MarshalRecord(back)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzMetrics: NormalizeMetrics is idempotent and whatever it accepts,
// ParseMetrics reads.
func FuzzMetrics(f *testing.F) {
	f.Add([]byte(`{"a": 1.50, "b": -2e10, "c": "text", "d": null}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[1]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		norm, err := NormalizeMetrics(data)
		if err != nil {
			return
		}
		again, err := NormalizeMetrics(norm)
		if err != nil || !bytes.Equal(norm, again) {
			t.Fatalf("not idempotent: %q -> %q (%v)", norm, again, err)
		}
		if _, _, err := ParseMetrics(norm); err != nil {
			t.Fatalf("normalized metrics do not parse: %v", err)
		}
	})
}

// FuzzRenderExperiment: summaries of arbitrary run.json/metrics.json never
// panic, and the plot is well-formed enough to end with </svg>.
func FuzzRenderExperiment(f *testing.F) {
	f.Add([]byte(`{"runID":"a","experiment":"e","params":{"x":1}}`), []byte(`{"m":1}`), []byte(`{"runID":"b","experiment":"e","params":{"x":1e300}}`), []byte(`{"m":-1e-300}`), "", "")
	f.Add([]byte(`{"runID":"a","experiment":"e","status":"Succeeded","params":{"x":1,"y":"a"}}`), []byte(`{"m":1,"t":"x"}`),
		[]byte(`{"runID":"b","experiment":"e","params":{"x":-2,"y":"b"}}`), []byte(`{"m":null,"<b>|":2}`), "x", "m")
	f.Add([]byte(`{"runID":"a","experiment":"e","params":{"x":"1"}}`), []byte(`{"m":1}`), []byte(`{}`), []byte(`{}`), "x", "t")
	f.Fuzz(func(t *testing.T, run1, metrics1, run2, metrics2 []byte, x, y string) {
		m := tree.NewMemory()
		_ = m.Write("results/e/a/run.json", run1, tree.ModeFile)
		_ = m.Write("results/e/a/metrics.json", metrics1, tree.ModeFile)
		_ = m.Write("results/e/b/run.json", run2, tree.ModeFile)
		_ = m.Write("results/e/b/metrics.json", metrics2, tree.ModeFile)
		runs, err := Layout{}.ReadRuns(m, "e", 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range runs {
			runs[i].Record.Status = contract.Succeeded
		}
		var choices []PlotChoice
		if x != "" || y != "" {
			// A chosen plot, and the same again: the second is a file of its own.
			choices = []PlotChoice{{X: x, Y: y}, {X: x, Y: y}}
		}
		page := RenderExperiment("e", runs, choices)
		for _, p := range page.Plots {
			if !bytes.HasSuffix(p.SVG, []byte("</svg>\n")) {
				t.Fatalf("plot %s not closed", p.File)
			}
			if !IsPlotFile(p.File) || !bytes.Contains(page.Readme, []byte("]("+p.File+")")) {
				t.Fatalf("plot %s is not a plot file linked from the README", p.File)
			}
		}
		if choices != nil && len(page.Plots) < len(choices) && !bytes.Contains(page.Readme, []byte("not drawn: ")) {
			t.Fatalf("a chosen plot is neither drawn nor explained:\n%s", page.Readme)
		}
	})
}
