package flow

import "github.com/tamperscope/tamperscope/schemas"

// This file follows Zeek's TCP session model (TCPSessionAdapter.cc,
// TCP_Endpoint.cc, TCP_Reassembler.cc, Conn.cc and
// base/protocols/conn/main.zeek) closely enough that conn_state and history
// come out as Zeek writes them. Names mirror Zeek's so the two can be read
// side by side; weird-only branches are left out.

// Zeek endpoint states (EndpointState).
const (
	tcpInactive uint8 = iota
	tcpSynSent
	tcpSynAckSent
	tcpPartial
	tcpEstablished
	tcpClosed
	tcpReset
)

// History masks (TCP_Endpoint::HistoryMasks); the responder's are shifted
// left by 16.
const (
	histSYN      = 0x1
	histFIN      = 0x2
	histRST      = 0x4
	histFINRST   = 0x8
	histData     = 0x10
	histAck      = 0x20
	histMulti    = 0x40
	histUDPOrig  = 0x10 // UDP uses the data bit per side
	tooLargeSeqΔ = 1048576
)

// zEndpoint is the part of Zeek's TCP_Endpoint that most packets touch,
// one cache line; zCold holds the rest.
type zEndpoint struct {
	state, prevState   uint8
	didClose           bool
	sent               bool // UDP/ICMP: this side sent a packet
	nblk               uint8
	startSeq           uint32
	lastSeq, ackSeq    uint32
	seqWraps, ackWraps uint32
	finCnt             uint32
	finSeq             uint64
	// Reassembler model, for content gaps ('g'); blocks are in zCold.
	reassem uint64 // last_reassem_seq
	trim    uint64 // trim_seq
	// Retransmissions ('t') are common enough to count on this line.
	rxmtCnt, rxmtThresh uint32
}

type zCold struct {
	histSYN, histFIN    uint64
	histRST             uint64
	win0Cnt, win0Thresh uint32
	gapCnt, gapThresh   uint32
	blk                 [maxHoles]rng[uint64]
}

func (e *zEndpoint) reset() {
	*e = zEndpoint{reassem: 1, trim: 1, rxmtThresh: 1}
}

func (c *zCold) reset() {
	*c = zCold{win0Thresh: 1, gapThresh: 1}
}

func seqDelta(a, b uint32) int32 { return int32(a - b) }

func (e *zEndpoint) initStart(seq uint32) { e.startSeq = seq }
func (e *zEndpoint) startU32() uint32     { return e.startSeq }

func (e *zEndpoint) updateLast(seq uint32) {
	if seq < e.lastSeq {
		e.seqWraps++
	}
	e.lastSeq = seq
}

func (e *zEndpoint) updateAck(seq uint32) {
	if seq < e.ackSeq {
		e.ackWraps++
	}
	e.ackSeq = seq
}

func (e *zEndpoint) relative(cur, last, wraps uint32) (uint64, bool) {
	d := seqDelta(cur, last)
	if d < 0 {
		if wraps > 0 && cur > last {
			wraps--
		}
	} else if d > 0 && cur < last {
		wraps++
	}
	if wraps == 0 {
		d = seqDelta(cur, e.startU32())
		return uint64(int64(d)), d < 0
	}
	return uint64(int64(wraps)<<32+int64(cur)) - uint64(e.startSeq), false
}

func (e *zEndpoint) noDataAcked() bool {
	ack := uint64(e.ackWraps)<<32 + uint64(e.ackSeq)
	start := uint64(e.startSeq)
	return ack == start || ack == start+1
}

// size is TCP_Endpoint::Size: payload bytes by sequence numbers.
func (e *zEndpoint) size(peer *zEndpoint) uint64 {
	if e.prevState == tcpSynSent && e.state == tcpReset && peer.state == tcpInactive && !e.noDataAcked() {
		return 0
	}
	last := uint64(e.seqWraps)<<32 + uint64(e.lastSeq)
	ack := uint64(e.ackWraps)<<32 + uint64(e.ackSeq)
	var sz uint64
	if last > ack {
		sz = last - uint64(e.startSeq)
	} else {
		sz = ack - uint64(e.startSeq)
	}
	if sz != 0 {
		sz--
	}
	if e.finCnt > 0 && sz != 0 {
		sz--
	}
	return sz
}

func (s *State) isOrigSide(side uint8) bool { return side == s.cside }

func (s *State) setState(side uint8, st uint8) {
	e := &s.z[side]
	if st != e.state {
		e.prevState = e.state
		e.state = st
	}
}

func (s *State) addHistory(c byte) {
	if int(s.histLen) < maxHistory {
		s.hist[s.histLen] = c
		s.histLen++
	}
}

// checkHistory is Connection::CheckHistory: it records the letter the first
// time and reports whether it had been seen before.
func (s *State) checkHistory(side uint8, mask uint32, c byte) bool {
	if !s.isOrigSide(side) {
		mask <<= 16
		c += 'a' - 'A'
	}
	if s.histSeen&mask == 0 {
		s.histSeen |= mask
		s.addHistory(c)
		return false
	}
	return true
}

func (s *State) addSideHistory(side uint8, c byte) {
	if !s.isOrigSide(side) {
		c += 'a' - 'A'
	}
	s.addHistory(c)
}

// scaled is Connection::ScaledHistoryEntry: letters at 1, 10, 100... events.
func (s *State) scaled(side uint8, c byte, cnt, thresh *uint32) {
	*cnt++
	if *cnt == *thresh {
		s.addSideHistory(side, c)
		if nt := *thresh * 10; nt <= *thresh {
			*cnt = 0
		} else {
			*thresh = nt
		}
	}
}

// flipRoles swaps client and server, as Connection::FlipRoles.
func (s *State) flipRoles() {
	s.cside ^= 1
	s.Client, s.Server = s.Server, s.Client
	s.Dir[0], s.Dir[1] = s.Dir[1], s.Dir[0]
	s.buf[0], s.buf[1] = s.buf[1], s.buf[0]
	s.stopped[0], s.stopped[1] = s.stopped[1], s.stopped[0]
	if r := s.RST; r != nil {
		r.ClientPre, r.ServerPre = r.ServerPre, r.ClientPre
		for i := range r.Pkts[:r.N] {
			r.Pkts[i].Dir ^= 1
		}
	}
	s.ICMP.Dir ^= 1
	fs := s.firstSeen
	s.firstSeen = (fs&1)<<1 | (fs&2)>>1
	s.isPartial = false
	s.addHistory('^')
}

// zeekTCP runs one TCP packet from physical side through the model
// (TCPSessionAdapter::Process).
func (s *State) zeekTCP(p *schemas.PacketMeta, side uint8) {
	f := p.TCPFlags
	syn, fin, rst, ack := f&schemas.TCPSyn != 0, f&schemas.TCPFin != 0, f&schemas.TCPRst != 0, f&schemas.TCPAck != 0
	e, peer, ec := &s.z[side], &s.z[side^1], &s.zc[side]
	isOrig := s.isOrigSide(side)

	// SetPartialStatus.
	if isOrig {
		if s.firstSeen&1 == 0 {
			s.isPartial = !syn || ack
		}
	} else if s.firstSeen&2 == 0 && !s.isPartial {
		s.isPartial = !syn
	}

	length := int(p.PayloadLen)
	segLen := length
	if syn {
		segLen++
	}
	if fin {
		segLen++
	}
	if rst {
		segLen -= length
	}
	base, ackSeq := p.Seq, p.Ack
	onePast := base + uint32(segLen)

	// init_endpoint.
	switch e.state {
	case tcpInactive:
		last := onePast
		if syn {
			e.ackSeq = base
			e.initStart(base)
		} else {
			e.ackSeq = base - 1
			e.initStart(base - 1)
			last = base
		}
		e.lastSeq = last
	case tcpSynSent, tcpSynAckSent:
		if syn && base != e.startU32() {
			e.initStart(base)
			e.ackSeq = base
			e.lastSeq = onePast
		}
	case tcpEstablished, tcpPartial:
		if syn {
			e.initStart(base)
			e.ackSeq = base
			e.lastSeq = onePast
		}
	case tcpReset:
		if syn && e.prevState == tcpInactive {
			e.initStart(base)
			e.ackSeq = base
			e.lastSeq = onePast
		}
	}

	relSeq, underflow := e.relative(base, e.lastSeq, e.seqWraps)

	// update_history.
	bitsSet := b2i(syn) + b2i(fin) + b2i(rst)
	switch {
	case bitsSet > 1:
		if fin && rst {
			s.checkHistory(side, histFINRST, 'I')
		} else {
			s.checkHistory(side, histMulti, 'Q')
		}
	case bitsSet == 1:
		if syn {
			c := byte('S')
			if ack {
				c = 'H'
			}
			if s.checkHistory(side, histSYN, c) && relSeq != ec.histSYN {
				s.addSideHistory(side, c)
			}
			ec.histSYN = relSeq
		}
		if fin {
			if s.checkHistory(side, histFIN, 'F') && relSeq+uint64(length) != ec.histFIN {
				s.addSideHistory(side, 'F')
			}
			ec.histFIN = relSeq + uint64(length)
		}
		if rst {
			if s.checkHistory(side, histRST, 'R') && relSeq != ec.histRST {
				s.addSideHistory(side, 'R')
			}
			ec.histRST = relSeq
		}
	default:
		if length > 0 {
			s.checkHistory(side, histData, 'D')
		} else if ack {
			s.checkHistory(side, histAck, 'A')
		}
	}

	// update_window: only the zero-window accounting matters here.
	if p.Window == 0 && !rst && peer.state != tcpClosed && e.state != tcpReset {
		s.scaled(side, 'W', &ec.win0Cnt, &ec.win0Thresh)
	}

	if fin {
		e.finCnt++
		e.finSeq = relSeq + uint64(segLen)
	}

	var relAck uint64
	if ack {
		if peer.state == tcpInactive {
			relAck = 1
			peer.initStart(ackSeq - 1)
			peer.ackSeq = ackSeq - 1
			peer.lastSeq = ackSeq - 1
		} else {
			ra, under := peer.relative(ackSeq, peer.ackSeq, peer.ackWraps)
			if under {
				relAck = 0
			} else {
				relAck = ra
				if !rst {
					d := seqDelta(ackSeq, peer.ackSeq)
					if !(ackSeq == 0 && d > tooLargeSeqΔ) && d > 0 {
						peer.updateAck(ackSeq)
					}
				}
			}
		}
	}

	// update_last_seq.
	deltaLast := seqDelta(onePast, e.lastSeq)
	switch {
	case (syn || rst) && (deltaLast > tooLargeSeqΔ || deltaLast < -tooLargeSeqΔ):
	case fin && e.lastSeq == e.startU32()+1:
		e.updateLast(onePast)
	case e.state == tcpReset:
	case deltaLast > 0:
		e.updateLast(onePast)
	case length > 0:
		s.scaled(side, 'T', &e.rxmtCnt, &e.rxmtThresh)
	}

	doClose := s.stateMachine(side, base, ackSeq, length, deltaLast, syn, fin, rst, ack)
	// A role flip inside the state machine changes which side is the
	// originator, not which endpoint e and peer are.

	if ack {
		s.ackReceived(side^1, relAck)
	}
	relData := relSeq
	if syn {
		relData++
	}
	if length > 0 && !rst && !underflow {
		s.dataSent(side, relData, uint64(length))
	}
	if doClose && !e.didClose {
		e.didClose = true
	}
	// CheckPIA_FirstPacket.
	if s.isOrigSide(side) {
		s.firstSeen |= 1
	} else {
		s.firstSeen |= 2
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// stateMachine is TCPSessionAdapter::UpdateStateMachine; it returns
// do_close.
func (s *State) stateMachine(side uint8, base, ackSeq uint32, length int, deltaLast int32, syn, fin, rst, ack bool) bool {
	e, peer := &s.z[side], &s.z[side^1]
	isOrig := s.isOrigSide(side)
	doClose := false
	switch e.state {
	case tcpInactive:
		if syn {
			if isOrig {
				if ack {
					s.setState(side, tcpSynAckSent)
				} else {
					s.setState(side, tcpSynSent)
				}
			} else {
				if !ack && peer.state == tcpSynAckSent && base == e.startU32() {
					// SYN/SYN-ACK reversal: the originator's SYN-ACK was
					// seen before this SYN.
					s.isPartial = false
					s.flipRoles()
					s.setState(side^1, tcpEstablished)
					s.firstSeen |= 1
				}
				if peer.state == tcpSynSent {
					s.setState(side^1, tcpEstablished)
				}
				s.setState(side, tcpEstablished)
			}
		}
		if fin {
			s.setState(side, tcpClosed)
			doClose = true
		}
		if rst {
			s.setState(side, tcpReset)
			doClose = true
		}
		if e.state == tcpInactive {
			isOrig = s.isOrigSide(side)
			origState := s.z[s.cside].state
			switch {
			case !isOrig && length == 0 && origState == tcpSynSent:
				// An ack of the SYN before the SYN-ACK: not partial.
			case ack && peer.state == tcpEstablished:
				s.setState(side, tcpEstablished)
				s.isPartial = false
				if isOrig {
					s.firstSeen |= 1
				} else {
					s.firstSeen |= 2
				}
			default:
				s.setState(side, tcpPartial)
			}
		}
	case tcpSynSent, tcpSynAckSent:
		if fin {
			s.setState(side, tcpClosed)
			doClose = true
		}
		if rst {
			s.setState(side, tcpReset)
			doClose = true
		}
	case tcpEstablished, tcpPartial:
		if syn && e.state == tcpPartial && peer.state == tcpInactive && !ack {
			s.setState(side, tcpSynSent)
		}
		if fin && !rst {
			s.setState(side, tcpClosed)
			if peer.state == tcpReset && peer.prevState == tcpClosed {
				s.setState(side^1, tcpClosed)
			}
			doClose = true
		}
		if rst {
			s.setState(side, tcpReset)
			doClose = true
		}
	case tcpClosed:
		if rst && peer.state != tcpClosed {
			s.setState(side, tcpReset)
			if !e.didClose {
				doClose = true
			}
		}
	case tcpReset:
	}
	return doClose
}

// dataSent is TCP_Reassembler::DataSent reduced to what content-gap
// detection needs: which sequence ranges arrived.
func (s *State) dataSent(side uint8, seq, length uint64) {
	e := &s.z[side]
	ack := uint64(e.ackWraps)<<32 + uint64(e.ackSeq) - uint64(e.startSeq)
	upper := seq + length
	if seq < ack {
		if upper <= ack {
			return
		}
		seq = ack
	}
	if upper <= e.trim {
		return
	}
	if seq < e.trim {
		seq = e.trim
	}
	e.insertBlock(&s.zc[side], seq, upper)
}

func (e *zEndpoint) insertBlock(c *zCold, lo, hi uint64) {
	if lo <= e.reassem {
		if hi > e.reassem {
			e.reassem = hi
		}
		e.drainBlocks(c)
		return
	}
	if m, ok := mergeRange(c.blk[:], int(e.nblk), lo, hi, less[uint64]); ok {
		e.nblk = uint8(m)
	}
}

func (e *zEndpoint) drainBlocks(c *zCold) {
	k := uint8(0)
	for k < e.nblk && c.blk[k].lo <= e.reassem {
		e.reassem = max(e.reassem, c.blk[k].hi)
		k++
	}
	copy(c.blk[:], c.blk[k:e.nblk])
	e.nblk -= k
}

func isClean(e *zEndpoint) bool {
	return e.state == tcpEstablished || (e.state == tcpClosed && e.prevState == tcpEstablished)
}

// ackReceived is TCP_Reassembler::AckReceived / TrimToSeq / Undelivered:
// an ack beyond the data seen from side is a content gap.
func (s *State) ackReceived(side uint8, seq uint64) {
	e, c := &s.z[side], &s.zc[side]
	if e.finCnt > 0 && seq >= e.finSeq {
		seq = e.finSeq - 1
	}
	if seq <= e.trim {
		return
	}
	if seq > e.reassem {
		s.undelivered(side, seq)
	}
	// Drop blocks below the new trim point.
	k := uint8(0)
	for k < e.nblk && c.blk[k].hi <= seq {
		k++
	}
	copy(c.blk[:], c.blk[k:e.nblk])
	e.nblk -= k
	e.trim = seq
}

func (s *State) undelivered(side uint8, upTo uint64) {
	e, peer, c := &s.z[side], &s.z[side^1], &s.zc[side]
	if upTo <= 2 && s.isPartial {
		return
	}
	clean := isClean(e) && isClean(peer)
	for e.nblk > 0 && c.blk[0].lo < upTo {
		if clean {
			s.scaled(side, 'G', &c.gapCnt, &c.gapThresh)
		}
		e.reassem = c.blk[0].lo
		e.drainBlocks(c)
	}
	if upTo > e.reassem {
		if clean {
			s.scaled(side, 'G', &c.gapCnt, &c.gapThresh)
		}
		e.reassem = upTo
	}
}

// ConnState is Zeek's conn_state for the flow as it stands.
func (s *State) ConnState() string {
	switch s.Proto {
	case schemas.ProtoTCP:
	case schemas.ProtoUDP:
		o, r := s.z[s.cside].sent, s.z[s.cside^1].sent
		switch {
		case o && r:
			return "SF"
		case o:
			return "S0"
		case r:
			return "SHR"
		}
		return "OTH"
	default:
		return "OTH"
	}
	oe, re := &s.z[s.cside], &s.z[s.cside^1]
	os, rs := oe.state, re.state
	oInactive := os == tcpInactive || os == tcpPartial
	rInactive := rs == tcpInactive || rs == tcpPartial
	switch {
	case rs == tcpReset:
		if os == tcpSynSent || os == tcpSynAckSent || (os == tcpReset && oe.size(re) == 0 && re.size(oe) == 0) {
			return "REJ"
		}
		if oInactive {
			return "RSTRH"
		}
		return "RSTR"
	case os == tcpReset:
		if rInactive {
			if rstos0History(s.hist[:s.histLen]) {
				return "RSTOS0"
			}
			return "OTH"
		}
		return "RSTO"
	case rs == tcpClosed && os == tcpClosed:
		return "SF"
	case os == tcpClosed:
		if rInactive {
			return "SH"
		}
		return "S2"
	case rs == tcpClosed:
		if oInactive {
			return "SHR"
		}
		return "S3"
	case os == tcpSynSent && rs == tcpInactive:
		return "S0"
	case os == tcpEstablished && rs == tcpEstablished:
		return "S1"
	}
	return "OTH"
}

// rstos0History matches Zeek's /\^?S[^HAFGIQ]*R.*/ against the whole
// history.
func rstos0History(h []byte) bool {
	if len(h) > 0 && h[0] == '^' {
		h = h[1:]
	}
	if len(h) == 0 || h[0] != 'S' {
		return false
	}
	for _, c := range h[1:] {
		switch c {
		case 'R':
			return true
		case 'H', 'A', 'F', 'G', 'I', 'Q':
			return false
		}
	}
	return false
}

// zeekOther is the model for UDP, ICMP and other protocols: each side is
// active once it sent a packet; UDP marks D/d once per side.
func (s *State) zeekOther(side uint8) {
	s.z[side].sent = true
	if s.Proto == schemas.ProtoUDP {
		s.checkHistory(side, histUDPOrig, 'D')
	}
}
