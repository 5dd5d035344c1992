package ebpf

import (
	"net/netip"

	"github.com/tamperscope/tamperscope/bpf"
	"github.com/tamperscope/tamperscope/schemas"
)

// fill converts a record into p, as it was captured (before any
// segmentation).
func fill(p *schemas.PacketMeta, r *bpf.Record, offset int64, vantage string) {
	*p = schemas.PacketMeta{
		TimestampNs: int64(r.TsNs) + offset,
		Vantage:     vantage,
		Iface:       r.Ifindex,
		WireLen:     r.WireLen,
		IPVersion:   r.IpVersion,
		Src:         addr(r.IpVersion, r.Saddr),
		Dst:         addr(r.IpVersion, r.Daddr),
		Proto:       r.Proto,
		TTL:         r.Ttl,
		IPID:        r.IpId,
		IPLen:       r.IpLen,
		Frag:        schemas.Frag(r.Frag),
		FragOff:     r.FragOff,
		SrcPort:     r.Sport,
		DstPort:     r.Dport,
		TCPFlags:    r.TcpFlags,
		Seq:         r.Seq,
		Ack:         r.Ack,
		Window:      r.Window,
		TCPOpts:     r.TcpOpts,
		MSS:         r.Mss,
		WScale:      r.Wscale,
		TSVal:       r.Tsval,
		TSEcr:       r.Tsecr,
		PayloadLen:  r.PayloadLen,
		ICMPType:    r.IcmpType,
		ICMPCode:    r.IcmpCode,
	}
	if r.Q_proto != 0 {
		p.Quoted = schemas.Quoted{
			Src:     addr(quotedVersion(r.Q_saddr), r.Q_saddr),
			Dst:     addr(quotedVersion(r.Q_daddr), r.Q_daddr),
			SrcPort: r.Q_sport,
			DstPort: r.Q_dport,
			Proto:   r.Q_proto,
		}
	}
}

// addr returns a record address as the decoder would: 4-byte for IPv4.
func addr(version uint8, a [16]byte) netip.Addr {
	ip := netip.AddrFrom16(a)
	if version == 4 {
		return ip.Unmap()
	}
	return ip
}

// quotedVersion tells a quoted IPv4 address (stored v4-mapped) from IPv6.
func quotedVersion(a [16]byte) uint8 {
	if netip.AddrFrom16(a).Is4In6() {
		return 4
	}
	return 6
}

// segments returns how many wire packets a record stands for and the
// payload size of each but the last. Only TCP and UDP super-packets are
// split; everything else is one packet.
func segments(r *bpf.Record) (n, size int) {
	size = int(r.GsoSize)
	if r.GsoSegs <= 1 || size == 0 || r.Frag != 0 || (r.Proto != schemas.ProtoTCP && r.Proto != schemas.ProtoUDP) {
		return 1, 0
	}
	pay := int(r.PayloadLen)
	if r.Proto == schemas.ProtoUDP {
		// A UDP GSO header's length field may describe one segment; the
		// IP length covers them all.
		pay = int(r.IpLen) - (int(r.L4Off) - int(r.L3Off)) - int(r.L4Hlen)
	}
	if pay <= size {
		return 1, 0
	}
	return (pay + size - 1) / size, size
}

// segment rewrites p, filled from a super-packet record, into wire
// segment k of n, the way the kernel's TCP and UDP GSO segment.
func segment(p *schemas.PacketMeta, r *bpf.Record, k, n, size int) {
	total := int(r.PayloadLen)
	if r.Proto == schemas.ProtoUDP {
		total = int(r.IpLen) - (int(r.L4Off) - int(r.L3Off)) - int(r.L4Hlen)
	}
	pay := min(size, total-k*size)
	hdr := int(r.L4Off) - int(r.L3Off) + int(r.L4Hlen) // IP and transport headers
	p.PayloadLen = uint32(pay)
	p.IPLen = uint16(hdr + pay)
	p.WireLen = uint32(int(r.L3Off) + hdr + pay)
	if r.IpVersion == 4 {
		p.IPID = (r.IpId + uint32(k)) & 0xffff
	}
	if r.Proto != schemas.ProtoTCP {
		return
	}
	p.Seq = r.Seq + uint32(k*size)
	if k > 0 {
		p.TCPFlags &^= schemas.TCPCwr
	}
	if k < n-1 {
		p.TCPFlags &^= schemas.TCPFin | schemas.TCPPsh
	}
}
