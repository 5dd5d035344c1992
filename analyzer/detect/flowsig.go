package detect

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/schemas"
)

// Outcomes of a flow (FlowRecord.Outcome).
const (
	OutcomeOK           = "ok"
	OutcomeReset        = "reset"
	OutcomeTimeout      = "timeout"
	OutcomeICMP         = "icmp_unreachable"
	OutcomeIncomplete   = "incomplete"
	OutcomeInsufficient = "insufficient_evidence"
)

// Stages (FlowRecord.Stage), after the client's last kind of packet before
// the flow failed.
const (
	StagePostSYN = "post_syn"
	StagePostACK = "post_ack"
	StagePostPSH = "post_psh"
	StageLater   = "later_in_flow"
)

// burstNs groups resets that belong to one injection burst.
const burstNs = 2_000_000_000

// classify fills the outcome, stage, signature and reset evidence of r
// from st. nowNs is the latest packet time seen anywhere, so a flow whose
// silence reached the end of the capture is judged against that.
func classify(cfg *Config, st *flow.State, r *schemas.FlowRecord, nowNs int64, ttlBase func(vantage, ip string) (uint8, bool)) {
	switch st.Proto {
	case schemas.ProtoTCP:
		classifyTCP(cfg, st, r, nowNs, ttlBase)
	case schemas.ProtoUDP:
		classifyUDP(cfg, st, r, nowNs)
	}
}

func classifyUDP(cfg *Config, st *flow.State, r *schemas.FlowRecord, nowNs int64) {
	c, s := &st.Dir[flow.FromClient], &st.Dir[flow.FromServer]
	// The client retried long enough to have given up on an answer.
	retried := c.Pkts >= 3 && c.LastNs-st.StartNs >= int64(cfg.Timeout)/3
	silent := max(st.LastNs, nowNs)-st.StartNs >= int64(cfg.Timeout) || retried
	switch {
	case r.AppProto == "quic" && r.QUIC1RTT:
		r.Outcome = OutcomeOK
	case st.ICMP.Errors > 0 && s.Pkts == 0:
		r.Outcome, r.Stage, r.Signature = OutcomeICMP, StagePostPSH, "udp:icmp"
	case r.AppProto == "quic" && s.Pkts <= 2 && retried:
		// Initials kept coming while the server's answers, if any, stopped
		// after the first: the 4-tuple was blackholed after the Initial.
		r.Outcome, r.Stage, r.Signature = OutcomeTimeout, StagePostPSH, "quic:timeout"
	case s.Pkts > 0:
		r.Outcome = OutcomeOK
	case c.Pkts > 0 && silent:
		r.Outcome, r.Stage, r.Signature = OutcomeTimeout, StagePostPSH, "udp:timeout"
	default:
		r.Outcome = OutcomeIncomplete
	}
}

func classifyTCP(cfg *Config, st *flow.State, r *schemas.FlowRecord, nowNs int64, ttlBase func(vantage, ip string) (uint8, bool)) {
	c, s := &st.Dir[flow.FromClient], &st.Dir[flow.FromServer]
	ev := st.RST // nil: no reset
	handshake := s.SYNs > 0 && st.HandshakeRTTNs > 0

	if !c.SawSYN && !s.SawSYN {
		// Midstream: without the handshake the stage and the injection
		// evidence cannot be judged reliably.
		if c.Pkts == 0 || s.Pkts == 0 {
			r.Outcome = OutcomeInsufficient
			return
		}
	}
	if c.Pkts == 0 || (s.Pkts == 0 && ev == nil && st.ICMP.Errors == 0 && !c.SawSYN) {
		r.Outcome = OutcomeInsufficient // one direction only
		return
	}

	// The first reset, from either side, is the event.
	if ev != nil && ev.N > 0 {
		rst := &ev.Pkts[0]
		r.Stage = stageAt(st, rst.TsNs)
		r.Outcome = OutcomeReset
		r.Signature = r.Stage + ":" + rstPattern(ev)
		resetEvidence(cfg, st, r, ttlBase)
		if r.Stage == StageLater && r.Injection < 0.3 {
			// The exchange completed and nothing about the reset looks
			// forged: servers, load balancers and clients end connections
			// this way.
			r.Outcome = OutcomeOK
		}
		return
	}
	if st.ICMP.Errors > 0 && !handshake {
		r.Outcome, r.Stage = OutcomeICMP, StagePostSYN
		r.Signature = fmt.Sprintf("post_syn:icmp%d/%d", st.ICMP.Type, st.ICMP.Code)
		return
	}
	end := max(nowNs, st.LastNs)
	if s.DataPkts > 0 && s.Retrans > 0 && !clientAcked(st) && end-s.FirstDataNs >= int64(cfg.Timeout) {
		// The server answered, but none of its data was ever
		// acknowledged, however long it retransmitted: the reply was
		// dropped on the way to the client (seen from a server-side
		// vantage).
		r.Outcome, r.Stage, r.Signature = OutcomeTimeout, StagePostPSH, "post_psh:reply_dropped"
		return
	}
	if s.FINs > 0 || (c.FINs > 0 && s.DataPkts > 0) {
		r.Outcome = OutcomeOK
		return
	}
	switch {
	case !handshake && s.SYNs == 0:
		// SYNs, never answered.
		if end-c.LastNs+(c.LastNs-st.StartNs) >= int64(cfg.Timeout) {
			r.Outcome, r.Stage, r.Signature = OutcomeTimeout, StagePostSYN, "post_syn:timeout"
		} else {
			r.Outcome = OutcomeIncomplete
		}
	case c.DataPkts > 0 && (s.DataPkts == 0 || s.LastDataNs < c.FirstDataNs) && !acked(st):
		// Client data never acknowledged, however often it was sent
		// again: dropped on the way.
		if end-c.FirstDataNs >= int64(cfg.Timeout) && c.Retrans > 0 {
			r.Outcome, r.Stage = OutcomeTimeout, StagePostPSH
			r.Signature = "post_psh:timeout"
		} else {
			r.Outcome = OutcomeIncomplete
		}
	case s.DataPkts > 0:
		r.Outcome = OutcomeOK
	default:
		r.Outcome = OutcomeIncomplete
	}
}

// clientAcked reports whether the client acknowledged any server data.
func clientAcked(st *flow.State) bool {
	c, s := &st.Dir[flow.FromClient], &st.Dir[flow.FromServer]
	return c.SawAck && int32(c.MaxAck-(s.ISN+1)) > 0
}

// acked reports whether the server acknowledged all the client's data.
func acked(st *flow.State) bool {
	c, s := &st.Dir[flow.FromClient], &st.Dir[flow.FromServer]
	return s.SawAck && int32(s.MaxAck-c.MaxSeq) >= 0
}

// stageAt says what the client had done before time ts.
func stageAt(st *flow.State, ts int64) string {
	c, s := &st.Dir[flow.FromClient], &st.Dir[flow.FromServer]
	switch {
	case c.DataPkts == 0 || c.FirstDataNs > ts:
		if st.HandshakeRTTNs > 0 && st.StartNs+st.HandshakeRTTNs <= ts {
			return StagePostACK
		}
		return StagePostSYN
	case s.DataPkts == 0 || s.FirstDataNs > ts:
		return StagePostPSH
	}
	return StageLater
}

// rstPattern renders the resets of the first burst: "rst", "rst+ack",
// "rst;rst+ack", and the seq/ack forms "rst=rst" (same ack), "rst!=rst"
// (ack changes), "rst;rst0" (one ack 0).
func rstPattern(ev *flow.RSTEvidence) string {
	var parts []string
	var acks []uint32
	t0 := ev.Pkts[0].TsNs
	ack0 := false
	for i := 0; i < int(ev.N) && len(parts) < 4; i++ {
		p := &ev.Pkts[i]
		if p.TsNs-t0 > burstNs {
			break
		}
		tok := "rst"
		if p.Flags&schemas.TCPAck != 0 {
			tok = "rst+ack"
		}
		parts = append(parts, tok)
		acks = append(acks, p.Ack)
		if p.Ack == 0 {
			ack0 = true
		}
	}
	if len(parts) == 2 && parts[0] == "rst" && parts[1] == "rst" {
		switch {
		case ack0:
			return "rst;rst0"
		case acks[0] == acks[1]:
			return "rst=rst"
		default:
			return "rst!=rst"
		}
	}
	if len(parts) > 2 {
		return fmt.Sprintf("%s;x%d", strings.Join(uniq(parts), ";"), len(parts))
	}
	return strings.Join(parts, ";")
}

func uniq(s []string) []string {
	var out []string
	for _, v := range s {
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}

// resetEvidence judges every stored reset against its claimed sender's
// earlier packets and folds the evidence into r.
func resetEvidence(cfg *Config, st *flow.State, r *schemas.FlowRecord, ttlBase func(vantage, ip string) (uint8, bool)) {
	ev := st.RST
	c, s := &st.Dir[flow.FromClient], &st.Dir[flow.FromServer]
	var fp fingerprint
	t0 := ev.Pkts[0].TsNs
	var seqs, acks []uint32
	var dirs []flow.Dir
	flagsSeen := uint8(0)
	for i := 0; i < int(ev.N); i++ {
		p := &ev.Pkts[i]
		if p.TsNs-t0 > burstNs {
			break
		}
		pre, other := &ev.ServerPre, c
		if p.Dir == flow.FromClient {
			pre, other = &ev.ClientPre, s
		}
		// TTL against the sender's own earlier packets, or the address's
		// usual TTL from other flows when the reset came first.
		refTTL, haveRef := pre.LastTTL, pre.Pkts > 0
		if !haveRef && p.Dir == flow.FromServer {
			refTTL, haveRef = ttlBase(r.Vantage, r.ServerIP)
		}
		if haveRef {
			d := int16(p.TTL) - int16(refTTL)
			if d < 0 {
				d = -d
			}
			r.RSTTTLDelta = max(r.RSTTTLDelta, d)
		}
		if st.IPVersion == 4 && pre.Pkts > 0 && p.IPID != 0 {
			// IP ID 0 proves nothing: Linux sends resets for closed
			// sockets with ID 0, and so does an iptables REJECT.
			step := (p.IPID - pre.LastIPID) & 0xffff
			switch {
			case step == 0 && pre.LastIPID != 0:
				r.RSTIPIDJump = true // a copy of the sender's last packet, not its next
			case step > max(cfg.IPIDJump, 4*pre.MaxIPIDStep):
				r.RSTIPIDJump = true
			}
		}
		// A reset claiming to come from a side that has sent nothing
		// but its SYN must carry that side's next sequence number; one
		// from a side that already sent data cannot still carry ISN+1.
		sender := s
		if p.Dir == flow.FromClient {
			sender = c
		}
		if sender.SawSYN {
			d := int32(p.Seq - (sender.ISN + 1))
			switch {
			case sender.DataPkts == 0 || sender.FirstDataNs > p.TsNs:
				if d > 1 || d < -1 {
					r.RSTSeqBad = true
				}
			case d == 0:
				r.RSTSeqBad = true
			}
		}
		if p.Flags&schemas.TCPAck != 0 {
			if p.Ack == 0 {
				r.RSTAck0 = true
			} else if other.SawSYN {
				// The ack must not run ahead of what the other side sent.
				if int32(p.Ack-(other.MaxSeq)) > 1 {
					r.RSTSeqBad = true
				}
			}
			if p.Window == 0 && s.Window != 0 && p.Dir == flow.FromServer {
				r.RSTWindow0 = true
			}
		} else if st.HandshakeRTTNs > 0 {
			r.RSTNoAck = true
		}
		seqs = append(seqs, p.Seq)
		acks = append(acks, p.Ack)
		dirs = append(dirs, p.Dir)
		flagsSeen |= 1 << b2u(p.Flags&schemas.TCPAck != 0)
		if p.LastClientDataNs > 0 && r.RSTDelayNs == 0 {
			r.RSTDelayNs = p.TsNs - p.LastClientDataNs
		}
		fp.add(p, pre)
	}
	// Weaver's RST SEQ CHANGE: a later reset jumps ahead of the first and
	// beyond anything its sender ever sent. A closed socket answering
	// each late segment with a reset also changes seq, but never beyond
	// its own data.
	for i := 1; i < len(seqs); i++ {
		sender := s
		if dirs[i] == flow.FromClient {
			sender = c
		}
		if int32(seqs[i]-seqs[0]) > 2 && (!sender.SawSYN && sender.DataPkts == 0 || int32(seqs[i]-sender.MaxSeq) > 2) {
			r.RSTSeqChange = true
		}
		if acks[i] != acks[0] {
			r.RSTAckChange = true
		}
	}
	r.RSTBurst = flagsSeen == 3
	// The claimed sender kept talking after "its" reset: an injection
	// race (the server's side is tracked on the hot path; the client's
	// shows as packets after its last stored reset).
	r.RSTRace = ev.ServerPktsAfter > 0
	if last := lastRST(ev, flow.FromClient); last > 0 && c.LastNs > last {
		r.RSTRace = true
	}
	r.Injection = injectionScore(cfg, st, r)
	r.Fingerprint = fp.sum()
}

// lastRST is the time of the last stored reset from dir; 0 if none.
func lastRST(ev *flow.RSTEvidence, dir flow.Dir) int64 {
	var t int64
	for i := 0; i < int(ev.N); i++ {
		if ev.Pkts[i].Dir == dir {
			t = ev.Pkts[i].TsNs
		}
	}
	if ev.N < flow.MaxRSTs || t == 0 {
		return t
	}
	return 0 // more resets than stored: the last one is unknown
}

// injectionScore combines independent pieces of evidence: 1 - prod(1-w).
// Weights reflect how rarely each appears on benign resets (REFERENCES.md
// section 1: TTL clean on >99 % of connections, IP ID on >95 %).
func injectionScore(cfg *Config, st *flow.State, r *schemas.FlowRecord) float64 {
	keep := 1.0
	add := func(on bool, w float64) {
		if on {
			keep *= 1 - w
		}
	}
	add(r.RSTRace, 0.7)
	add(r.RSTSeqChange, 0.5)
	add(r.RSTTTLDelta >= 2, 0.4)
	add(r.RSTTTLDelta >= 5, 0.2)
	add(r.RSTIPIDJump, 0.3)
	add(r.RSTSeqBad, 0.3)
	add(r.RSTAck0, 0.4)
	add(r.RSTBurst, 0.3)
	add(r.RSTWindow0, 0.05)
	add(r.RSTNoAck, 0.05)
	// A reset faster than the server could answer came from closer.
	add(st.SynRTTNs >= int64(cfg.MinRTTForTiming) && r.RSTDelayNs > 0 && r.RSTDelayNs*2 < st.SynRTTNs, 0.5)
	return 1 - keep
}

// fingerprint hashes how an injector behaves, not what it answered: flag
// sequence, TTL and IP-ID behaviour against the imitated sender, window,
// seq/ack style. Flows reset by the same device share it.
type fingerprint struct {
	parts []string
}

func (f *fingerprint) add(p *flow.RSTPacket, pre *flow.NetTrace) {
	if len(f.parts) >= 6 {
		return
	}
	ttl := "ttl?"
	if pre.Pkts > 0 {
		switch d := int(p.TTL) - int(pre.LastTTL); {
		case d == 0:
			ttl = "ttl="
		case d > -2 && d < 2:
			ttl = "ttl~"
		default:
			ttl = "ttlx"
		}
	}
	ipid := "id?"
	switch {
	case p.IPID == 0:
		ipid = "id0"
	case pre.Pkts > 0 && p.IPID == pre.LastIPID:
		ipid = "id="
	case pre.Pkts > 0 && (p.IPID-pre.LastIPID)&0xffff < 16:
		ipid = "id+"
	case pre.Pkts > 0:
		ipid = "idx"
	}
	fl := "R"
	if p.Flags&schemas.TCPAck != 0 {
		fl = "RA"
	}
	win := "w0"
	if p.Window != 0 {
		win = fmt.Sprintf("w%d", p.Window)
	}
	ack := "a"
	if p.Ack == 0 {
		ack = "a0"
	}
	f.parts = append(f.parts, strings.Join([]string{p.Dir.String()[:1], fl, ttl, ipid, win, ack}, "/"))
}

func (f *fingerprint) sum() string {
	if len(f.parts) == 0 {
		return ""
	}
	// A set, not a sequence: the same device sends one or several resets
	// from one connection to the next (SIGCOMM'23 appendix B).
	slices.Sort(f.parts)
	h := fnv.New64a()
	h.Write([]byte(strings.Join(slices.Compact(f.parts), "|")))
	return fmt.Sprintf("fp-%012x", h.Sum64()&0xffffffffffff)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
