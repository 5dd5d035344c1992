package analyzer_test

import (
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/schemas"
)

// labTruth is the part of a censor-lab scenario's truth.json the detectors
// are judged against (lab/truth.go writes it).
type labTruth struct {
	Scenario string `json:"scenario"`
	Seed     int    `json:"seed"`
	Findings []struct {
		Kind       string   `json:"kind"`
		TargetIP   string   `json:"target_ip"`
		TargetPort uint16   `json:"target_port"`
		TargetName string   `json:"target_name"`
		Method     string   `json:"method"`
		RateBps    float64  `json:"rate_bps"`
		Targeted   bool     `json:"targeted"`
		Collateral []string `json:"collateral"`
	} `json:"findings"`
}

// TestLabScenarios replays every committed censor-lab capture and scores
// the findings against the scenario's ground truth: per finding kind,
// precision and recall >= 0.98; no finding at all on benign controls;
// throttling rates within 10 % of the configured rate; IP-block collateral
// lists complete.
func TestLabScenarios(t *testing.T) {
	dirs, _ := filepath.Glob("../lab/testdata/*-seed*")
	if len(dirs) == 0 {
		t.Fatal("no lab captures in lab/testdata: run make lab")
	}
	type score struct{ tp, fp, fn int }
	perKind := map[string]*score{}
	kind := func(k string) *score {
		if perKind[k] == nil {
			perKind[k] = &score{}
		}
		return perKind[k]
	}
	for _, dir := range dirs {
		var truth labTruth
		b, err := os.ReadFile(filepath.Join(dir, "truth.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &truth); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		res, _, err := replayFile(t, filepath.Join(dir, "capture.pcap"))
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		used := make([]bool, len(res.findings))
		for _, want := range truth.Findings {
			found := -1
			for i, got := range res.findings {
				if used[i] || got.Kind != want.Kind || got.TargetIP != want.TargetIP || got.TargetName != want.TargetName {
					continue
				}
				if want.TargetPort != 0 && got.TargetPort != want.TargetPort {
					continue
				}
				if want.Kind == schemas.KindThrottling && got.Targeted != want.Targeted {
					continue
				}
				found = i
				break
			}
			if found < 0 {
				kind(want.Kind).fn++
				t.Errorf("%s: missed %s %s %q (%s)", dir, want.Kind, want.TargetIP, want.TargetName, want.Method)
				continue
			}
			used[found] = true
			kind(want.Kind).tp++
			got := res.findings[found]
			if want.Method != "" && got.Method != want.Method {
				t.Errorf("%s: %s %s method %s, want %s", dir, want.Kind, want.TargetIP, got.Method, want.Method)
			}
			if want.RateBps > 0 && math.Abs(got.RateBps-want.RateBps) > 0.1*want.RateBps {
				t.Errorf("%s: %s %s rate %.0f bit/s, want %.0f ± 10 %%", dir, want.Kind, want.TargetIP, got.RateBps, want.RateBps)
			}
			for _, n := range want.Collateral {
				if !slices.Contains(got.Collateral, n) {
					t.Errorf("%s: %s %s collateral lacks %s (has %v)", dir, want.Kind, want.TargetIP, n, got.Collateral)
				}
			}
		}
		for i, got := range res.findings {
			if !used[i] {
				kind(got.Kind).fp++
				t.Errorf("%s: unexpected %s %s:%d %q: %s", dir, got.Kind, got.TargetIP, got.TargetPort, got.TargetName, got.Evidence)
			}
		}
	}
	kinds := make([]string, 0, len(perKind))
	for k := range perKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		s := perKind[k]
		prec := float64(s.tp) / math.Max(1, float64(s.tp+s.fp))
		rec := float64(s.tp) / math.Max(1, float64(s.tp+s.fn))
		t.Logf("%-18s precision %.2f recall %.2f (tp %d, fp %d, fn %d)", k, prec, rec, s.tp, s.fp, s.fn)
		if prec < 0.98 || rec < 0.98 {
			t.Errorf("%s: precision %.2f, recall %.2f, want >= 0.98", k, prec, rec)
		}
	}
}

// TestOutcomeCounts: the engine counts the flows it writes by outcome and
// failure stage (Stats.Outcomes, the metrics' per-flow signal) exactly as
// the flow records say, failures of every stage included.
func TestOutcomeCounts(t *testing.T) {
	for _, scenario := range []string{"gfw-inject-seed1", "ip-drop-seed1", "sni-drop-seed1", "benign-seed1"} {
		res, _, err := replayFile(t, filepath.Join("../lab/testdata", scenario, "capture.pcap"))
		if err != nil {
			t.Fatal(err)
		}
		want := map[analyzer.Outcome]uint64{}
		for _, r := range res.flows {
			want[analyzer.Outcome{Outcome: r.Outcome, Stage: r.Stage}]++
		}
		if !maps.Equal(res.stats.Outcomes, want) {
			t.Errorf("%s: counted %v, the flow records say %v", scenario, res.stats.Outcomes, want)
		}
		if len(want) < 2 {
			t.Errorf("%s: flows of %d outcome(s) only: %v", scenario, len(want), want)
		}
	}
}
