package report

import (
	"fmt"
	"testing"
	"time"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
)

// fixture is a small dataset of the shapes the report must explain: SNI
// reset injection on a shared host, an IP block with collateral names one
// of which works elsewhere, a throttled name, a second injection by the
// same device on another day, and a name carrying markup.
type fixture struct {
	flows    []schemas.FlowRecord
	findings []schemas.Finding
}

const (
	ipShared   = "203.0.113.10"
	ipBlocked  = "203.0.113.20"
	ipOther    = "203.0.113.30"
	ipThrottle = "198.51.100.5"
	ipV6       = "2001:db8::7"
	hostile    = `<script>alert("x")</script>.example`
	fpInjector = "fp-00aa11bb22cc"
)

var day0 = time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)

func newFixture() *fixture {
	fx := &fixture{}
	at := func(d time.Duration) int64 { return day0.Add(d).UnixNano() }
	flow := func(start time.Duration, ip string, port uint16, name, outcome, stage, sig string) *schemas.FlowRecord {
		fx.flows = append(fx.flows, schemas.FlowRecord{
			FlowID: fmt.Sprintf("f%d", len(fx.flows)), Vantage: "vp1",
			StartNs: at(start), EndNs: at(start + 2*time.Second),
			Proto: "tcp", IPVersion: 4, ClientIP: "192.0.2.1", ClientPort: uint16(40000 + len(fx.flows)),
			ServerIP: ip, ServerPort: port, AppProto: "tls", SNI: name,
			Outcome: outcome, Stage: stage, Signature: sig,
		})
		return &fx.flows[len(fx.flows)-1]
	}
	// Shared host: one name reset after the ClientHello, the others fine.
	for i := range 4 {
		r := flow(time.Duration(i)*time.Minute, ipShared, 443, "blocked.example", "reset", "post_psh", "post_psh:rst+ack")
		r.RSTs, r.RSTRace, r.RSTTTLDelta, r.RSTNoAck, r.Fingerprint = 2, true, 7, i%2 == 0, fpInjector
		flow(time.Duration(i)*time.Minute+10*time.Second, ipShared, 443, "ok1.example", "ok", "", "")
		flow(time.Duration(i)*time.Minute+20*time.Second, ipShared, 443, "ok2.example", "ok", "", "")
	}
	// IP block: every flow times out after the SYN, whatever its name.
	for i := range 5 {
		flow(30*time.Minute+time.Duration(i)*time.Minute, ipBlocked, 443, "", "timeout", "post_syn", "post_syn:timeout")
	}
	flow(36*time.Minute, ipBlocked, 443, "tilda-1.example", "reset", "post_ack", "post_ack:rst")
	flow(37*time.Minute, ipOther, 443, "tilda-1.example", "ok", "", "")
	flow(38*time.Minute, ipOther, 443, "tilda-1.example", "ok", "", "")
	// Throttled name and fast controls.
	for i := range 3 {
		r := flow(50*time.Minute+time.Duration(i)*time.Minute, ipThrottle, 443, "slow.example", "ok", "", "")
		r.ServerPayload, r.GoodputBps, r.DataPhaseNs = 200<<10, 140e3+float64(i)*5e3, int64(12*time.Second)
		r = flow(50*time.Minute+time.Duration(i)*time.Minute+30*time.Second, ipOther, 443, "fast.example", "ok", "", "")
		r.ServerPayload, r.GoodputBps, r.DataPhaseNs = 4<<20, 40e6+float64(i)*1e6, int64(time.Second)
	}
	// Too short to measure a rate: left out of the distributions.
	r := flow(55*time.Minute, ipOther, 443, "tiny.example", "ok", "", "")
	r.ServerPayload, r.GoodputBps = 900, 3e6
	// The same injector a day later, on IPv6, and a name with markup.
	for i := range 2 {
		r := flow(24*time.Hour+time.Duration(i)*time.Minute, ipV6, 443, hostile, "reset", "post_psh", "post_psh:rst;rst")
		r.RSTs, r.RSTSeqChange, r.Fingerprint = 2, true, fpInjector
	}
	flow(24*time.Hour+5*time.Minute, ipV6, 443, "", "incomplete", "", "")

	fx.findings = []schemas.Finding{
		{FindingID: "a", Kind: schemas.KindSNIRSTInjection, Verdict: "confirmed", TargetIP: ipShared, TargetPort: 443, TargetName: "blocked.example",
			Trigger: "sni", Method: "rst", WindowStartNs: at(0), WindowEndNs: at(4 * time.Minute), Flows: 4, FailedFlows: 4, ControlFlows: 8,
			Confidence: 0.99, Evidence: "4 of 4 flows naming blocked.example failed", ExampleFlows: []string{"f0", "f3"}, Fingerprint: fpInjector},
		{FindingID: "b", Kind: schemas.KindIPBlocking, Verdict: "confirmed", TargetIP: ipBlocked, Trigger: "ip", Method: "drop",
			WindowStartNs: at(30 * time.Minute), WindowEndNs: at(36 * time.Minute), Flows: 6, FailedFlows: 6,
			Confidence: 0.8, Evidence: "all 6 flows failed at the handshake", Collateral: []string{"tilda-1.example", "tilda-2.example"}},
		{FindingID: "c", Kind: schemas.KindThrottling, Verdict: "likely", TargetIP: ipThrottle, TargetPort: 443, TargetName: "slow.example",
			Trigger: "sni", Method: "throttle", WindowStartNs: at(50 * time.Minute), WindowEndNs: at(53 * time.Minute), Flows: 3, FailedFlows: 3,
			Confidence: 0.7, Evidence: "goodput 145 kbit/s against 40 Mbit/s", RateBps: 145e3, Shape: "shaping", Targeted: true},
		{FindingID: "d", Kind: schemas.KindSNIRSTInjection, Verdict: "confirmed", TargetIP: ipV6, TargetPort: 443, TargetName: hostile,
			Trigger: "sni", Method: "rst", WindowStartNs: at(24 * time.Hour), WindowEndNs: at(24*time.Hour + time.Minute), Flows: 2, FailedFlows: 2,
			Confidence: 0.9, Evidence: "2 of 2 flows naming " + hostile + " failed", Fingerprint: fpInjector},
	}
	for i := range fx.findings {
		fx.findings[i].Vantage = "vp1" // as the flows they are about
	}
	return fx
}

// write commits the fixture under dir with the project's sink, the same
// writer replay uses; withFindings false leaves the findings dataset out.
func (fx *fixture) write(t testing.TB, dir string, withFindings bool) {
	t.Helper()
	ds, err := sink.Open(dir, sink.Config{Version: "test", Name: "fx"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range fx.flows {
		if err := ds.WriteFlow(&fx.flows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if withFindings {
		for i := range fx.findings {
			if err := ds.WriteFinding(&fx.findings[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
}
