package detect

import (
	"slices"

	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/schemas"
)

// summary is what the cross-flow rules need of one flow.
type summary struct {
	id         string
	vantage    string
	startNs    int64
	endNs      int64
	proto      string
	serverIP   string
	serverPort uint16
	name       string // SNI, QUIC SNI or HTTP Host
	trigger    string // sni, quic_sni, http_host
	outcome    string
	stage      string
	injection  float64
	fp         string
	evidence   []string
	issuer     string
	// Throughput of the server-to-client data phase.
	bytes    uint64
	rateBps  float64 // steady-state rate, after the first burst
	retrans  float64 // share of retransmitted bytes
	dataNs   int64
	avgSeg   float64 // mean server data segment size
	synSeen  bool
	bothWays bool
	srvRST   bool // some reset claimed to come from the server
}

// failedContent: the flow got past the handshake and died right after the
// client named what it wanted.
func (s *summary) failedContent() bool {
	switch {
	case s.outcome == OutcomeTimeout:
		return s.stage == StagePostPSH
	case s.outcome != OutcomeReset:
		return false
	case s.stage == StagePostPSH:
		// A client aborting its own request is no censorship; a reset
		// from the client side counts only with injection evidence
		// (a server-side vantage sees forged resets "from the client").
		return s.srvRST || s.injection >= 0.5
	}
	return s.stage == StageLater && s.injection >= 0.5
}

// failedHandshake: the flow never completed its handshake.
func (s *summary) failedHandshake() bool {
	return (s.outcome == OutcomeReset || s.outcome == OutcomeTimeout || s.outcome == OutcomeICMP) && (s.stage == StagePostSYN || s.stage == StagePostACK && s.injection >= 0.5)
}

func (s *summary) ok() bool { return s.outcome == OutcomeOK }

func summarize(st *flow.State, r *schemas.FlowRecord) *summary {
	s := &summary{
		id: r.FlowID, vantage: r.Vantage, startNs: r.StartNs, endNs: r.EndNs, proto: r.Proto,
		serverIP: r.ServerIP, serverPort: r.ServerPort,
		outcome: r.Outcome, stage: r.Stage, injection: r.Injection, fp: r.Fingerprint,
		issuer: r.CertIssuer, evidence: evidenceList(r),
		synSeen:  st.Dir[flow.FromClient].SawSYN,
		bothWays: r.ClientPkts > 0 && r.ServerPkts > 0,
		srvRST:   r.RSTFromServer > 0,
	}
	switch {
	case r.AppProto == "quic" && r.SNI != "":
		s.name, s.trigger = r.SNI, "quic_sni"
	case r.SNI != "":
		s.name, s.trigger = r.SNI, "sni"
	case r.HTTPHost != "":
		s.name, s.trigger = r.HTTPHost, "http_host"
	case r.ECH:
		s.trigger = "esni" // a ClientHello that hides its name
	}
	if d := st.Down; d != nil {
		s.bytes = d.Bytes
		s.dataNs = d.LastNs - d.FirstNs
		if d.Bytes > 0 {
			s.retrans = float64(d.RetransBytes) / float64(d.Bytes)
			s.avgSeg = float64(d.Bytes) / float64(max(d.Segments, 1))
		}
		s.rateBps = steadyRate(d)
	}
	return s
}

// steadyRate is the server-to-client rate after the first half second,
// which a token bucket's burst or slow start would otherwise inflate; for
// short transfers, the whole data phase.
func steadyRate(d *flow.Throughput) float64 {
	const skip = 5 // bins of 100 ms
	n := int((d.LastNs - d.FirstNs) / flow.ThroughputBinNs)
	if n > flow.ThroughputBins-1 {
		n = flow.ThroughputBins - 1
	}
	if n >= skip+5 {
		var b uint64
		for i := skip; i < n; i++ { // the last, partial bin is left out
			b += uint64(d.Bins[i])
		}
		return float64(b) * 8 / (float64(n-skip) * flow.ThroughputBinNs / 1e9)
	}
	if ns := d.LastNs - d.FirstNs; ns > 0 {
		return float64(d.Bytes-d.RetransBytes) * 8e9 / float64(ns)
	}
	return 0
}

func evidenceList(r *schemas.FlowRecord) []string {
	var e []string
	add := func(on bool, s string) {
		if on {
			e = append(e, s)
		}
	}
	add(r.RSTRace, "race")
	add(r.RSTSeqChange, "seq_change")
	add(r.RSTAckChange, "ack_change")
	add(r.RSTTTLDelta >= 2, "ttl_delta")
	add(r.RSTIPIDJump, "ipid_jump")
	add(r.RSTSeqBad, "seq_bad")
	add(r.RSTAck0, "ack0")
	add(r.RSTBurst, "burst")
	add(r.RSTWindow0, "window0")
	add(r.RSTNoAck, "no_ack")
	return e
}

// window holds the flows of one vantage that started in one span of
// packet time.
type window struct {
	startNs, endNs int64
	vantage        string
	byIP           map[string][]*summary
}

func (w *window) add(s *summary) {
	if w.byIP == nil {
		w.byIP = map[string][]*summary{}
	}
	w.byIP[s.serverIP] = append(w.byIP[s.serverIP], s)
}

// ips returns the window's server addresses in a stable order.
func (w *window) ips() []string {
	out := make([]string, 0, len(w.byIP))
	for ip := range w.byIP {
		out = append(out, ip)
	}
	slices.Sort(out)
	return out
}
