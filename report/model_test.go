package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/schemas"
)

func buildFixture(t *testing.T, withFindings bool) (*fixture, *Report) {
	t.Helper()
	fx := newFixture()
	dir := t.TempDir()
	fx.write(t, dir, withFindings)
	r, err := Build(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("problems reading a clean dataset: %q", r.Problems)
	}
	return fx, r
}

func TestBuildSummaryAndMix(t *testing.T) {
	fx, r := buildFixture(t, true)
	failed := map[string]bool{"reset": true, "timeout": true, "icmp_unreachable": true}
	var nFailed int64
	outcomes, sigs := map[string]int64{}, map[string]int64{}
	ips, names := map[string]bool{}, map[string]bool{}
	for _, f := range fx.flows {
		if failed[f.Outcome] {
			nFailed++
		}
		outcomes[f.Outcome]++
		sigs[f.Signature]++
		ips[f.ServerIP] = true
		if f.SNI != "" {
			names[f.SNI] = true
		}
	}
	s := r.Summary
	if s.Flows != int64(len(fx.flows)) || s.FailedFlows != nFailed {
		t.Errorf("summary flows %d failed %d, want %d and %d", s.Flows, s.FailedFlows, len(fx.flows), nFailed)
	}
	if s.ServerIPs != len(ips) || s.Names != len(names) || s.Findings != len(fx.findings) {
		t.Errorf("summary: %d addresses, %d names, %d findings; want %d, %d, %d", s.ServerIPs, s.Names, s.Findings, len(ips), len(names), len(fx.findings))
	}
	first, last := fx.flows[0].StartNs, fx.flows[0].EndNs
	for _, f := range fx.flows {
		first, last = min(first, f.StartNs), max(last, f.EndNs)
	}
	if s.Start.UnixNano() > first || s.End.UnixNano() < last {
		t.Errorf("span %v – %v does not cover the flows %d – %d", s.Start, s.End, first, last)
	}
	if !slices.Equal(s.Versions, []string{"test"}) || !slices.Equal(s.Vantages, []string{"vp1"}) {
		t.Errorf("versions %q vantages %q", s.Versions, s.Vantages)
	}
	for _, c := range r.Mix.Outcomes {
		want := outcomes[c.Key]
		if c.Key == "(none)" {
			want = outcomes[""]
		}
		if c.N != want {
			t.Errorf("outcome %s: %d flows, want %d", c.Key, c.N, want)
		}
	}
	var sum int64
	for _, row := range r.Mix.Signatures {
		sum += row.N
	}
	if sum+r.Mix.Others != s.Flows {
		t.Errorf("signature rows sum to %d, want %d flows", sum+r.Mix.Others, s.Flows)
	}
	var timeline int64
	for _, n := range r.Timeline.All {
		timeline += n
	}
	if timeline != s.Flows {
		t.Errorf("timeline holds %d flows, want %d", timeline, s.Flows)
	}
}

func TestBuildLanes(t *testing.T) {
	fx, r := buildFixture(t, true)
	if len(r.Timeline.Lanes) != len(fx.findings) {
		t.Fatalf("%d lanes, want one per distinct finding target (%d)", len(r.Timeline.Lanes), len(fx.findings))
	}
	for _, l := range r.Timeline.Lanes {
		t.Run(l.Kind+"/"+l.Target(), func(t *testing.T) {
			// Count the flows the lane should hold straight from the records.
			var want int64
			for _, f := range fx.flows {
				if f.ServerIP != l.IP || (l.Port != 0 && f.ServerPort != l.Port) {
					continue
				}
				fails := f.Outcome == "reset" || f.Outcome == "timeout"
				switch l.Kind {
				case schemas.KindIPBlocking:
					if fails {
						want++
					}
				case schemas.KindThrottling:
					if f.SNI == l.Name {
						want++
					}
				default:
					if fails && f.SNI == l.Name {
						want++
					}
				}
			}
			var got int64
			for _, n := range l.Buckets {
				got += n
			}
			if l.Affected != want || got != want {
				t.Errorf("affected %d, buckets sum %d, want %d", l.Affected, got, want)
			}
			if len(l.Windows) != l.Findings || l.Findings != 1 {
				t.Errorf("%d windows for %d findings", len(l.Windows), l.Findings)
			}
		})
	}
}

func TestBuildCollateral(t *testing.T) {
	_, r := buildFixture(t, true)
	if len(r.Collateral) != 1 || r.Collateral[0].IP != ipBlocked {
		t.Fatalf("collateral for %+v, want one table for %s", r.Collateral, ipBlocked)
	}
	c := r.Collateral[0]
	if c.Flows != 6 || c.Failed != 6 {
		t.Errorf("blocked address: %d of %d flows failed, want 6 of 6", c.Failed, c.Flows)
	}
	byName := map[string]NameOnIP{}
	for _, n := range c.Names {
		byName[n.Name] = n
	}
	if n := byName["tilda-1.example"]; !n.Listed || n.Flows != 1 || n.Failed != 1 || n.OKElsewhere != 2 {
		t.Errorf("tilda-1.example: %+v; want listed, 1 failed flow here, 2 OK elsewhere", n)
	}
	if n, ok := byName["tilda-2.example"]; !ok || !n.Listed || n.Flows != 0 {
		t.Errorf("tilda-2.example (named only by the finding): %+v", n)
	}
}

func TestBuildThroughput(t *testing.T) {
	fx, r := buildFixture(t, true)
	tp := r.Throughput
	var slow, fast int
	for _, f := range fx.flows {
		if f.ServerPayload < tp.MinBytes || f.GoodputBps == 0 {
			continue
		}
		if f.SNI == "slow.example" {
			slow++
		} else {
			fast++
		}
	}
	if len(tp.Throttled.Values) != slow || len(tp.Normal.Values) != fast {
		t.Fatalf("throttled %d normal %d flows, want %d and %d", len(tp.Throttled.Values), len(tp.Normal.Values), slow, fast)
	}
	if tp.Throttled.P90 >= tp.Normal.P10 {
		t.Errorf("throttled p90 %.0f not below normal p10 %.0f", tp.Throttled.P90, tp.Normal.P10)
	}
	if len(tp.Caps) != 1 || tp.Caps[0].RateBps != 145e3 || !tp.Caps[0].Targeted {
		t.Errorf("caps %+v, want the throttling finding's 145 kbit/s", tp.Caps)
	}
	if tp.Throttled.P10 > tp.Throttled.Median || tp.Throttled.Median > tp.Throttled.P90 {
		t.Errorf("quantiles out of order: %+v", tp.Throttled)
	}
}

func TestBuildFingerprints(t *testing.T) {
	fx, r := buildFixture(t, true)
	var flows int64
	for _, f := range fx.flows {
		if f.Fingerprint == fpInjector {
			flows++
		}
	}
	g := r.Fingerprints[0]
	if g.Fingerprint != fpInjector || g.Findings != 2 || len(g.Days) != 2 || g.Flows != flows || len(g.Targets) != 2 {
		t.Errorf("first group %+v; want %s with 2 findings on 2 days, %d flows, 2 targets", g, fpInjector, flows)
	}
	last := r.Fingerprints[len(r.Fingerprints)-1]
	if last.Fingerprint != "" || last.Findings != 2 {
		t.Errorf("last group %+v; want the 2 findings without a fingerprint", last)
	}
}

func TestBuildNoFindings(t *testing.T) {
	_, r := buildFixture(t, false)
	if r.Summary.Findings != 0 || len(r.Timeline.Lanes) != 0 || len(r.Collateral) != 0 || r.Summary.FindingFiles != 0 {
		t.Fatalf("findings in a dataset without any: %+v", r.Summary)
	}
	var buf bytes.Buffer
	if err := Render(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "No findings") {
		t.Error("page does not say there are no findings")
	}
}

func TestBuildBadDirectories(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir string
		want      error
	}{
		{"missing", filepath.Join(dir, "nope"), os.ErrNotExist},
		{"file", file, ErrNotDataset},
		{"no flows dataset", empty, ErrNotDataset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(context.Background(), tc.dir, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.dir) {
				t.Errorf("error %q does not name the directory", err)
			}
		})
	}
}

// A writer's hidden temporary files are skipped; a corrupt published file
// is reported and the rest still counted.
func TestBuildSkipsTemporaryAndReportsCorrupt(t *testing.T) {
	fx := newFixture()
	dir := t.TempDir()
	fx.write(t, dir, true)
	part := filepath.Join(dir, "flows", "date=2024-03-10", "hour=12")
	if err := os.WriteFile(filepath.Join(part, ".part-x-0.parquet.tmp"), []byte("half a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Build(context.Background(), dir, Options{})
	if err != nil || len(r.Problems) != 0 || r.Summary.Flows != int64(len(fx.flows)) {
		t.Fatalf("with a temporary file: err %v, problems %q, %d flows", err, r.Problems, r.Summary.Flows)
	}
	bad := filepath.Join(part, "part-bad-0.parquet")
	if err := os.WriteFile(bad, []byte("PAR1 not really PAR1"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = Build(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], bad) {
		t.Fatalf("problems %q, want one naming %s", r.Problems, bad)
	}
	if r.Summary.Flows != int64(len(fx.flows)) {
		t.Errorf("%d flows beside a corrupt file, want %d", r.Summary.Flows, len(fx.flows))
	}
}

// TestRenderVantageColumn: the findings table names each finding's vantage
// when the dataset has several, and has no such column otherwise.
func TestRenderVantageColumn(t *testing.T) {
	_, r := buildFixture(t, true)
	for _, vs := range [][]string{{"vp1"}, {"vp1", "vp2"}} {
		r.Summary.Vantages = vs
		var buf bytes.Buffer
		if err := Render(&buf, r); err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Contains(buf.String(), "<th>Vantage</th>"), len(vs) > 1; got != want {
			t.Errorf("vantages %q: a vantage column is %v, want %v", vs, got, want)
		}
	}
}

func TestRenderEscapes(t *testing.T) {
	_, r := buildFixture(t, true)
	var buf bytes.Buffer
	if err := Render(&buf, r); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if strings.Contains(page, hostile) || strings.Contains(page, "<script>alert") {
		t.Error("a name from the data reached the page unescaped")
	}
	if !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;.example") {
		t.Error("the escaped name is missing from the page")
	}
	for _, banned := range []string{"http://", "https://", "<link", "src="} {
		if strings.Contains(page, banned) {
			t.Errorf("page refers to outside resources (%q)", banned)
		}
	}
}

// TestLanesPerVantage: a block seen from one vantage and the same address
// answering another get lanes apart: the blocked vantage's lane counts its
// own failed flows only, and the other vantage's finding has its own lane.
func TestLanesPerVantage(t *testing.T) {
	fx := newFixture()
	blockedFlows := 0
	for _, f := range fx.flows {
		if f.ServerIP == ipBlocked && Failed(f.Outcome) {
			blockedFlows++
		}
	}
	// vp2 reaches the blocked address, two flows fail there for a
	// reason of their own and a finding says so.
	for i := range 4 {
		f := fx.flows[0]
		f.FlowID, f.Vantage, f.ServerIP, f.SNI = fmt.Sprintf("vp2-%d", i), "vp2", ipBlocked, "tilda-1.example"
		f.Outcome, f.Stage, f.Signature = "ok", "", ""
		if i < 2 {
			f.Outcome = "timeout"
		}
		fx.flows = append(fx.flows, f)
	}
	vp2 := fx.findings[1] // the ip_blocking finding, as vp2 saw it
	vp2.FindingID, vp2.Vantage = "b2", "vp2"
	fx.findings = append(fx.findings, vp2)
	dir := t.TempDir()
	fx.write(t, dir, true)
	r, err := Build(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	affected := map[string]int64{}
	for _, l := range r.Timeline.Lanes {
		if l.Kind == schemas.KindIPBlocking {
			affected[l.Vantage] = l.Affected
		}
	}
	if d := cmp.Diff(map[string]int64{"vp1": int64(blockedFlows), "vp2": 2}, affected); d != "" {
		t.Errorf("ip_blocking lanes' affected flows by vantage (-want +got):\n%s", d)
	}
}
