package decode

import (
	"net/netip"

	"github.com/tamperscope/tamperscope/schemas"
)

const (
	protoIPIP   = 4
	protoIPv6   = 41
	protoGRE    = 47
	protoAH     = 51
	protoSCTP   = 132
	protoUDPLit = 136
)

// ipv4 fills the IP fields from an IPv4 header and goes on to the
// transport. The total length decides where the packet ends when the
// capture holds more (Ethernet padding); when the capture holds less
// (snaplen) the headers are still read and lengths come from the header.
func (d *Decoder) ipv4(b []byte, p *schemas.PacketMeta) Reason {
	if len(b) == 0 {
		return ReasonTruncatedIP
	}
	if b[0]>>4 != 4 {
		return ReasonBadIPVersion
	}
	if len(b) < 20 {
		return ReasonTruncatedIP
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return ReasonBadIPHeaderLen
	}
	if len(b) < ihl {
		return ReasonTruncatedIP
	}
	tl := int(be16(b[2:]))
	if tl == 0 { // TSO/GSO super-packet captured before segmentation
		tl = len(b)
	}
	if tl < ihl {
		return ReasonBadIPLength
	}
	p.IPVersion = 4
	p.IPLen = uint16(min(tl, 0xffff))
	p.IPID = uint32(be16(b[4:]))
	p.TTL = b[8]
	p.Proto = b[9]
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	fo := be16(b[6:])
	p.FragOff = (fo & 0x1fff) * 8
	p.Frag = schemas.FragNone
	switch {
	case p.FragOff != 0:
		p.Frag = schemas.FragLater
	case fo&0x2000 != 0:
		p.Frag = schemas.FragFirst
	}
	end := min(tl, len(b))
	return d.checkWire(tl > len(b)+d.unseen, d.transport(b[ihl:end], tl-ihl, p))
}

// checkWire turns a full decode into ReasonTruncatedIPPayload when the IP
// header claims bytes beyond the frame's wire length: a snaplen cut is
// normal, a datagram longer than the frame that carried it is damage (or
// a writer that trimmed packets), and its PayloadLen is only an upper
// bound.
func (d *Decoder) checkWire(short bool, r Reason) Reason {
	if short && r == ReasonOK {
		return ReasonTruncatedIPPayload
	}
	return r
}

// ipv6 fills the IP fields from an IPv6 header, walks the extension
// headers (fragment header into Frag/FragOff) and goes on to the
// transport. IPID carries the flow label.
func (d *Decoder) ipv6(b []byte, p *schemas.PacketMeta) Reason {
	if len(b) == 0 {
		return ReasonTruncatedIP
	}
	if b[0]>>4 != 6 {
		return ReasonBadIPVersion
	}
	if len(b) < 40 {
		return ReasonTruncatedIP
	}
	pl := int(be16(b[4:]))
	nh := b[6]
	if pl == 0 && nh != 59 { // jumbogram or BIG TCP/TSO super-packet: only the capture knows the length
		pl = len(b) - 40
	}
	p.IPVersion = 6
	p.IPLen = uint16(min(pl+40, 0xffff))
	p.IPID = be32(b) & 0xfffff
	p.TTL = b[7]
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	p.Frag = schemas.FragNone
	p.FragOff = 0
	short := 40+pl > len(b)+d.unseen
	b = b[40:min(40+pl, len(b))]
	for {
		switch nh {
		case 0, 43, 60, 135, 139, 140, protoAH: // hop-by-hop, routing, destination, mobility, HIP, shim6, AH
			if len(b) < 8 {
				return ReasonTruncatedIP
			}
			n := (int(b[1]) + 1) * 8 // length in 8-byte units, not counting the first
			if nh == protoAH {
				n = (int(b[1]) + 2) * 4 // AH counts 4-byte units, less 2
			}
			if pl < n {
				return ReasonBadIPLength
			}
			if len(b) < n {
				return ReasonTruncatedIP
			}
			nh = b[0]
			b, pl = b[n:], pl-n
			continue
		case 44: // fragment
			if len(b) < 8 {
				return ReasonTruncatedIP
			}
			if pl < 8 {
				return ReasonBadIPLength
			}
			fo := be16(b[2:])
			p.FragOff = fo &^ 7
			switch {
			case p.FragOff != 0:
				p.Frag = schemas.FragLater
			case fo&1 != 0:
				p.Frag = schemas.FragFirst
			}
			nh = b[0]
			b, pl = b[8:], pl-8
			if p.Frag == schemas.FragLater { // what follows is data, not a header
				p.Proto = nh
				return d.checkWire(short, d.transport(b, pl, p))
			}
			continue
		}
		break
	}
	p.Proto = nh
	return d.checkWire(short, d.transport(b, pl, p))
}

// transport decodes what follows the IP headers. b is the captured part
// of the IP payload, n its length by the IP header (n >= len(b)).
// Tunnels inside a fragment are not followed: their inner header would be
// cut at the fragment boundary, and the outer fragment is what accounting
// needs.
func (d *Decoder) transport(b []byte, n int, p *schemas.PacketMeta) Reason {
	if p.Frag == schemas.FragLater {
		p.PayloadLen = uint32(n)
		p.Payload = b
		return ReasonFragLater
	}
	switch p.Proto {
	case schemas.ProtoTCP:
		return d.tcp(b, n, p)
	case schemas.ProtoUDP:
		return d.udp(b, n, p)
	case schemas.ProtoICMP:
		return d.icmp(b, n, p, false)
	case schemas.ProtoICMPv6:
		return d.icmp(b, n, p, true)
	case protoIPIP:
		if p.Frag == schemas.FragNone {
			return d.ipv4(b, p)
		}
	case protoIPv6:
		if p.Frag == schemas.FragNone {
			return d.ipv6(b, p)
		}
	case protoGRE:
		if p.Frag == schemas.FragNone {
			if r := d.gre(b, p); r != ReasonNotIP && r != ReasonTruncatedL2 {
				return r
			}
		}
	}
	p.PayloadLen = uint32(n)
	p.Payload = b
	return ReasonUnknownTransport
}

// gre follows GRE versions 0 and 1 (PPTP), and ERSPAN types I-III. It
// returns ReasonNotIP or ReasonTruncatedL2 without touching p when there
// is no IP packet to follow, so the caller reports the outer packet.
func (d *Decoder) gre(b []byte, p *schemas.PacketMeta) Reason {
	if len(b) < 4 {
		return ReasonTruncatedL2
	}
	flags := be16(b)
	proto := be16(b[2:])
	off := 4
	if flags&0x4000 != 0 { // source routing (RFC 1701): obsolete, not followed
		return ReasonNotIP
	}
	if flags&0x8000 != 0 {
		off += 4
	}
	if flags&0x2000 != 0 {
		off += 4
	}
	if flags&0x1000 != 0 {
		off += 4
	}
	switch flags & 7 {
	case 0:
	case 1:
		if flags&0x0080 != 0 {
			off += 4
		}
		if len(b) < off {
			return ReasonTruncatedL2
		}
		if proto != 0x880b {
			return ReasonNotIP
		}
		return d.ppp(b[off:], p)
	default:
		return ReasonNotIP
	}
	if len(b) < off {
		return ReasonTruncatedL2
	}
	b = b[off:]
	switch proto {
	case 0x88be: // ERSPAN type II, or type I without sequence number
		if flags&0x1000 != 0 {
			if len(b) < 8 {
				return ReasonTruncatedL2
			}
			b = b[8:]
		}
		return d.ether(b, p)
	case 0x22eb: // ERSPAN type III, optional platform subheader
		if len(b) < 12 {
			return ReasonTruncatedL2
		}
		n := 12
		if b[11]&1 != 0 {
			n += 8
		}
		if len(b) < n {
			return ReasonTruncatedL2
		}
		return d.ether(b[n:], p)
	}
	return d.ethertype(proto, b, p)
}
