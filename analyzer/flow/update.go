package flow

import (
	"github.com/tamperscope/tamperscope/schemas"
)

// defaultReorderNs is the shortest reorder window (Wireshark's default
// out-of-order threshold).
const defaultReorderNs = 3_000_000

func isICMPError(p *schemas.PacketMeta) bool {
	return (p.Proto == schemas.ProtoICMP || p.Proto == schemas.ProtoICMPv6) && p.Quoted.Src.IsValid() && p.Quoted.Dst.IsValid()
}

func (s *State) sideOf(p *schemas.PacketMeta) uint8 {
	if isAddr(p.Src, &s.Key.LoAddr) && p.SrcPort == s.Key.LoPort {
		return 0
	}
	return 1
}

func (s *State) dirOf(side uint8) Dir {
	if side == s.cside {
		return FromClient
	}
	return FromServer
}

// packet accounts one packet of the flow and returns its direction.
func (s *State) packet(p *schemas.PacketMeta, t *Table) Dir {
	side := s.sideOf(p)
	if s.Proto == schemas.ProtoTCP {
		s.zeekTCP(p, side)
	} else {
		s.zeekOther(side)
	}
	// Direction after the model ran: it may have flipped the roles.
	d := s.dirOf(side)
	ds := &s.Dir[d]
	ts := p.TimestampNs
	switch s.Proto {
	case schemas.ProtoTCP:
		s.tcpTrack(p, d, t)
	}
	ds.Pkts++
	ds.IPBytes += uint64(p.IPLen)
	ds.Payload += uint64(p.PayloadLen)
	ds.LastNs = ts
	if p.PayloadLen > 0 {
		if ds.DataPkts == 0 {
			ds.FirstDataNs = ts
		}
		ds.DataPkts++
		ds.LastDataNs = ts
	}
	ds.Net.add(p)
	return d
}

func (s *State) tcpTrack(p *schemas.PacketMeta, d Dir, t *Table) {
	f := p.TCPFlags
	syn, fin, rst, ack := f&schemas.TCPSyn != 0, f&schemas.TCPFin != 0, f&schemas.TCPRst != 0, f&schemas.TCPAck != 0
	ds := &s.Dir[d]
	ts := p.TimestampNs
	if syn {
		ds.SYNs++
		if !ds.SawSYN || (ds.ISN != p.Seq && ds.DataPkts == 0) {
			ds.ISN, ds.SawSYN = p.Seq, true
			ds.seq.start(p.Seq + 1)
			ds.NextSeq, ds.MaxSeq = p.Seq+1, p.Seq+1
		}
		if p.TCPOpts&schemas.OptWScale != 0 {
			ds.WScale = p.WScale
		}
		switch {
		case d == FromClient && !ack && s.synAckNs == 0:
			s.synSentNs = ts
		case d == FromServer && ack && s.synAckNs == 0 && s.synSentNs != 0:
			s.synAckNs = ts
			s.SynRTTNs = ts - s.synSentNs
			s.serverISNp1 = p.Seq + 1
			s.hsWait = true
		}
	} else if s.hsWait && d == FromClient && ack && !rst && p.Ack == s.serverISNp1 {
		// hsWait is synAckNs != 0 && HandshakeRTTNs == 0 kept on the hot
		// line; a zero RTT leaves it set.
		s.HandshakeRTTNs = ts - s.synSentNs
		s.hsWait = s.HandshakeRTTNs == 0
	}
	if fin {
		ds.FINs++
	}
	if rst {
		ds.RSTs++
		s.rstEvidence(p, d, t)
	} else if d == FromServer && s.srvRST {
		r := s.RST
		if r.ServerPktsAfter == 0 {
			r.FirstAfterNs = ts
		}
		r.ServerPktsAfter++
		if p.PayloadLen > 0 {
			r.ServerDataAfter++
		}
	}
	if ack && (!ds.SawAck || seqGT(p.Ack, ds.MaxAck)) {
		ds.MaxAck, ds.SawAck = p.Ack, true
	}
	ds.Window = p.Window
	if p.Window == 0 && !rst {
		ds.ZeroWindows++
	}
	if p.PayloadLen == 0 || rst {
		return
	}
	start := p.Seq
	if syn {
		start++
	}
	n := p.PayloadLen
	retrans := false
	switch ds.seq.add(start, start+n) {
	case segNew:
		ds.lastAdvance = ts
	case segRetrans:
		retrans = true
	case segFill:
		win := max(s.SynRTTNs, defaultReorderNs)
		if ts-ds.lastAdvance <= win {
			ds.OOO++
		} else {
			retrans = true
		}
	}
	if retrans {
		ds.Retrans++
		ds.RetransBytes += uint64(n)
	}
	ds.NextSeq, ds.MaxSeq = ds.seq.nxt, ds.seq.max
	if d == FromServer {
		dn := t.down(s.idx)
		if !s.hasDown {
			*dn = Throughput{}
			s.Down, s.hasDown = dn, true
		}
		dn.add(ts, n, retrans)
	}
	if len(p.Payload) > 0 && !s.stopped[d] && t.cfg.StreamBytes > 0 {
		b := t.acquire(s, d)
		if b == nil {
			return
		}
		if !b.based {
			b.base, b.based = start, true
			if ds.SawSYN {
				b.base = ds.ISN + 1
			}
		}
		if !b.addTCP(start, p.Payload, t.cfg.StreamBytes) {
			t.stats.StreamDrops++
		}
	}
}

func (s *State) rstEvidence(p *schemas.PacketMeta, d Dir, t *Table) {
	r := s.RST
	if r == nil {
		r = t.acquireRST()
		s.RST = r
		r.ClientPre, r.ServerPre = s.Dir[FromClient].Net, s.Dir[FromServer].Net
	}
	r.Count++
	if d == FromServer {
		s.srvRST = true
	}
	if int(r.N) < MaxRSTs {
		r.Pkts[r.N] = RSTPacket{
			TsNs:             p.TimestampNs,
			Dir:              d,
			Flags:            p.TCPFlags,
			Seq:              p.Seq,
			Ack:              p.Ack,
			Window:           p.Window,
			TTL:              p.TTL,
			IPID:             p.IPID,
			PayloadLen:       p.PayloadLen,
			LastClientDataNs: s.Dir[FromClient].LastDataNs,
		}
		r.N++
	}
}

func (tp *Throughput) add(ts int64, n uint32, retrans bool) {
	if tp.Segments == 0 {
		tp.FirstNs = ts
	} else if gap := ts - tp.LastNs; gap > tp.MaxGapNs {
		tp.MaxGapNs = gap
	}
	if ts > tp.LastNs {
		tp.LastNs = ts
	}
	tp.Segments++
	tp.Bytes += uint64(n)
	if retrans {
		tp.RetransBytes += uint64(n)
		return
	}
	if bin := (ts - tp.FirstNs) / ThroughputBinNs; bin >= 0 && bin < ThroughputBins {
		tp.Bins[bin] += n
	}
}

// icmpError records an ICMP error on the flow it quotes and returns the
// direction the error travels (FromServer: toward the client).
func (s *State) icmpError(p *schemas.PacketMeta) Dir {
	q := &p.Quoted
	side := uint8(1)
	if isAddr(q.Src, &s.Key.LoAddr) && q.SrcPort == s.Key.LoPort {
		side = 0
	}
	d := FromClient
	if side == s.cside {
		d = FromServer
	}
	ic := &s.ICMP
	if ic.Errors == 0 {
		ic.Type, ic.Code, ic.FirstNs, ic.From, ic.Dir = p.ICMPType, p.ICMPCode, p.TimestampNs, p.Src, d
	}
	ic.Errors++
	return d
}

// isReuse is TCPSessionAdapter::IsReuse: a SYN (or, for a flow whose
// originator never spoke, a SYN-ACK) with a new initial sequence number
// starts a new connection. Unlike Zeek, a SYN repeating the ISN of a closed
// flow stays in it: a client retransmitting its SYN after an injected RST
// is the same attempt.
func (s *State) isReuse(p *schemas.PacketMeta) bool {
	f := p.TCPFlags
	if f&schemas.TCPSyn == 0 {
		return false
	}
	o, r := &s.z[s.cside], &s.z[s.cside^1]
	conn := o
	if f&schemas.TCPAck != 0 {
		if o.state != tcpInactive {
			return false
		}
		conn = r
	}
	if p.Seq == conn.startU32() {
		return false
	}
	closed := o.didClose || r.didClose
	if !closed && f&schemas.TCPAck == 0 && conn.state == tcpSynAckSent && r.state == tcpInactive && p.Seq == r.startU32() {
		return false
	}
	return true
}
