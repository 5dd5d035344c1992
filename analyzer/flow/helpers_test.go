package flow

import (
	"net/netip"

	"github.com/tamperscope/tamperscope/schemas"
)

const (
	fS = schemas.TCPSyn
	fA = schemas.TCPAck
	fF = schemas.TCPFin
	fR = schemas.TCPRst
	fP = schemas.TCPPsh
)

var (
	cliAddr = netip.MustParseAddr("10.0.0.1")
	srvAddr = netip.MustParseAddr("93.184.216.34")
)

// conv builds the packets of one TCP conversation with consistent sequence
// numbers: c and s are the next sequence numbers of client and server.
type conv struct {
	t        int64
	c, s     uint32
	cp, sp   uint16
	cisn     uint32
	sisn     uint32
	ttlC     uint8
	ttlS     uint8
	ipidC    uint32
	ipidS    uint32
	sizeData bool
}

func newConv() *conv {
	return &conv{t: 1_700_000_000_000_000_000, c: 1000, s: 5000, cp: 40000, sp: 443, cisn: 1000, sisn: 5000, ttlC: 64, ttlS: 57, ipidC: 100, ipidS: 900}
}

// pkt returns one packet; fromClient chooses the direction, n the payload
// length. seq and ack are taken from the conversation and advanced.
func (v *conv) pkt(fromClient bool, flags uint8, n int) schemas.PacketMeta {
	v.t += 1_000_000
	p := schemas.PacketMeta{TimestampNs: v.t, IPVersion: 4, Proto: schemas.ProtoTCP, TCPFlags: flags, Window: 65535, PayloadLen: uint32(n), IPLen: uint16(40 + n)}
	if n > 0 {
		p.Payload = make([]byte, n)
	}
	adv := uint32(n)
	if flags&(fS|fF) != 0 {
		adv++
	}
	if flags&fR != 0 {
		adv = 0
	}
	if fromClient {
		p.Src, p.Dst, p.SrcPort, p.DstPort = cliAddr, srvAddr, v.cp, v.sp
		p.Seq = v.c
		p.TTL, p.IPID = v.ttlC, v.ipidC
		v.ipidC++
		if flags&fA != 0 {
			p.Ack = v.s
		}
		v.c += adv
	} else {
		p.Src, p.Dst, p.SrcPort, p.DstPort = srvAddr, cliAddr, v.sp, v.cp
		p.Seq = v.s
		p.TTL, p.IPID = v.ttlS, v.ipidS
		v.ipidS++
		if flags&fA != 0 {
			p.Ack = v.c
		}
		v.s += adv
	}
	return p
}

func udpPkt(ts int64, src netip.Addr, sp uint16, dst netip.Addr, dp uint16, payload []byte) schemas.PacketMeta {
	return schemas.PacketMeta{TimestampNs: ts, IPVersion: 4, Proto: schemas.ProtoUDP, Src: src, Dst: dst, SrcPort: sp, DstPort: dp,
		PayloadLen: uint32(len(payload)), Payload: payload, IPLen: uint16(28 + len(payload)), TTL: 64}
}

// collector records the flows a table ends.
type collector struct {
	recs    []schemas.FlowRecord
	reasons []EndReason
}

func (c *collector) onEnd(st *State, r EndReason) {
	var rec schemas.FlowRecord
	st.Record(&rec)
	c.recs = append(c.recs, rec)
	c.reasons = append(c.reasons, r)
}
