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
	logX := minX > 0 && maxX/minX >= 100
	var xTicks []float64
	var xLo, xHi float64
	if logX {
		xLo, xHi = math.Floor(math.Log10(minX)), math.Ceil(math.Log10(maxX))
		for e := xLo; e <= xHi; e++ {
			xTicks = append(xTicks, math.Pow(10, e))
		}
	} else {
		xTicks, xLo, xHi = niceTicks(minX, maxX, 6)
		if allIntegers(pts) && xHi-xLo <= 10 {
			// Seeds and counts: one tick per integer, never 1.5.
			xTicks, xLo, xHi = nil, math.Floor(minX), math.Ceil(maxX)
			if xHi == xLo {
				xLo, xHi = xLo-1, xHi+1
			}
			for v := xLo; v <= xHi; v++ {
				xTicks = append(xTicks, v)
			}
		}
	}
	logY := minY > 0 && maxY/minY >= 1000
	var yTicks []float64
	var yLo, yHi float64
	if logY {
		yLo, yHi = math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
		// At most about 8 labels, every one a round integral exponent
		// (1e-60, 1e-50, …) and the axis ending on labelled decades.
		step := decadeStep((yHi - yLo) / 8)
		yLo, yHi = math.Floor(yLo/step)*step, math.Ceil(yHi/step)*step
		for e := yLo; e <= yHi; e += step {
			yTicks = append(yTicks, math.Pow(10, e))
		}
	} else {
		yTicks, yLo, yHi = niceTicks(minY, maxY, 5)
	}

	left, right, top, bottom := yAxisLeft(yTicks), plotW-padRight, padTop, plotH-padBottom
	sx := func(v float64) float64 {
		if logX {
			v = math.Log10(v)
		}
		return left + (v-xLo)/(xHi-xLo)*(right-left)
	}
	sy := func(v float64) float64 {
		if logY {
			v = math.Log10(v)
		}
		return bottom - (v-yLo)/(yHi-yLo)*(bottom-top)
	}

	// Grid and ticks.
	b.WriteString(`<g stroke="#d0d7de" stroke-width="1">` + "\n")
	for _, t := range yTicks {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f2(left), f2(sy(t)), f2(right), f2(sy(t)))
	}
	for _, t := range xTicks {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f2(sx(t)), f2(top), f2(sx(t)), f2(bottom))
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<g stroke="#57606a" stroke-width="1.2" fill="none"><line x1="%s" y1="%s" x2="%s" y2="%s"/><line x1="%s" y1="%s" x2="%s" y2="%s"/></g>`+"\n",
		f2(left), f2(bottom), f2(right), f2(bottom), f2(left), f2(top), f2(left), f2(bottom))
	b.WriteString(`<g fill="#24292f" font-size="11">` + "\n")
	for _, t := range yTicks {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end">%s</text>`+"\n", f2(left-6), f2(sy(t)+4), esc(tickLabel(t)))
	}
	for _, t := range xTicks {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", f2(sx(t)), f2(bottom+16), esc(tickLabel(t)))
	}
	b.WriteString("</g>\n")
	xLabel := x
	if logX {
		xLabel += " (log scale)"
	}
	fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" fill="#24292f">%s</text>`+"\n", f2((left+right)/2), f2(plotH-18), esc(xLabel))
	yLabel := y
	if logY {
		yLabel += " (log scale)"
	}
	fmt.Fprintf(&b, `<text transform="translate(18 %s) rotate(-90)" text-anchor="middle" fill="#24292f">%s</text>`+"\n", f2((top+bottom)/2), esc(yLabel))

	// Series: a line through the mean at each x, every run as a dot.
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
				path.WriteString(f2(sx(p.x)) + " " + f2(sy(p.y)))
			}
			fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", path.String(), colour)
		}
		for _, p := range s.points {
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3.5" fill="%s"><title>%s</title></circle>`+"\n",
				f2(sx(p.x)), f2(sy(p.y)), colour, esc(fmt.Sprintf("%s=%s, %s=%s %s", x, tickLabel(p.x), y, formatFloat(p.y), s.label)))
		}
	}

	// Legend.
	if len(all) > 1 || all[0].label != "" {
		lx, ly := right+20, top+4
		for i, s := range all {
			if i == maxSeriesInLegend {
				fmt.Fprintf(&b, `<text x="%s" y="%s" fill="#57606a">… %d more</text>`+"\n", f2(lx), f2(ly+4), len(all)-i)
				break
			}
			colour := palette[i%len(palette)]
			fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"/><circle cx="%s" cy="%s" r="3.5" fill="%s"/>`,
				f2(lx), f2(ly), f2(lx+22), f2(ly), colour, f2(lx+11), f2(ly), colour)
			fmt.Fprintf(&b, `<text x="%s" y="%s" fill="#24292f">%s</text>`+"\n", f2(lx+30), f2(ly+4), esc(truncate(s.label, 30)))
			ly += 20
		}
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
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
