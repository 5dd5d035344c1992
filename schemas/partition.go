package schemas

import "net/netip"

// ServerAddr returns the address of p's likely server: of the two
// endpoints, the one with the lower port (servers listen on low ports,
// clients on ephemeral ones). For an ICMP error it looks at the quoted
// packet, so that a router's "admin prohibited" about a flow goes with
// that flow. Equal ports (ICMP echo, later fragments) fall back to the
// lower address, which still puts both directions together. A stream
// split by it (Kafka partitions, the analyzer's shards) keeps every packet
// of a flow, and every flow to one server, together.
func (p *PacketMeta) ServerAddr() netip.Addr {
	if p.Quoted.Src.IsValid() {
		q := &p.Quoted
		return lowerPortSide(q.Src, q.SrcPort, q.Dst, q.DstPort)
	}
	return lowerPortSide(p.Src, p.SrcPort, p.Dst, p.DstPort)
}

func lowerPortSide(a netip.Addr, ap uint16, b netip.Addr, bp uint16) netip.Addr {
	switch {
	case ap < bp:
		return a
	case bp < ap:
		return b
	case a.Less(b):
		return a
	}
	return b
}

// IsDNSAnswer reports whether p is a DNS response with payload (UDP from
// port 53 or 5353): a packet the analyzer reads names from, which a split
// stream copies to every part, so that each knows the names of every
// address.
func (p *PacketMeta) IsDNSAnswer() bool {
	return p.Proto == ProtoUDP && (p.SrcPort == 53 || p.SrcPort == 5353) && len(p.Payload) > 0
}
