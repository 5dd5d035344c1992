package detect

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/schemas"
)

// judgeFlows runs the cross-flow rules over summaries and returns the
// findings. It also judges the flows split by server address, one Set per
// address as the partitions of a stream, through JSON-encoded digests and
// Aggregate, and requires the same findings.
func judgeFlows(t *testing.T, flows []*summary, names map[string][]string) []schemas.Finding {
	t.Helper()
	newSet := func() *Set {
		s := New(Config{}, nil)
		for ip, ns := range names {
			set := map[string]struct{}{}
			for _, n := range ns {
				set[n] = struct{}{}
			}
			s.ipNames.Put(0, ip, set)
		}
		return s
	}
	// One window per vantage, as Set.OnFlowEnd makes them; the split
	// runs one per vantage and address.
	wins := map[string]*window{}
	parts := map[[2]string]*window{}
	for i, f := range flows {
		f.id = fmt.Sprintf("C%d", i)
		f.startNs, f.endNs = int64(i)*1e9, int64(i)*1e9+5e8
		if f.serverPort == 0 {
			f.serverPort = 443
		}
		if wins[f.vantage] == nil {
			wins[f.vantage] = &window{vantage: f.vantage}
		}
		wins[f.vantage].add(f)
		k := [2]string{f.vantage, f.serverIP}
		if parts[k] == nil {
			parts[k] = &window{vantage: f.vantage}
		}
		parts[k].add(f)
	}
	var out []schemas.Finding
	for _, v := range slices.Sorted(maps.Keys(wins)) {
		newSet().judge(wins[v], func(f *schemas.Finding) { out = append(out, *f) })
	}

	var split []schemas.Finding
	var digests []*Digest
	for _, pw := range parts {
		s := newSet()
		s.DeferCrossAddress(func(d *Digest) {
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			var back Digest
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			digests = append(digests, &back)
		})
		s.judge(pw, func(f *schemas.Finding) { split = append(split, *f) })
	}
	Aggregate(Config{}, digests, func(f *schemas.Finding) { split = append(split, *f) })
	byID := func(a, b schemas.Finding) int { return cmp.Compare(a.FindingID, b.FindingID) }
	want := slices.SortedFunc(slices.Values(out), byID)
	slices.SortFunc(split, byID)
	if diff := gocmp.Diff(want, split); diff != "" {
		t.Errorf("findings split by address differ from one Set's (-one +split):\n%s", diff)
	}
	return out
}

func TestRules(t *testing.T) {
	ok := func(ip, name string) *summary {
		return &summary{serverIP: ip, name: name, trigger: "sni", outcome: OutcomeOK, synSeen: true}
	}
	reset := func(ip, name string, inj float64) *summary {
		return &summary{serverIP: ip, name: name, trigger: "sni", outcome: OutcomeReset, stage: StagePostPSH, injection: inj, srvRST: true, synSeen: true}
	}
	synTimeout := func(ip string) *summary {
		return &summary{serverIP: ip, outcome: OutcomeTimeout, stage: StagePostSYN, synSeen: true}
	}
	bulk := func(ip, name string, bps float64) *summary {
		return &summary{serverIP: ip, name: name, trigger: "sni", outcome: OutcomeOK, synSeen: true,
			bytes: 200 << 10, dataNs: 3e9, rateBps: bps, avgSeg: 1448}
	}
	at := func(vantage string, s *summary) *summary {
		s.vantage = vantage
		return s
	}
	tests := []struct {
		name  string
		flows []*summary
		names map[string][]string
		want  []string // kind/target/name of every finding, in order
	}{{
		name:  "SNI reset with same-address controls",
		flows: []*summary{ok("192.0.2.1", "a.test"), reset("192.0.2.1", "x.test", 0.2), reset("192.0.2.1", "x.test", 0.2), ok("192.0.2.1", "b.test")},
		want:  []string{"sni_rst_injection/192.0.2.1/x.test"},
	}, {
		name:  "one failure, no control, no injection evidence: no finding",
		flows: []*summary{reset("192.0.2.2", "x.test", 0.1)},
	}, {
		name:  "one failure with strong injection evidence",
		flows: []*summary{reset("192.0.2.3", "x.test", 0.9)},
		want:  []string{"sni_rst_injection/192.0.2.3/x.test"},
	}, {
		name:  "IP block with collateral from names seen on it",
		flows: []*summary{synTimeout("192.0.2.4"), synTimeout("192.0.2.4"), synTimeout("192.0.2.4"), ok("192.0.2.5", "a.test")},
		names: map[string][]string{"192.0.2.4": {"a.test", "b.test"}},
		want:  []string{"ip_blocking/192.0.2.4/"},
	}, {
		name:  "unanswered address nobody names: a dead host, no finding",
		flows: []*summary{synTimeout("192.0.2.6"), synTimeout("192.0.2.6")},
	}, {
		name:  "an address that also answered is not blocked",
		flows: []*summary{synTimeout("192.0.2.7"), synTimeout("192.0.2.7"), ok("192.0.2.7", "a.test")},
		names: map[string][]string{"192.0.2.7": {"a.test"}},
	}, {
		name:  "throttled name among fast names on one address",
		flows: []*summary{bulk("192.0.2.8", "slow.test", 140e3), bulk("192.0.2.8", "slow.test", 150e3), bulk("192.0.2.8", "fast.test", 50e6)},
		want:  []string{"throttling/192.0.2.8/slow.test"},
	}, {
		name:  "a path slow for everyone",
		flows: []*summary{bulk("192.0.2.9", "a.test", 290e3), bulk("192.0.2.10", "b.test", 300e3)},
		want:  []string{"throttling/192.0.2.10/", "throttling/192.0.2.9/"},
	}, {
		name:  "throttled address while other addresses are fast",
		flows: []*summary{bulk("192.0.2.12", "x.test", 140e3), bulk("192.0.2.12", "y.test", 150e3), bulk("192.0.2.13", "z.test", 20e6)},
		want:  []string{"throttling/192.0.2.12/"},
	}, {
		name: "blocked from one vantage, reachable from another: a block at the first's censor",
		flows: []*summary{at("kz", synTimeout("192.0.2.20")), at("kz", synTimeout("192.0.2.20")), at("kz", synTimeout("192.0.2.20")),
			at("nl", ok("192.0.2.20", "a.test")), at("nl", ok("192.0.2.20", "b.test"))},
		names: map[string][]string{"192.0.2.20": {"a.test", "b.test"}},
		want:  []string{"ip_blocking/192.0.2.20/@kz"},
	}, {
		name: "TLS interception root",
		flows: []*summary{{serverIP: "192.0.2.11", name: "bank.test", trigger: "sni", outcome: OutcomeOK,
			issuer: "CN=Security Certificate,O=Qaznet Trust Network"}},
		want: []string{"tls_interception/192.0.2.11/bank.test"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range judgeFlows(t, tc.flows, tc.names) {
				at := f.Kind + "/" + f.TargetIP + "/" + f.TargetName
				if f.Vantage != "" {
					at += "@" + f.Vantage
				}
				got = append(got, at)
				if f.FindingID == "" || len(f.ExampleFlows) == 0 || f.Evidence == "" || f.Confidence <= 0 || f.Verdict == "" {
					t.Errorf("%s finding lacks id, examples, evidence, confidence or verdict: %+v", f.Kind, f)
				}
				switch f.Kind {
				case schemas.KindThrottling:
					if f.RateBps < 100e3 || f.RateBps > 400e3 {
						t.Errorf("throttling rate %.0f", f.RateBps)
					}
					if (f.Trigger == "path") == f.Targeted {
						t.Errorf("throttling with trigger %q is targeted %v: a path slow for everyone is the one untargeted kind", f.Trigger, f.Targeted)
					}
				case schemas.KindIPBlocking:
					if len(f.Collateral) != 2 {
						t.Errorf("collateral %v, want the 2 names seen on it", f.Collateral)
					}
				case schemas.KindTLSInterception:
					if f.Issuer == "" || f.Method != "mitm" {
						t.Errorf("interception finding without issuer or method: %+v", f)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("findings %v, want %v", got, tc.want)
			}
		})
	}
}
