package report

import (
	"bufio"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/tamperscope/tamperscope/schemas"
)

//go:embed report.html.tmpl
var pageSource string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"time":   fmtTime,
	"dur":    fmtDur,
	"rate":   fmtRate,
	"colour": colour,
	"bars":   bars,
	"strip": func(t *Timeline, l Lane) strip {
		return laneStrip(t, &l)
	},
	"join":  strings.Join,
	"short": func(t time.Time) string { return t.UTC().Format("01-02 15:04:05") },
	"flowOnly": func(gs []FingerprintGroup) []FingerprintGroup {
		var out []FingerprintGroup
		for _, g := range gs {
			if g.Findings == 0 && g.Fingerprint != "" {
				out = append(out, g)
			}
		}
		return out
	},
	"ns": func(ns int64) string {
		return fmtTime(time.Unix(0, ns))
	},
	"nsUnix": func(t time.Time) int64 { return t.UnixNano() },
	"target": func(f schemas.Finding) string { return target(f.TargetName, f.TargetIP, f.TargetPort) },
	"pct": func(a, b int64) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
	},
	"f1":     func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"f2":     func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"add":    func(a, b float64) float64 { return a + b },
	"offset": func(i int) float64 { return float64(12 * i) },
}).Parse(pageSource))

// view is what the template renders: the report and its charts.
type view struct {
	*Report
	Span         time.Duration
	TimelineSVG  chart
	ThroughputSV chart
	Outcomes     []bar
	Stages       []bar
	Evidence     []bar
	Kinds        []bar
}

// Render writes r as one self-contained HTML page.
func Render(w io.Writer, r *Report) error {
	v := view{
		Report:       r,
		Span:         r.Summary.End.Sub(r.Summary.Start),
		TimelineSVG:  timelineChart(&r.Timeline),
		ThroughputSV: throughputChart(&r.Throughput),
		Outcomes:     bars(r.Mix.Outcomes),
		Stages:       bars(r.Mix.Stages),
		Evidence:     bars(r.Mix.Evidence),
		Kinds:        bars(r.Summary.FindingsByKind),
	}
	bw := bufio.NewWriter(w)
	if err := page.Execute(bw, v); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
