package decode

import (
	"encoding/binary"
	"net/netip"
)

// Frame builders for tests: each layer is written byte by byte from its
// RFC layout, independently of the decoder.

var (
	cli4 = netip.MustParseAddr("192.0.2.10")
	srv4 = netip.MustParseAddr("198.51.100.20")
	cli6 = netip.MustParseAddr("2001:db8::10")
	srv6 = netip.MustParseAddr("2001:db8:1::20")
	out4 = netip.MustParseAddr("203.0.113.1") // outer tunnel endpoints
	out6 = netip.MustParseAddr("2001:db8:ffff::1")
	end4 = netip.MustParseAddr("203.0.113.2")
	end6 = netip.MustParseAddr("2001:db8:ffff::2")
)

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

type v4hdr struct {
	src, dst netip.Addr
	proto    uint8
	ttl      uint8
	id       uint16
	flagsOff uint16 // flags and offset word as on the wire
	opts     []byte // multiple of 4
	totalLen int    // 0: computed
}

func (h v4hdr) build(payload []byte) []byte {
	ihl := 20 + len(h.opts)
	b := make([]byte, ihl, ihl+len(payload))
	b[0] = 0x40 | uint8(ihl/4)
	tl := h.totalLen
	if tl == 0 {
		tl = ihl + len(payload)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(tl))
	binary.BigEndian.PutUint16(b[4:], h.id)
	binary.BigEndian.PutUint16(b[6:], h.flagsOff)
	b[8] = h.ttl
	b[9] = h.proto
	s, d := h.src.As4(), h.dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], h.opts)
	return append(b, payload...)
}

type v6hdr struct {
	src, dst netip.Addr
	nh       uint8
	hop      uint8
	flow     uint32
}

func (h v6hdr) build(payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	binary.BigEndian.PutUint32(b, 6<<28|h.flow)
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = h.nh
	b[7] = h.hop
	s, d := h.src.As16(), h.dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, payload...)
}

// ext6 builds a generic IPv6 extension header (hop-by-hop, routing,
// destination options) of 8*(units+1) bytes.
func ext6(nh uint8, units uint8) []byte {
	b := make([]byte, 8*(int(units)+1))
	b[0] = nh
	b[1] = units
	return b
}

func frag6(nh uint8, off uint16, more bool, id uint32) []byte {
	b := make([]byte, 8)
	b[0] = nh
	w := off &^ 7
	if more {
		w |= 1
	}
	binary.BigEndian.PutUint16(b[2:], w)
	binary.BigEndian.PutUint32(b[4:], id)
	return b
}

type tcphdr struct {
	sp, dp   uint16
	seq, ack uint32
	flags    uint8
	win      uint16
	opts     []byte // multiple of 4
}

func (h tcphdr) build(payload []byte) []byte {
	n := 20 + len(h.opts)
	b := make([]byte, n, n+len(payload))
	binary.BigEndian.PutUint16(b, h.sp)
	binary.BigEndian.PutUint16(b[2:], h.dp)
	binary.BigEndian.PutUint32(b[4:], h.seq)
	binary.BigEndian.PutUint32(b[8:], h.ack)
	b[12] = uint8(n/4) << 4
	b[13] = h.flags
	binary.BigEndian.PutUint16(b[14:], h.win)
	copy(b[20:], h.opts)
	return append(b, payload...)
}

// synOpts: MSS 1460, SACK-permitted, timestamps 0x01020304/0, NOP, wscale 7.
var synOpts = []byte{
	2, 4, 0x05, 0xb4,
	4, 2,
	8, 10, 1, 2, 3, 4, 0, 0, 0, 0,
	1,
	3, 3, 7,
}

// sackOpts: NOP NOP, SACK one block, NOP NOP, timestamps.
var sackOpts = []byte{
	1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2,
	1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8,
}

func udpDgram(sp, dp uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b, sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func icmpMsg(typ, code uint8, rest uint32, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], rest)
	return append(b, body...)
}

var (
	macDst = []byte{0x02, 0, 0, 0, 0, 1}
	macSrc = []byte{0x02, 0, 0, 0, 0, 2}
)

func eth(et uint16, payload []byte) []byte {
	return cat(macDst, macSrc, u16(et), payload)
}

// tag is one VLAN tag: the TPID goes before it, so it carries the TCI and
// the next EtherType.
func tag(tci, next uint16) []byte { return cat(u16(tci), u16(next)) }

func mplsLabel(label uint32, bottom bool) []byte {
	w := label<<12 | 64
	if bottom {
		w |= 1 << 8
	}
	return binary.BigEndian.AppendUint32(nil, w)
}

func pppoeSession(proto uint16, payload []byte) []byte {
	return cat([]byte{0x11, 0}, u16(0x1234), u16(uint16(2+len(payload))), u16(proto), payload)
}

func sll(proto uint16, payload []byte) []byte {
	return cat(u16(0), u16(1), u16(6), macSrc, []byte{0, 0}, u16(proto), payload)
}

func sll2(proto uint16, payload []byte) []byte {
	return cat(u16(proto), u16(0), []byte{0, 0, 0, 3}, u16(1), []byte{0, 6}, macSrc, []byte{0, 0}, payload)
}

func nullLE(af uint32, payload []byte) []byte {
	return cat(binary.LittleEndian.AppendUint32(nil, af), payload)
}

func nullBE(af uint32, payload []byte) []byte {
	return cat(binary.BigEndian.AppendUint32(nil, af), payload)
}

func greHdr(flags, proto uint16, extra int) []byte {
	return cat(u16(flags), u16(proto), make([]byte, extra))
}

func vxlanHdr(vni uint32) []byte {
	return cat([]byte{0x08, 0, 0, 0}, binary.BigEndian.AppendUint32(nil, vni<<8))
}

func geneveHdr(optWords uint8, proto uint16) []byte {
	return cat([]byte{optWords & 0x3f, 0}, u16(proto), []byte{0, 0, 1, 0}, make([]byte, 4*int(optWords)))
}

// nflogRec builds an NFLOG record: header, a prefix TLV and the payload
// TLV, with TLV fields in the given byte order.
func nflogRec(family uint8, order binary.AppendByteOrder, payload []byte) []byte {
	b := []byte{family, 0, 0, 5}
	b = order.AppendUint16(b, 8)
	b = order.AppendUint16(b, 10) // NFULA_PREFIX
	b = append(b, 'a', 'b', 'c', 0)
	b = order.AppendUint16(b, uint16(4+len(payload)))
	b = order.AppendUint16(b, 9)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
