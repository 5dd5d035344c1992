package report

import (
	"fmt"
	"hash/fnv"
	"math"
	"time"
)

// The chart types below are geometry computed in Go, so the page needs no
// charting library: the template only places rectangles, lines and text.

// rect is one data mark.
type rect struct {
	X, Y, W, H float64
	Fill       string
	Opacity    float64
	Title      string
}

// tick is an axis label at a position.
type tick struct {
	Pos   float64
	Label string
}

// legendItem names a colour.
type legendItem struct {
	Label, Fill string
}

// chart is a plot area with marks, axes and reference lines.
type chart struct {
	W, H                 float64
	Left, Top            float64 // plot origin
	PlotW, PlotH         float64
	Marks                []rect
	XTicks, YTicks       []tick
	Lines                []refLine
	Legend               []legendItem
	XLabel, YLabel, Desc string
}

// refLine is a vertical reference line, such as an estimated cap.
type refLine struct {
	X     float64
	Label string
	Fill  string
}

// bar is one row of a horizontal bar chart.
type bar struct {
	Label string
	N     int64
	W     float64 // share of the widest bar, 0..100
	Share float64 // share of the total, 0..100
	Fill  string
}

// Colours of known outcomes and kinds; anything else hashes into palette.
var (
	colours = map[string]string{
		"ok": "#9db4c0", "reset": "#d1495b", "timeout": "#edae49", "icmp_unreachable": "#8e6bb8",
		"incomplete": "#c9c9c9", "insufficient_evidence": "#e0d8c8",
		"sni_rst_injection": "#d1495b", "sni_blackhole": "#edae49", "ip_blocking": "#00798c",
		"throttling": "#e07a1f", "residual_block": "#a23b72", "quic_blocking": "#6a994e",
		"tls_interception": "#30638e",
	}
	palette = []string{"#00798c", "#d1495b", "#edae49", "#66a182", "#2e4057", "#8e6bb8", "#a23b72", "#e07a1f", "#30638e", "#6a994e"}
)

func colour(key string) string {
	if c, ok := colours[key]; ok {
		return c
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return palette[h.Sum32()%uint32(len(palette))]
}

func bars(counts []Count) []bar {
	var total, top int64
	for _, c := range counts {
		total += c.N
		top = max(top, c.N)
	}
	out := make([]bar, 0, len(counts))
	for _, c := range counts {
		out = append(out, bar{Label: c.Key, N: c.N, W: 100 * float64(c.N) / float64(max(top, 1)), Share: 100 * float64(c.N) / float64(max(total, 1)), Fill: colour(c.Key)})
	}
	return out
}

// failureOrder stacks failure outcomes the same way in every chart.
var failureOrder = []string{"reset", "timeout", "icmp_unreachable"}

// timelineChart draws all flows per bucket in grey behind the failed flows
// stacked by outcome.
func timelineChart(t *Timeline) chart {
	c := chart{W: 960, H: 220, Left: 48, Top: 12, PlotW: 870, PlotH: 170, YLabel: "flows per " + fmtDur(t.Bucket)}
	var top int64 = 1
	for _, n := range t.All {
		top = max(top, n)
	}
	bw := c.PlotW / float64(max(t.Buckets, 1))
	y := func(n int64) float64 { return c.Top + c.PlotH - c.PlotH*float64(n)/float64(top) }
	for i, n := range t.All {
		if n == 0 {
			continue
		}
		x := c.Left + float64(i)*bw
		at := t.Start.Add(time.Duration(i) * t.Bucket)
		c.Marks = append(c.Marks, rect{X: x, Y: y(n), W: math.Max(bw-1, 1), H: c.Top + c.PlotH - y(n), Fill: "#dfe6ea", Opacity: 1, Title: fmt.Sprintf("%s: %d flows", fmtTime(at), n)})
		var below int64
		for _, o := range outcomesOf(t) {
			k := t.Failures[o][i]
			if k == 0 {
				continue
			}
			c.Marks = append(c.Marks, rect{X: x, Y: y(below + k), W: math.Max(bw-1, 1), H: y(below) - y(below+k), Fill: colour(o), Opacity: 1, Title: fmt.Sprintf("%s: %d %s", fmtTime(at), k, o)})
			below += k
		}
	}
	c.YTicks = []tick{{c.Top + c.PlotH, "0"}, {c.Top + c.PlotH/2, fmt.Sprint(top / 2)}, {c.Top, fmt.Sprint(top)}}
	c.XTicks = timeTicks(t, c.Left, c.PlotW)
	c.Legend = append(c.Legend, legendItem{"all flows", "#dfe6ea"})
	for _, o := range outcomesOf(t) {
		c.Legend = append(c.Legend, legendItem{o, colour(o)})
	}
	return c
}

func outcomesOf(t *Timeline) []string {
	var out []string
	for _, o := range failureOrder {
		if _, ok := t.Failures[o]; ok {
			out = append(out, o)
		}
	}
	return out
}

func timeTicks(t *Timeline, left, width float64) []tick {
	const n = 6
	span := time.Duration(t.Buckets) * t.Bucket
	var out []tick
	for i := 0; i <= n; i++ {
		at := t.Start.Add(span * time.Duration(i) / n)
		out = append(out, tick{Pos: left + width*float64(i)/n, Label: fmtTick(at, span)})
	}
	return out
}

// strip is one lane of the timeline: shaded buckets and the finding
// windows under them, on the same time axis as the overview.
type strip struct {
	W, H    float64
	Marks   []rect
	Windows []rect
}

func laneStrip(t *Timeline, l *Lane) strip {
	s := strip{W: 360, H: 22}
	bw := s.W / float64(max(t.Buckets, 1))
	var top int64 = 1
	for _, n := range l.Buckets {
		top = max(top, n)
	}
	fill := colour(l.Kind)
	for i, n := range l.Buckets {
		if n == 0 {
			continue
		}
		at := t.Start.Add(time.Duration(i) * t.Bucket)
		s.Marks = append(s.Marks, rect{X: float64(i) * bw, Y: 2, W: math.Max(bw, 1.5), H: 14, Fill: fill, Opacity: 0.35 + 0.65*float64(n)/float64(top), Title: fmt.Sprintf("%s: %d flows", fmtTime(at), n)})
	}
	span := float64(time.Duration(t.Buckets) * t.Bucket)
	for _, w := range l.Windows {
		x0 := s.W * float64(w[0].Sub(t.Start)) / span
		x1 := s.W * float64(w[1].Sub(t.Start)) / span
		s.Windows = append(s.Windows, rect{X: x0, Y: 18, W: math.Max(x1-x0, 2), H: 3, Fill: fill, Opacity: 1, Title: "finding window " + fmtTime(w[0]) + " – " + fmtTime(w[1])})
	}
	return s
}

// throughputChart draws goodput histograms of normal and throttled flows
// on a log axis, with the estimated caps as reference lines.
func throughputChart(tp *Throughput) chart {
	c := chart{W: 960, H: 240, Left: 48, Top: 16, PlotW: 870, PlotH: 180, XLabel: "goodput (server to client), log scale", YLabel: "share of flows"}
	all := append(append([]float64(nil), tp.Normal.Values...), tp.Throttled.Values...)
	for _, cp := range tp.Caps {
		if cp.RateBps > 0 {
			all = append(all, cp.RateBps)
		}
	}
	if len(all) == 0 {
		return c
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range all {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	const perDecade = 5
	d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	nb := int(d1-d0) * perDecade
	x := func(v float64) float64 { return c.Left + c.PlotW*(math.Log10(v)-d0)/(d1-d0) }
	hist := func(vs []float64) []float64 {
		h := make([]float64, nb)
		for _, v := range vs {
			i := int((math.Log10(v) - d0) * perDecade)
			h[min(max(i, 0), nb-1)]++
		}
		for i := range h {
			h[i] /= float64(max(len(vs), 1))
		}
		return h
	}
	hn, ht := hist(tp.Normal.Values), hist(tp.Throttled.Values)
	top := 0.0
	for i := range hn {
		top = math.Max(top, math.Max(hn[i], ht[i]))
	}
	bw := c.PlotW / float64(nb)
	for i := range nb {
		from := math.Pow(10, d0+float64(i)/perDecade)
		to := math.Pow(10, d0+float64(i+1)/perDecade)
		for j, s := range []struct {
			h    []float64
			n    int
			fill string
			name string
		}{{hn, len(tp.Normal.Values), "#5b8fa8", "normal"}, {ht, len(tp.Throttled.Values), "#e07a1f", "throttled"}} {
			if s.h[i] == 0 {
				continue
			}
			h := c.PlotH * s.h[i] / top
			c.Marks = append(c.Marks, rect{X: c.Left + float64(i)*bw + float64(j)*bw/2, Y: c.Top + c.PlotH - h, W: math.Max(bw/2-1, 1), H: h, Fill: s.fill, Opacity: 0.9,
				Title: fmt.Sprintf("%s flows %s – %s: %.0f%% (%d)", s.name, fmtRate(from), fmtRate(to), 100*s.h[i], int(math.Round(s.h[i]*float64(s.n))))})
		}
	}
	for d := d0; d <= d1; d++ {
		c.XTicks = append(c.XTicks, tick{Pos: x(math.Pow(10, d)), Label: fmtRate(math.Pow(10, d))})
	}
	c.YTicks = []tick{{c.Top + c.PlotH, "0%"}, {c.Top, fmt.Sprintf("%.0f%%", 100*top)}}
	seen := map[string]bool{}
	for _, cp := range tp.Caps {
		// Caps that print the same would stack identical labels.
		if label := "cap " + fmtRate(cp.RateBps); cp.RateBps > 0 && !seen[label] {
			seen[label] = true
			c.Lines = append(c.Lines, refLine{X: x(cp.RateBps), Label: label, Fill: "#b5541a"})
		}
	}
	c.Legend = []legendItem{{fmt.Sprintf("normal (%d flows)", len(tp.Normal.Values)), "#5b8fa8"}, {fmt.Sprintf("throttled targets (%d flows)", len(tp.Throttled.Values)), "#e07a1f"}}
	return c
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func fmtTick(t time.Time, span time.Duration) string {
	switch {
	case span <= 10*time.Minute:
		return t.UTC().Format("15:04:05")
	case span <= 36*time.Hour:
		return t.UTC().Format("15:04")
	case span <= 180*24*time.Hour:
		return t.UTC().Format("01-02 15h")
	}
	return t.UTC().Format("2006-01-02")
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dmin", d/time.Minute)
	case d < time.Minute:
		return fmt.Sprintf("%.0fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func fmtRate(bps float64) string {
	switch {
	case bps >= 1e9:
		return trimZero(bps/1e9) + " Gbit/s"
	case bps >= 1e6:
		return trimZero(bps/1e6) + " Mbit/s"
	case bps >= 1e3:
		return trimZero(bps/1e3) + " kbit/s"
	}
	return trimZero(bps) + " bit/s"
}

func trimZero(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
