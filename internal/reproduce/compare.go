package reproduce

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/store"
)

// Limits of the byte-level comparison of two differing outputs.
const (
	// MaxCompareBytes bounds how far two differing outputs are read to find
	// their first differing byte; beyond it only sizes and digests speak.
	MaxCompareBytes = 256 << 20
	// maxLineBytes bounds the differing line a report quotes.
	maxLineBytes = 96
	// maxQuotedFile bounds the files whose differing line is quoted.
	maxQuotedFile = 1 << 20
)

// Comparison is what the reproduction found: the statement's verdicts and,
// for people, the differing line of small text outputs.
type Comparison struct {
	Verdict string
	Status  string
	Outputs []attest.OutputComparison
	Metrics []attest.MetricComparison
	Log     string
	// Lines quote, per differing text output, where it first differs.
	Lines map[string]string
}

// Compare judges a reproduction's result against the attested run: the
// exit status must be the same; each output is identical, or differs
// (failing when it must be exact), missing or unexpected; each metric is
// identical, within its tolerance, or differs. The output at the metrics
// path is judged by its metrics unless spec.reproduce.exact names it. The
// log is compared and never decides. st holds the reproduced outputs; the
// attested ones are read from the run folder or st.
func Compare(ctx context.Context, m *Material, metricsPath string, res *contract.Result, tol Tolerances, st *store.Local) Comparison {
	cmp := Comparison{Status: attest.ItemIdentical, Lines: map[string]string{}}
	rec := m.Record
	if string(rec.Status) != string(res.Status) || rec.ExitCode != res.ExitCode {
		cmp.Status = attest.ItemDiffers
	}
	cmp.compareOutputs(ctx, m, metricsPath, res, tol, st)
	cmp.compareMetrics(m, res, tol, st)
	cmp.Log = attest.ItemIdentical
	if rec.LogSHA256 != res.LogSHA256 {
		cmp.Log = attest.ItemDiffers
	}
	cmp.Verdict = cmp.verdict()
	return cmp
}

func (c *Comparison) verdict() string {
	exact := c.Status == attest.ItemIdentical
	if !exact {
		return attest.VerdictDiffers
	}
	for _, o := range c.Outputs {
		switch {
		case o.Verdict == attest.ItemIdentical:
		case o.Verdict == attest.ItemMayDiffer || o.Verdict == attest.ItemWithinTolerance:
			exact = false
		default:
			return attest.VerdictDiffers
		}
	}
	for _, mc := range c.Metrics {
		switch mc.Verdict {
		case attest.ItemIdentical:
		case attest.ItemWithinTolerance:
			exact = false
		default:
			return attest.VerdictDiffers
		}
	}
	if exact {
		return attest.VerdictIdentical
	}
	return attest.VerdictReproduced
}

func (c *Comparison) compareOutputs(ctx context.Context, m *Material, metricsPath string, res *contract.Result, tol Tolerances, st *store.Local) {
	attested := map[string]results.Output{}
	for _, o := range m.Record.Outputs {
		attested[o.Path] = o
	}
	reproduced := map[string]contract.File{}
	for _, o := range res.Outputs {
		reproduced[o.Path] = o
	}
	paths := make([]string, 0, len(attested)+len(reproduced))
	for p := range attested {
		paths = append(paths, p)
	}
	for p := range reproduced {
		if _, ok := attested[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		a, inA := attested[p]
		r, inR := reproduced[p]
		oc := attest.OutputComparison{Path: p, Required: tol.required(p)}
		if p == metricsPath && !tol.listed(p) {
			oc.Required = false // judged by its metrics
		}
		if inA {
			oc.Attested = &attest.FileDigest{SHA256: a.SHA256, Size: a.Size}
		}
		if inR {
			oc.Reproduced = &attest.FileDigest{SHA256: r.SHA256, Size: r.Size}
		}
		switch {
		case !inR:
			oc.Verdict = attest.ItemMissing
		case !inA:
			oc.Verdict = attest.ItemUnexpected
		case a.SHA256 == r.SHA256:
			oc.Verdict = attest.ItemIdentical
		default:
			oc.Verdict = attest.ItemDiffers
			if !oc.Required {
				oc.Verdict = attest.ItemMayDiffer
			}
			c.locate(ctx, m, a, r, st, &oc)
		}
		if !oc.Required && (oc.Verdict == attest.ItemMissing || oc.Verdict == attest.ItemUnexpected) {
			oc.Verdict = attest.ItemMayDiffer
		}
		c.Outputs = append(c.Outputs, oc)
	}
}

// locate finds where two differing outputs first differ, when both can be
// read: the byte offset, and for small text files the line.
func (c *Comparison) locate(ctx context.Context, m *Material, a results.Output, r contract.File, st *store.Local, oc *attest.OutputComparison) {
	old, err := openAttested(m, a, st)
	if err != nil {
		return
	}
	defer old.Close()
	cur, err := os.Open(st.ObjectPath(r.SHA256))
	if err != nil {
		return
	}
	defer cur.Close()
	off, ok := firstDifference(ctx, old, cur)
	if !ok {
		if a.Size > MaxCompareBytes && r.Size > MaxCompareBytes {
			c.Lines[a.Path] = fmt.Sprintf("the first %d MiB are identical (compared no further)", MaxCompareBytes>>20)
		}
		return
	}
	oc.FirstDifference = &off
	if a.Size <= maxQuotedFile && r.Size <= maxQuotedFile {
		if line, ok := quoteLine(m, a, r, st, off); ok {
			c.Lines[a.Path] = line
		}
	}
}

// openAttested opens an attested output: committed in the run folder
// (read whole and checked against its digest: committed outputs are
// small), else the store's object.
func openAttested(m *Material, a results.Output, st *store.Local) (io.ReadCloser, error) {
	if a.Committed && m.files != nil {
		data, err := m.files.ReadFile(path.Join(attest.OutputsDir, a.Path), maxCommittedBytes)
		if err == nil && contract.SHA256Hex(data) == a.SHA256 {
			return io.NopCloser(bytes.NewReader(data)), nil
		}
	}
	return os.Open(st.ObjectPath(a.SHA256))
}

// maxCommittedBytes bounds a committed output read back from the folder.
const maxCommittedBytes = 64 << 20

// firstDifference returns the offset of the first byte where a and b
// differ (the shorter one's length when one is a prefix of the other),
// reading at most MaxCompareBytes; false when they do not differ there or
// a read fails.
func firstDifference(ctx context.Context, a, b io.Reader) (int64, bool) {
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for off < MaxCompareBytes && ctx.Err() == nil {
		na, errA := io.ReadFull(a, bufA)
		nb, errB := io.ReadFull(b, bufB)
		n := min(na, nb)
		if !bytes.Equal(bufA[:n], bufB[:n]) { // vectorised; the byte loop only where they differ
			for i := 0; i < n; i++ {
				if bufA[i] != bufB[i] {
					return off + int64(i), true
				}
			}
		}
		if na != nb {
			return off + int64(n), true
		}
		off += int64(n)
		if errA != nil || errB != nil {
			return 0, false // both ended here, or a read failed
		}
	}
	return 0, false
}

// quoteLine shows the line holding offset off in both files, when both are
// text.
func quoteLine(m *Material, a results.Output, r contract.File, st *store.Local, off int64) (string, bool) {
	oldFile, err := openAttested(m, a, st)
	if err != nil {
		return "", false
	}
	old, err := io.ReadAll(io.LimitReader(oldFile, maxQuotedFile+1))
	oldFile.Close()
	if err != nil {
		return "", false
	}
	cur, err := os.ReadFile(st.ObjectPath(r.SHA256))
	if err != nil || !utf8.Valid(old) || !utf8.Valid(cur) || bytes.IndexByte(old, 0) >= 0 || bytes.IndexByte(cur, 0) >= 0 {
		return "", false
	}
	n := bytes.Count(old[:min(off, int64(len(old)))], []byte("\n")) + 1
	return fmt.Sprintf("line %d: %s → %s", n, lineAt(old, off), lineAt(cur, off)), true
}

func lineAt(b []byte, off int64) string {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	start := bytes.LastIndexByte(b[:off], '\n') + 1
	end := bytes.IndexByte(b[off:], '\n')
	if end < 0 {
		end = len(b)
	} else {
		end += int(off)
	}
	line := b[start:end]
	if len(line) > maxLineBytes {
		cut := maxLineBytes
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		return strconv.Quote(string(line[:cut])) + "…"
	}
	return strconv.Quote(string(line))
}

// compareMetrics compares each metric of the attested metrics.json with
// the reproduction's, by value.
func (c *Comparison) compareMetrics(m *Material, res *contract.Result, tol Tolerances, st *store.Local) {
	want, wantText, _ := results.ParseMetrics(m.Metrics)
	got, gotText := res.Metrics, map[string]string{}
	if res.MetricsSHA256 != "" {
		// The file as the run wrote it, read like the attested one.
		if data, err := os.ReadFile(st.ObjectPath(res.MetricsSHA256)); err == nil {
			if n, t, err := results.ParseMetrics(data); err == nil {
				got, gotText = n, t
			}
		}
	}
	names := map[string]bool{}
	for k := range want {
		names[k] = true
	}
	for k := range wantText {
		names[k] = true
	}
	for k := range got {
		names[k] = true
	}
	for k := range gotText {
		names[k] = true
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		mc := attest.MetricComparison{Name: name}
		w, inW := want[name]
		g, inG := got[name]
		if inW {
			mc.Attested = &w
		}
		if inG {
			mc.Reproduced = &g
		}
		if t, ok := tol.Metrics[name]; ok {
			t := t
			mc.Tolerance = &t
		}
		_, textW := wantText[name]
		_, textG := gotText[name]
		switch {
		case inW && inG && w == g:
			mc.Verdict = attest.ItemIdentical
		case inW && inG && mc.Tolerance != nil && within(*mc.Tolerance, w, g):
			mc.Verdict = attest.ItemWithinTolerance
		case inW && inG:
			mc.Verdict = attest.ItemDiffers
		case textW && textG && wantText[name] == gotText[name]:
			mc.Verdict = attest.ItemIdentical
		case (inW || textW) && !(inG || textG):
			mc.Verdict = attest.ItemMissing
		case !(inW || textW):
			mc.Verdict = attest.ItemUnexpected
		default:
			mc.Verdict = attest.ItemDiffers
		}
		c.Metrics = append(c.Metrics, mc)
	}
}
