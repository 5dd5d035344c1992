package schemas

import "net/netip"

// TCP flag bits as they appear in the TCP header (byte 13).
const (
	TCPFin uint8 = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
	TCPEce
	TCPCwr
)

// IP protocol numbers used by PacketMeta.Proto.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// Frag says where a packet sits in an IP fragment train.
type Frag uint8

const (
	FragNone  Frag = iota // not fragmented
	FragFirst             // offset 0, more fragments follow: carries ports
	FragLater             // non-zero offset: no transport header
)

// TCP option presence bits for PacketMeta.TCPOpts.
const (
	OptMSS uint8 = 1 << iota
	OptWScale
	OptSACKPerm
	OptTimestamps
	OptSACK
)

// PacketMeta is the metadata of one packet: everything the analyzer needs,
// and a payload snapshot only for the first data bytes of a flow
// (ClientHello, QUIC Initial, HTTP request, ServerHello / certificate).
//
// Payload aliases memory owned by the PacketBatch that carries the packet;
// copy it to keep it past the batch's lifetime.
type PacketMeta struct {
	TimestampNs int64  `json:"ts_ns" doc:"capture time, nanoseconds since the Unix epoch"`
	Vantage     string `json:"vantage" doc:"vantage identifier given to the capture"`
	Iface       uint32 `json:"iface" doc:"interface index (pcapng interface id or ifindex)"`
	WireLen     uint32 `json:"wire_len" doc:"frame length on the wire"`

	IPVersion uint8      `json:"ip_version" doc:"4 or 6"`
	Src       netip.Addr `json:"src" doc:"source address (innermost IP header)"`
	Dst       netip.Addr `json:"dst" doc:"destination address"`
	Proto     uint8      `json:"proto" doc:"IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6)"`
	TTL       uint8      `json:"ttl" doc:"IPv4 TTL or IPv6 hop limit"`
	IPID      uint32     `json:"ip_id" doc:"IPv4 identification or IPv6 flow label"`
	IPLen     uint16     `json:"ip_len" doc:"IP total length (IPv6: payload length + 40)"`
	Frag      Frag       `json:"frag" doc:"0 not fragmented, 1 first fragment, 2 later fragment"`
	FragOff   uint16     `json:"frag_off" doc:"fragment offset in bytes"`

	SrcPort uint16 `json:"src_port" doc:"TCP/UDP source port"`
	DstPort uint16 `json:"dst_port" doc:"TCP/UDP destination port"`

	TCPFlags uint8  `json:"tcp_flags" doc:"TCP flag byte (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128)"`
	Seq      uint32 `json:"seq" doc:"TCP sequence number"`
	Ack      uint32 `json:"ack" doc:"TCP acknowledgement number"`
	Window   uint16 `json:"window" doc:"TCP window (unscaled)"`
	TCPOpts  uint8  `json:"tcp_opts" doc:"options present: MSS 1, window scale 2, SACK-permitted 4, timestamps 8, SACK 16"`
	MSS      uint16 `json:"mss" doc:"MSS option value"`
	WScale   uint8  `json:"wscale" doc:"window scale option value"`
	TSVal    uint32 `json:"ts_val" doc:"timestamp option value"`
	TSEcr    uint32 `json:"ts_ecr" doc:"timestamp option echo reply"`
	BadCsum  bool   `json:"bad_csum,omitempty" doc:"reserved: checksum known bad"`

	PayloadLen uint32 `json:"payload_len" doc:"transport payload length (from the IP header, not the capture)"`
	Payload    []byte `json:"payload,omitempty" doc:"payload snapshot: first data bytes of a flow only"`

	ICMPType uint8 `json:"icmp_type" doc:"ICMP/ICMPv6 type"`
	ICMPCode uint8 `json:"icmp_code" doc:"ICMP/ICMPv6 code"`
	// Quoted is the 5-tuple of the packet an ICMP error quotes, as sent
	// (Src is the original sender).
	Quoted Quoted `json:"quoted" doc:"5-tuple quoted by an ICMP error"`
}

// Quoted is the 5-tuple inside an ICMP error message.
type Quoted struct {
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	SrcPort uint16     `json:"src_port"`
	DstPort uint16     `json:"dst_port"`
	Proto   uint8      `json:"proto"`
}

// PacketBatch is the unit that moves between capture and analyzer, in
// process or as one Kafka message. Payload snapshots of Packets point into
// Arena.
type PacketBatch struct {
	Packets []PacketMeta
	Arena   []byte
}
