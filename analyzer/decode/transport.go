package decode

import (
	"net/netip"

	"github.com/tamperscope/tamperscope/schemas"
)

// tcp reads the TCP header. Ports are filled as soon as they are
// captured, and the fixed header before the data offset is checked, so a
// header cut short still identifies its flow.
func (d *Decoder) tcp(b []byte, n int, p *schemas.PacketMeta) Reason {
	if len(b) >= 4 {
		p.SrcPort = be16(b)
		p.DstPort = be16(b[2:])
	}
	if len(b) < 20 {
		return ReasonTruncatedTCP
	}
	p.Seq = be32(b[4:])
	p.Ack = be32(b[8:])
	p.TCPFlags = b[13]
	p.Window = be16(b[14:])
	off := int(b[12]>>4) * 4
	if off < 20 {
		return ReasonBadTCPHeaderLen
	}
	if off > n {
		if p.Frag == schemas.FragFirst { // header continues in the next fragment
			return ReasonTruncatedTCP
		}
		return ReasonBadTCPHeaderLen
	}
	if len(b) < off {
		return ReasonTruncatedTCP
	}
	tcpOptions(b[20:off], p)
	p.PayloadLen = uint32(n - off)
	p.Payload = b[off:]
	return ReasonOK
}

// tcpOptions records the options the analyzer uses. A malformed option
// ends the walk: what came before it stays valid.
func tcpOptions(o []byte, p *schemas.PacketMeta) {
	for len(o) > 0 {
		kind := o[0]
		if kind == 0 {
			return
		}
		if kind == 1 {
			o = o[1:]
			continue
		}
		if len(o) < 2 {
			return
		}
		l := int(o[1])
		if l < 2 || l > len(o) {
			return
		}
		switch {
		case kind == 2 && l == 4:
			p.TCPOpts |= schemas.OptMSS
			p.MSS = be16(o[2:])
		case kind == 3 && l == 3:
			p.TCPOpts |= schemas.OptWScale
			p.WScale = o[2]
		case kind == 4 && l == 2:
			p.TCPOpts |= schemas.OptSACKPerm
		case kind == 5 && l >= 10:
			p.TCPOpts |= schemas.OptSACK
		case kind == 8 && l == 10:
			p.TCPOpts |= schemas.OptTimestamps
			p.TSVal = be32(o[2:])
			p.TSEcr = be32(o[6:])
		}
		o = o[l:]
	}
}

// udp reads the UDP header and follows UDP tunnels. PayloadLen is the
// smaller of the UDP length and what the IP header leaves, so the
// fragments of one datagram add up to it.
func (d *Decoder) udp(b []byte, n int, p *schemas.PacketMeta) Reason {
	if len(b) >= 4 {
		p.SrcPort = be16(b)
		p.DstPort = be16(b[2:])
	}
	if len(b) < 8 {
		return ReasonTruncatedUDP
	}
	pl := n - 8
	if ul := int(be16(b[4:])); ul >= 8 && ul-8 < pl {
		pl = ul - 8
	}
	pay := b[8:]
	if len(pay) > pl {
		pay = pay[:pl]
	}
	p.PayloadLen = uint32(pl)
	p.Payload = pay
	if p.Frag != schemas.FragNone {
		return ReasonOK
	}
	r := d.udpTunnel(pay, pl, p)
	if r == ReasonNotIP || r == ReasonTruncatedL2 { // not a tunnel after all, or nothing IP inside
		return ReasonOK
	}
	return r
}

// udpTunnel follows VXLAN, Geneve, GTP-U and Teredo, chosen by either
// port. It returns ReasonNotIP without touching p when the payload is not
// a tunnel carrying IP. Teredo is only followed when a well-formed IPv6
// header fills the rest of the datagram exactly, since port 3544 also
// carries Teredo's own qualification traffic.
func (d *Decoder) udpTunnel(b []byte, n int, p *schemas.PacketMeta) Reason {
	sp, dp := p.SrcPort, p.DstPort
	switch {
	case dp == d.vxlan || sp == d.vxlan:
		if len(b) < 8 || b[0]&0x08 == 0 {
			return ReasonNotIP
		}
		return d.ether(b[8:], p)
	case dp == d.geneve || sp == d.geneve:
		if len(b) < 8 || b[0]>>6 != 0 {
			return ReasonNotIP
		}
		off := 8 + int(b[0]&0x3f)*4
		if len(b) < off {
			return ReasonTruncatedL2
		}
		return d.ethertype(be16(b[2:]), b[off:], p)
	case dp == d.gtpu || sp == d.gtpu:
		return d.gtpU(b, p)
	case dp == d.teredo || sp == d.teredo:
		off := 0
		for range 2 {
			if len(b)-off < 2 || b[off] != 0 {
				break
			}
			switch b[off+1] {
			case 0: // origin indication
				off += 8
			case 1: // authentication: id and auth value, nonce, confirmation
				if len(b)-off < 4 {
					return ReasonNotIP
				}
				off += 4 + int(b[off+2]) + int(b[off+3]) + 9
			}
		}
		if len(b)-off < 40 || b[off]>>4 != 6 || 40+int(be16(b[off+4:])) != n-off {
			return ReasonNotIP
		}
		return d.ipv6(b[off:], p)
	}
	return ReasonNotIP
}

// gtpU follows a GTP-U G-PDU (version 1, message type 255) and its
// extension header chain to the user IP packet.
func (d *Decoder) gtpU(b []byte, p *schemas.PacketMeta) Reason {
	if len(b) < 8 || b[0]>>5 != 1 || b[0]&0x10 == 0 || b[1] != 0xff {
		return ReasonNotIP
	}
	off := 8
	if b[0]&0x07 != 0 {
		if len(b) < 12 {
			return ReasonTruncatedL2
		}
		off = 12
		next := b[11]
		for b[0]&0x04 != 0 && next != 0 {
			if len(b) <= off {
				return ReasonTruncatedL2
			}
			l := int(b[off]) * 4
			if l == 0 {
				return ReasonNotIP
			}
			if len(b) < off+l {
				return ReasonTruncatedL2
			}
			next = b[off+l-1]
			off += l
		}
	}
	if len(b) <= off {
		return ReasonTruncatedL2
	}
	switch b[off] >> 4 {
	case 4:
		return d.ipv4(b[off:], p)
	case 6:
		return d.ipv6(b[off:], p)
	}
	return ReasonNotIP
}

// icmp reads ICMP or ICMPv6 type and code. Echo request and reply put
// their identifier in both SrcPort and DstPort, so each ping session is
// its own flow and reply matches request under a symmetric flow key.
// Errors fill Quoted from the quoted IP header and first 8 bytes.
func (d *Decoder) icmp(b []byte, n int, p *schemas.PacketMeta, v6 bool) Reason {
	if len(b) >= 2 {
		p.ICMPType = b[0]
		p.ICMPCode = b[1]
	}
	if len(b) < 8 {
		return ReasonTruncatedICMP
	}
	p.PayloadLen = uint32(n - 8)
	p.Payload = b[8:]
	t := b[0]
	if isEcho(t, v6) {
		p.SrcPort = be16(b[4:])
		p.DstPort = p.SrcPort
	} else if isError(t, v6) {
		quoted(b[8:], &p.Quoted)
	}
	return ReasonOK
}

func isEcho(t uint8, v6 bool) bool {
	if v6 {
		return t == 128 || t == 129
	}
	return t == 0 || t == 8 || t == 13 || t == 14
}

func isError(t uint8, v6 bool) bool {
	if v6 {
		return t >= 1 && t <= 4
	}
	switch t {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}

// quoted reads the packet an ICMP error carries, as far as it goes:
// routers often quote only the IP header and 8 bytes, and a damaged quote
// leaves the rest of q zero rather than failing the ICMP packet.
func quoted(b []byte, q *schemas.Quoted) {
	if len(b) == 0 {
		return
	}
	var proto uint8
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return
		}
		q.Src = netip.AddrFrom4([4]byte(b[12:16]))
		q.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		proto = b[9]
		q.Proto = proto
		if be16(b[6:])&0x1fff != 0 {
			return
		}
		b = b[ihl:]
	case 6:
		if len(b) < 40 {
			return
		}
		q.Src = netip.AddrFrom16([16]byte(b[8:24]))
		q.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		proto = b[6]
		b = b[40:]
	ext:
		for {
			switch proto {
			case 0, 43, 60, 135, 139, 140, protoAH, 44:
				if len(b) < 8 {
					break ext
				}
				l := (int(b[1]) + 1) * 8
				switch proto {
				case protoAH:
					l = (int(b[1]) + 2) * 4
				case 44:
					l = 8
					if be16(b[2:])&^7 != 0 {
						q.Proto = b[0]
						return
					}
				}
				if len(b) < l {
					break ext
				}
				proto = b[0]
				b = b[l:]
			default:
				break ext
			}
		}
		q.Proto = proto
	default:
		return
	}
	switch proto {
	case schemas.ProtoTCP, schemas.ProtoUDP, protoSCTP, protoUDPLit:
		if len(b) >= 4 {
			q.SrcPort = be16(b)
			q.DstPort = be16(b[2:])
		}
	case schemas.ProtoICMP, schemas.ProtoICMPv6:
		if len(b) >= 6 && isEcho(b[0], proto == schemas.ProtoICMPv6) {
			q.SrcPort = be16(b[4:])
			q.DstPort = q.SrcPort
		}
	}
}
