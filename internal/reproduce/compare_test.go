package reproduce

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/attest"
)

func TestWithin(t *testing.T) {
	cases := []struct {
		tol       attest.MetricTolerance
		want, got float64
		ok        bool
	}{
		{attest.MetricTolerance{Abs: 0.5}, 1, 1.5, true},
		{attest.MetricTolerance{Abs: 0.5}, 1, 1.5000001, false},
		{attest.MetricTolerance{Rel: 0.01}, 200, 198, true},
		{attest.MetricTolerance{Rel: 0.01}, -200, -202.5, false},
		// The larger of the two applies.
		{attest.MetricTolerance{Abs: 1, Rel: 0.01}, 10, 10.9, true},
		{attest.MetricTolerance{Abs: 0.01, Rel: 0.1}, 10, 10.9, true},
		// A relative tolerance of a zero attested value allows nothing.
		{attest.MetricTolerance{Rel: 0.5}, 0, 1e-300, false},
	}
	for _, c := range cases {
		if got := within(c.tol, c.want, c.got); got != c.ok {
			t.Errorf("within(%+v, %v, %v) = %v", c.tol, c.want, c.got, got)
		}
	}
}

func TestFirstDifference(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 20000)
	changed := append([]byte(nil), big...)
	changed[150001] = 'x'
	cases := []struct {
		name string
		a, b []byte
		off  int64
		ok   bool
	}{
		{"equal", big, big, 0, false},
		{"byte deep inside", big, changed, 150001, true},
		{"first byte", []byte("a"), []byte("b"), 0, true},
		{"prefix", []byte("abc"), []byte("abcd"), 3, true},
		{"empty and not", nil, []byte("x"), 0, true},
		{"both empty", nil, nil, 0, false},
	}
	for _, c := range cases {
		// Short reads must not change the answer.
		off, ok := firstDifference(context.Background(), iotest.OneByteReader(bytes.NewReader(c.a)), bytes.NewReader(c.b))
		if off != c.off || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.name, off, ok, c.off, c.ok)
		}
	}
}

func TestVerdict(t *testing.T) {
	identical := attest.OutputComparison{Path: "a", Verdict: attest.ItemIdentical, Required: true}
	cases := []struct {
		name string
		c    Comparison
		want string
	}{
		{"all identical", Comparison{Status: attest.ItemIdentical, Outputs: []attest.OutputComparison{identical}}, attest.VerdictIdentical},
		{"an output that may differ", Comparison{Status: attest.ItemIdentical, Outputs: []attest.OutputComparison{identical,
			{Path: "b", Verdict: attest.ItemMayDiffer}}}, attest.VerdictReproduced},
		{"a metric within tolerance", Comparison{Status: attest.ItemIdentical, Metrics: []attest.MetricComparison{
			{Name: "m", Verdict: attest.ItemWithinTolerance}}}, attest.VerdictReproduced},
		{"exit status", Comparison{Status: attest.ItemDiffers}, attest.VerdictDiffers},
		{"a required output", Comparison{Status: attest.ItemIdentical, Outputs: []attest.OutputComparison{
			{Path: "a", Verdict: attest.ItemDiffers, Required: true}}}, attest.VerdictDiffers},
		{"a missing output", Comparison{Status: attest.ItemIdentical, Outputs: []attest.OutputComparison{
			{Path: "a", Verdict: attest.ItemMissing, Required: true}}}, attest.VerdictDiffers},
		{"a metric gone", Comparison{Status: attest.ItemIdentical, Metrics: []attest.MetricComparison{
			{Name: "m", Verdict: attest.ItemMissing}}}, attest.VerdictDiffers},
	}
	for _, c := range cases {
		if got := c.c.verdict(); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestTolerancesRequired(t *testing.T) {
	all := Tolerances{}
	some := Tolerances{Exact: []string{"out/a.txt", "out/plots/"}}
	none := Tolerances{Exact: []string{}}
	got := map[string][3]bool{}
	for _, p := range []string{"out/a.txt", "out/b.txt", "out/plots/x.svg", "out/plotsx"} {
		got[p] = [3]bool{all.required(p), some.required(p), none.required(p)}
	}
	want := map[string][3]bool{
		"out/a.txt":       {true, true, false},
		"out/b.txt":       {true, false, false},
		"out/plots/x.svg": {true, true, false},
		"out/plotsx":      {true, false, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("required (-want +got):\n%s", diff)
	}
}

func TestStatementName(t *testing.T) {
	at := time.Date(2026, 12, 7, 17, 4, 5, 999, time.FixedZone("x", 3600))
	got := StatementName(at, "SHA256:P7+DmQ/DpSVnVyXYZ0123")
	if got != "20261207T160405Z-P7DmQDpSVnVy.intoto.jsonl" || !attest.ValidReproductionName(got) {
		t.Errorf("name %q", got)
	}
	if !strings.HasSuffix(StatementName(at, ""), "Z-.intoto.jsonl") || !attest.ValidReproductionName(StatementName(at, "")) {
		t.Errorf("without a key ID: %q", StatementName(at, ""))
	}
}

func TestLineAt(t *testing.T) {
	text := []byte("first\nsecond line here\nthird")
	if got := lineAt(text, 9); got != `"second line here"` {
		t.Errorf("line %s", got)
	}
	long := []byte(strings.Repeat("é", 100))
	if got := lineAt(long, 3); !strings.HasSuffix(got, `"…`) || len(got) > maxLineBytes+8 {
		t.Errorf("long line %s", got)
	}
}
