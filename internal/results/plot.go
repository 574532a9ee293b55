package results

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/expsync/expsync/contract"
)

// DefaultPlot decides what a sweep's plot shows: the chosen parameter and
// metric when they exist, otherwise the first numeric parameter that takes
// at least two values and the first numeric metric (by name) that varies. ok is false
// when there is nothing worth plotting (not a sweep, or no numeric metric).
func DefaultPlot(runs []Run, choice PlotChoice) (x, y string, ok bool) {
	var xs, ys, seeds []string
	for _, p := range paramNames(runs) {
		distinct := map[float64]bool{}
		numeric := true
		for _, r := range runs {
			v, present := r.Record.Params[p]
			if !present {
				continue
			}
			f, isNum := toFloat(v)
			if !isNum {
				numeric = false
				break
			}
			distinct[f] = true
		}
		if numeric && len(distinct) >= 2 {
			if isSeedName(p) {
				seeds = append(seeds, p)
			} else {
				xs = append(xs, p)
			}
		}
	}
	// A seed is a poor x axis when there is a real parameter: it goes
	// last, so a seed-only sweep still plots its spread.
	xs = append(xs, seeds...)
	// Metrics that vary come first: a flag that is 0 everywhere makes a
	// dull default plot.
	var constant []string
	for _, m := range metricNames(runs) {
		distinct := map[float64]bool{}
		for _, r := range runs {
			if v, isNum := r.Metrics[m]; isNum && r.Record.Status == contract.Succeeded {
				distinct[v] = true
			}
		}
		switch {
		case len(distinct) >= 2:
			ys = append(ys, m)
		case len(distinct) == 1:
			constant = append(constant, m)
		}
	}
	ys = append(ys, constant...)
	x = pick(xs, choice.X)
	y = pick(ys, choice.Y)
	return x, y, x != "" && y != ""
}

func isSeedName(p string) bool {
	p = strings.ToLower(p)
	return p == "seed" || strings.HasSuffix(p, "_seed") || strings.HasSuffix(p, "seed") && len(p) <= 8 || p == "repeat" || p == "trial"
}

func pick(candidates []string, want string) string {
	for _, c := range candidates {
		if c == want {
			return c
		}
	}
	if len(candidates) > 0 {
		return candidates[0]
	}
	return ""
}

// Geometry of the plot, in SVG user units.
const (
	plotW, plotH      = 780.0, 420.0
	padLeft, padRight = 80.0, 250.0
	padTop, padBottom = 48.0, 62.0
	maxSeriesInLegend = 12
	fontFamily        = "-apple-system,BlinkMacSystemFont,Segoe UI,Helvetica,Arial,sans-serif"
)

// palette is Okabe–Ito, readable by colour-blind reviewers, on white and in
// GitHub's dark mode alike (the plot has its own white background).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"}

type point struct{ x, y float64 }

type series struct {
	label  string
	points []point
}

// PlotSVG draws metric y against parameter x for the succeeded runs, one
// line per combination of the other parameters that vary. X is logarithmic
// when it is positive and spans two decades or more (typical of sample
// counts and learning rates). The output is byte-for-byte deterministic.
func PlotSVG(experiment string, runs []Run, x, y string) []byte {
	all := seriesOf(runs, x, y)
	var pts []point
	for _, s := range all {
		pts = append(pts, s.points...)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="%s" font-size="12">`+"\n", plotW, plotH, plotW, plotH, fontFamily)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%g" y="24" font-size="15" font-weight="600" fill="#24292f">%s</text>`+"\n", padLeft, esc(fmt.Sprintf("%s: %s vs %s", experiment, y, x)))
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<text x="%g" y="%g" fill="#57606a">no succeeded runs to plot yet</text>`+"\n</svg>\n", padLeft, plotH/2)
		return b.Bytes()
	}
	minX, maxX, minY, maxY := bounds(pts)
	yAxis := yAxisOf(minY, maxY)
	f := frame{x: xAxisOf(minX, maxX, allIntegers(pts)), y: yAxis,
		left: yAxisLeft(yAxis.ticks), right: plotW - padRight, top: padTop, bottom: plotH - padBottom}
	f.drawAxes(&b, x, y)
	f.drawSeries(&b, all, x, y)
	f.drawLegend(&b, all)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// axis is one axis of a plot: its ticks and the range it shows (in
// decades when it is logarithmic).
type axis struct {
	ticks  []float64
	lo, hi float64
	log    bool
}

// xAxisOf chooses the x axis for values from min to max: logarithmic over
// two decades or more, else round ticks, or one tick per integer when the
// values are few integers (seeds, counts: never 1.5).
func xAxisOf(minX, maxX float64, integers bool) axis {
	a := axis{log: minX > 0 && maxX/minX >= 100}
	if a.log {
		a.lo, a.hi = math.Floor(math.Log10(minX)), math.Ceil(math.Log10(maxX))
		for e := a.lo; e <= a.hi; e++ {
			a.ticks = append(a.ticks, math.Pow(10, e))
		}
		return a
	}
	a.ticks, a.lo, a.hi = niceTicks(minX, maxX, 6)
	if integers && a.hi-a.lo <= 10 {
		a.ticks, a.lo, a.hi = nil, math.Floor(minX), math.Ceil(maxX)
		if a.hi == a.lo {
			a.lo, a.hi = a.lo-1, a.hi+1
		}
		for v := a.lo; v <= a.hi; v++ {
			a.ticks = append(a.ticks, v)
		}
	}
	return a
}

// yAxisOf chooses the y axis for values from min to max: logarithmic over
// three decades or more, else round ticks.
func yAxisOf(minY, maxY float64) axis {
	a := axis{log: minY > 0 && maxY/minY >= 1000}
	if !a.log {
		a.ticks, a.lo, a.hi = niceTicks(minY, maxY, 5)
		return a
	}
	a.lo, a.hi = math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
	// At most about 8 labels, every one a round integral exponent
	// (1e-60, 1e-50, …) and the axis ending on labelled decades.
	step := decadeStep((a.hi - a.lo) / 8)
	a.lo, a.hi = math.Floor(a.lo/step)*step, math.Ceil(a.hi/step)*step
	for e := a.lo; e <= a.hi; e += step {
		a.ticks = append(a.ticks, math.Pow(10, e))
	}
	return a
}

// frame is the plotting area in pixels and the axes that map values onto
// it.
type frame struct {
	x, y                     axis
	left, right, top, bottom float64
}

// sx is the pixel column of the value v.
func (f frame) sx(v float64) float64 {
	if f.x.log {
		v = math.Log10(v)
	}
	return f.left + (v-f.x.lo)/(f.x.hi-f.x.lo)*(f.right-f.left)
}

// sy is the pixel row of the value v.
func (f frame) sy(v float64) float64 {
	if f.y.log {
		v = math.Log10(v)
	}
	return f.bottom - (v-f.y.lo)/(f.y.hi-f.y.lo)*(f.bottom-f.top)
}

// drawAxes writes the grid, the axes, their tick labels and their titles.
func (f frame) drawAxes(b *bytes.Buffer, x, y string) {
	b.WriteString(`<g stroke="#d0d7de" stroke-width="1">` + "\n")
	for _, t := range f.y.ticks {
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f2(f.left), f2(f.sy(t)), f2(f.right), f2(f.sy(t)))
	}
	for _, t := range f.x.ticks {
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f2(f.sx(t)), f2(f.top), f2(f.sx(t)), f2(f.bottom))
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(b, `<g stroke="#57606a" stroke-width="1.2" fill="none"><line x1="%s" y1="%s" x2="%s" y2="%s"/><line x1="%s" y1="%s" x2="%s" y2="%s"/></g>`+"\n",
		f2(f.left), f2(f.bottom), f2(f.right), f2(f.bottom), f2(f.left), f2(f.top), f2(f.left), f2(f.bottom))
	b.WriteString(`<g fill="#24292f" font-size="11">` + "\n")
	for _, t := range f.y.ticks {
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="end">%s</text>`+"\n", f2(f.left-6), f2(f.sy(t)+4), esc(tickLabel(t)))
	}
	for _, t := range f.x.ticks {
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", f2(f.sx(t)), f2(f.bottom+16), esc(tickLabel(t)))
	}
	b.WriteString("</g>\n")
	xLabel := x
	if f.x.log {
		xLabel += " (log scale)"
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" fill="#24292f">%s</text>`+"\n", f2((f.left+f.right)/2), f2(plotH-18), esc(xLabel))
	yLabel := y
	if f.y.log {
		yLabel += " (log scale)"
	}
	fmt.Fprintf(b, `<text transform="translate(18 %s) rotate(-90)" text-anchor="middle" fill="#24292f">%s</text>`+"\n", f2((f.top+f.bottom)/2), esc(yLabel))
}

// drawSeries writes each series: a line through the mean at each x, every
// run as a dot (its values in a tooltip).
func (f frame) drawSeries(b *bytes.Buffer, all []series, x, y string) {
	for i, s := range all {
		colour := palette[i%len(palette)]
		means := meanByX(s.points)
		if len(means) > 1 {
			var path strings.Builder
			for j, p := range means {
				if j == 0 {
					path.WriteString("M")
				} else {
					path.WriteString(" L")
				}
				path.WriteString(f2(f.sx(p.x)) + " " + f2(f.sy(p.y)))
			}
			fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", path.String(), colour)
		}
		for _, p := range s.points {
			fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="3.5" fill="%s"><title>%s</title></circle>`+"\n",
				f2(f.sx(p.x)), f2(f.sy(p.y)), colour, esc(fmt.Sprintf("%s=%s, %s=%s %s", x, tickLabel(p.x), y, formatFloat(p.y), s.label)))
		}
	}
}

// drawLegend writes the legend right of the plot, when the series have
// labels: at most maxSeriesInLegend of them, then how many more.
func (f frame) drawLegend(b *bytes.Buffer, all []series) {
	if len(all) == 1 && all[0].label == "" {
		return
	}
	lx, ly := f.right+20, f.top+4
	for i, s := range all {
		if i == maxSeriesInLegend {
			fmt.Fprintf(b, `<text x="%s" y="%s" fill="#57606a">… %d more</text>`+"\n", f2(lx), f2(ly+4), len(all)-i)
			break
		}
		colour := palette[i%len(palette)]
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"/><circle cx="%s" cy="%s" r="3.5" fill="%s"/>`,
			f2(lx), f2(ly), f2(lx+22), f2(ly), colour, f2(lx+11), f2(ly), colour)
		fmt.Fprintf(b, `<text x="%s" y="%s" fill="#24292f">%s</text>`+"\n", f2(lx+30), f2(ly+4), esc(truncate(s.label, 30)))
		ly += 20
	}
}

// seriesOf groups succeeded runs by the values of the other parameters that
// vary; parameters fixed across all runs do not split series.
func seriesOf(runs []Run, x, y string) []series {
	varying := []string{}
	for _, p := range paramNames(runs) {
		if p == x {
			continue
		}
		seen := map[string]bool{}
		for _, r := range runs {
			seen[formatValue(r.Record.Params[p])] = true
		}
		if len(seen) > 1 {
			varying = append(varying, p)
		}
	}
	byLabel := map[string]*series{}
	keys := map[string][]any{}
	var order []Run
	for _, r := range runs {
		if r.Record.Status == contract.Succeeded {
			order = append(order, r)
		}
	}
	SortRuns(order)
	var labels []string
	for _, r := range order {
		xv, okX := toFloat(r.Record.Params[x])
		yv, okY := r.Metrics[y]
		if !okX || !okY || math.IsNaN(yv) || math.IsInf(yv, 0) {
			continue
		}
		var parts []string
		var key []any
		for _, p := range varying {
			parts = append(parts, p+"="+formatValue(r.Record.Params[p]))
			key = append(key, r.Record.Params[p])
		}
		label := strings.Join(parts, ", ")
		s, ok := byLabel[label]
		if !ok {
			s = &series{label: label}
			byLabel[label] = s
			labels = append(labels, label)
			keys[label] = key
		}
		s.points = append(s.points, point{xv, yv})
	}
	sort.SliceStable(labels, func(i, j int) bool {
		a, b := keys[labels[i]], keys[labels[j]]
		for k := range a {
			if c := compareValues(a[k], b[k]); c != 0 {
				return c < 0
			}
		}
		return false
	})
	out := make([]series, 0, len(labels))
	for _, l := range labels {
		out = append(out, *byLabel[l])
	}
	return out
}

func allIntegers(pts []point) bool {
	for _, p := range pts {
		if p.x != math.Trunc(p.x) {
			return false
		}
	}
	return true
}

func meanByX(pts []point) []point {
	sum := map[float64]float64{}
	n := map[float64]int{}
	for _, p := range pts {
		sum[p.x] += p.y
		n[p.x]++
	}
	out := make([]point, 0, len(sum))
	for x, s := range sum {
		out = append(out, point{x, s / float64(n[x])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].x < out[j].x })
	return out
}

func bounds(pts []point) (minX, maxX, minY, maxY float64) {
	minX, maxX, minY, maxY = pts[0].x, pts[0].x, pts[0].y, pts[0].y
	for _, p := range pts[1:] {
		minX, maxX = math.Min(minX, p.x), math.Max(maxX, p.x)
		minY, maxY = math.Min(minY, p.y), math.Max(maxY, p.y)
	}
	return
}

// decadeStep is the smallest of 1, 2, 5, 10, 20, 50, … decades that is at
// least x.
func decadeStep(x float64) float64 {
	for p := 1.0; ; p *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if m*p >= x {
				return m * p
			}
		}
	}
}

// yAxisLeft is the x of the y axis: room for the rotated axis title and
// the longest tick label, so no label runs into the title or off the image.
func yAxisLeft(ticks []float64) float64 {
	longest := 0
	for _, t := range ticks {
		longest = max(longest, len([]rune(tickLabel(t))))
	}
	const titleRoom, charWidth, gap = 30, 6.5, 6 // px at font-size 11
	return math.Max(padLeft, titleRoom+charWidth*float64(longest)+gap)
}

// niceTicks returns about n round tick values covering [lo, hi] and the
// axis range they span (Heckbert's "nice numbers").
func niceTicks(lo, hi float64, n int) (ticks []float64, axisLo, axisHi float64) {
	if hi == lo {
		pad := math.Abs(lo) * 0.1
		if pad == 0 {
			pad = 1
		}
		lo, hi = lo-pad, hi+pad
	}
	step := niceNum((hi-lo)/float64(n-1), true)
	axisLo = math.Floor(lo/step) * step
	axisHi = math.Ceil(hi/step) * step
	for v := axisLo; v <= axisHi+step/2; v += step {
		// Snap to the step grid so 0.30000000000000004 prints as 0.3.
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return ticks, axisLo, axisHi
}

func niceNum(x float64, round bool) float64 {
	exp := math.Floor(math.Log10(x))
	f := x / math.Pow(10, exp)
	var nf float64
	switch {
	case round && f < 1.5, !round && f <= 1:
		nf = 1
	case round && f < 3, !round && f <= 2:
		nf = 2
	case round && f < 7, !round && f <= 5:
		nf = 5
	default:
		nf = 10
	}
	return nf * math.Pow(10, exp)
}

// tickLabel prints axis values short: 100000 as 100k, 0.001 as 0.001.
func tickLabel(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trimFloat(v/1e9) + "G"
	case a >= 1e6:
		return trimFloat(v/1e6) + "M"
	case a >= 1e3:
		return trimFloat(v/1e3) + "k"
	case a != 0 && a < 1e-3:
		// Six significant digits hide the float noise of 10^-30
		// (9.999999e-31); 1.50000e-06 reads better as 1.5e-6.
		s := strconv.FormatFloat(v, 'e', 5, 64)
		mant, exp, _ := strings.Cut(s, "e")
		if strings.Contains(mant, ".") {
			mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
		}
		exp = strings.Replace(strings.Replace(exp, "-0", "-", 1), "+0", "+", 1)
		return mant + "e" + exp
	}
	return trimFloat(v)
}

func trimFloat(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'g', 6, 64)
}

func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func esc(s string) string { return html.EscapeString(s) }

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
