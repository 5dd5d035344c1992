package decode

import (
	"encoding/binary"

	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/schemas"
)

// Link types read here beyond the ones capture names.
const (
	linkPPP     uint16 = 9  // PPP, RFC 1661 (optional HDLC address/control)
	linkRawA    uint16 = 12 // DLT_RAW as written by some BSDs
	linkRawB    uint16 = 14 // DLT_RAW as written by OpenBSD
	linkPPPHDLC uint16 = 50 // PPP in HDLC-like framing
	linkNFLOG   uint16 = 239
)

// Options configures a Decoder. The zero value works.
type Options struct {
	// Vantage is copied into every PacketMeta.
	Vantage string
	// VXLANPort is the UDP port of VXLAN. The default is 4789 (IANA);
	// Linux's vxlan driver uses 8472 unless told otherwise.
	VXLANPort uint16
	// GenevePort is the UDP port of Geneve. The default is 6081.
	GenevePort uint16
	// TeredoPort is the UDP port of Teredo servers. The default is 3544.
	TeredoPort uint16
	// GTPUPort is the UDP port of GTP-U. The default is 2152.
	GTPUPort uint16
}

// Decoder turns link-layer frames into PacketMeta. It keeps counters, so
// use one per goroutine.
type Decoder struct {
	vantage string
	vxlan   uint16
	geneve  uint16
	teredo  uint16
	gtpu    uint16
	stats   Stats
	// unseen is how many bytes of the current frame were on the wire but
	// not captured; an IP length beyond that was never sent.
	unseen int
}

// New returns a Decoder configured by opts.
func New(opts Options) *Decoder {
	d := &Decoder{
		vantage: opts.Vantage,
		vxlan:   opts.VXLANPort,
		geneve:  opts.GenevePort,
		teredo:  opts.TeredoPort,
		gtpu:    opts.GTPUPort,
	}
	if d.vxlan == 0 {
		d.vxlan = 4789
	}
	if d.geneve == 0 {
		d.geneve = 6081
	}
	if d.teredo == 0 {
		d.teredo = 3544
	}
	if d.gtpu == 0 {
		d.gtpu = 2152
	}
	return d
}

// Stats returns the counts so far.
func (d *Decoder) Stats() Stats { return d.stats }

// Decode resets p and fills it from f. p.Payload aliases f.Data.
//
// A nil error means p is complete. An error is one of the sentinels in
// this package; when errors.Is(err, ErrPartial), p still holds the
// innermost IP header's fields and can be accounted to a flow (later
// fragments, unknown transports, transport headers cut short). Otherwise
// only p's timestamp, vantage, interface and wire length are meaningful.
func (d *Decoder) Decode(f *capture.Frame, p *schemas.PacketMeta) error {
	*p = schemas.PacketMeta{
		TimestampNs: f.TimestampNs,
		Vantage:     d.vantage,
		Iface:       f.Iface,
		WireLen:     f.WireLen,
	}
	if p.WireLen == 0 {
		p.WireLen = uint32(len(f.Data))
	}
	d.unseen = max(int(p.WireLen)-len(f.Data), 0)
	if f.WireLen == 0 { // unknown: any shortfall may be the snaplen
		d.unseen = 1 << 30
	}
	r := d.link(f.LinkType, f.Data, p)
	d.stats.Frames++
	d.stats.Reasons[r]++
	return reasonErrs[r]
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

func (d *Decoder) link(lt uint16, b []byte, p *schemas.PacketMeta) Reason {
	switch lt {
	case capture.LinkEthernet:
		return d.ether(b, p)
	case capture.LinkRaw, linkRawA, linkRawB:
		if len(b) == 0 {
			return ReasonTruncatedIP
		}
		if b[0]>>4 == 6 {
			return d.ipv6(b, p)
		}
		return d.ipv4(b, p)
	case capture.LinkIPv4:
		return d.ipv4(b, p)
	case capture.LinkIPv6:
		return d.ipv6(b, p)
	case capture.LinkNull, capture.LinkLoop:
		return d.null(b, p)
	case capture.LinkSLL:
		if len(b) < 16 {
			return ReasonTruncatedL2
		}
		return d.ethertype(be16(b[14:]), b[16:], p)
	case capture.LinkSLL2:
		if len(b) < 20 {
			return ReasonTruncatedL2
		}
		return d.ethertype(be16(b), b[20:], p)
	case linkPPP, linkPPPHDLC:
		return d.ppp(b, p)
	case linkNFLOG:
		return d.nflog(b, p)
	}
	return ReasonUnsupportedLinkType
}

// null reads the 4-byte address family of BSD loopback. LINKTYPE_NULL
// stores it in the writer's byte order and LINKTYPE_LOOP in network order,
// so both orders are accepted: every family value fits in the low 16 bits.
func (d *Decoder) null(b []byte, p *schemas.PacketMeta) Reason {
	if len(b) < 4 {
		return ReasonTruncatedL2
	}
	af := binary.LittleEndian.Uint32(b)
	if af > 0xffff {
		af = be32(b)
	}
	switch af {
	case 2: // AF_INET everywhere
		return d.ipv4(b[4:], p)
	case 24, 28, 30: // AF_INET6 on NetBSD/OpenBSD, FreeBSD, Darwin
		return d.ipv6(b[4:], p)
	}
	return ReasonNotIP
}

// nflog finds the packet TLV of a Linux NFLOG record. TLV lengths and
// types are in the capturing host's byte order; types are small, so the
// first TLV's type tells the order.
func (d *Decoder) nflog(b []byte, p *schemas.PacketMeta) Reason {
	if len(b) < 4 {
		return ReasonTruncatedL2
	}
	family := b[0]
	b = b[4:]
	order := binary.ByteOrder(binary.LittleEndian)
	if len(b) >= 4 && binary.LittleEndian.Uint16(b[2:]) > 0xff {
		order = binary.BigEndian
	}
	for len(b) >= 4 {
		l, typ := int(order.Uint16(b)), order.Uint16(b[2:])
		if l < 4 {
			return ReasonTruncatedL2
		}
		if typ == 9 { // NFULA_PAYLOAD
			v := b[4:min(l, len(b))]
			switch family {
			case 2:
				return d.ipv4(v, p)
			case 10:
				return d.ipv6(v, p)
			}
			return ReasonNotIP
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			return ReasonTruncatedL2
		}
		b = b[l:]
	}
	return ReasonTruncatedL2
}

func (d *Decoder) ether(b []byte, p *schemas.PacketMeta) Reason {
	if len(b) < 14 {
		return ReasonTruncatedL2
	}
	return d.ethertype(be16(b[12:]), b[14:], p)
}

// ethertype dispatches on an EtherType (also used by SLL, SLL2, GRE and
// Geneve, which share the numbering), peeling VLAN tags in place.
func (d *Decoder) ethertype(et uint16, b []byte, p *schemas.PacketMeta) Reason {
	for {
		switch et {
		case 0x0800:
			return d.ipv4(b, p)
		case 0x86dd:
			return d.ipv6(b, p)
		case 0x8100, 0x88a8, 0x9100, 0x9200, 0x9300: // 802.1Q, 802.1ad, legacy QinQ
			if len(b) < 4 {
				return ReasonTruncatedL2
			}
			et = be16(b[2:])
			b = b[4:]
			continue
		case 0x8847, 0x8848:
			return d.mpls(b, p)
		case 0x8864:
			return d.pppoe(b, p)
		case 0x6558: // transparent Ethernet bridging (GRE, Geneve)
			return d.ether(b, p)
		}
		if et <= 1500 { // 802.3 length field (or SLL's 802.2 marker): LLC follows
			return d.llc(b, p)
		}
		return ReasonNotIP
	}
}

// llc reads 802.2 LLC, following SNAP with the Ethernet OUI and the rare
// LLC SAP for IP.
func (d *Decoder) llc(b []byte, p *schemas.PacketMeta) Reason {
	if len(b) < 3 {
		return ReasonTruncatedL2
	}
	switch {
	case b[0] == 0xaa && b[1] == 0xaa && b[2] == 0x03:
		if len(b) < 8 {
			return ReasonTruncatedL2
		}
		if b[3]|b[4]|b[5] != 0 {
			return ReasonNotIP
		}
		return d.ethertype(be16(b[6:]), b[8:], p)
	case b[0] == 0x06 && b[1] == 0x06 && b[2] == 0x03:
		return d.ipv4(b[3:], p)
	}
	return ReasonNotIP
}

// mpls skips the label stack. Below it, the first nibble tells IPv4 and
// IPv6 apart; 0 is the pseudowire control word before Ethernet; anything
// else is taken as Ethernet without control word, as Wireshark does.
func (d *Decoder) mpls(b []byte, p *schemas.PacketMeta) Reason {
	for {
		if len(b) < 4 {
			return ReasonTruncatedL2
		}
		bottom := b[2]&1 != 0
		b = b[4:]
		if bottom {
			break
		}
	}
	if len(b) == 0 {
		return ReasonTruncatedL2
	}
	switch b[0] >> 4 {
	case 4:
		return d.ipv4(b, p)
	case 6:
		return d.ipv6(b, p)
	case 0:
		if len(b) < 4 {
			return ReasonTruncatedL2
		}
		return d.ether(b[4:], p)
	}
	return d.ether(b, p)
}

// pppoe reads a PPPoE session header and the PPP protocol after it.
func (d *Decoder) pppoe(b []byte, p *schemas.PacketMeta) Reason {
	if len(b) < 8 {
		return ReasonTruncatedL2
	}
	return d.pppProto(be16(b[6:]), b[8:], p)
}

// ppp reads a PPP frame, with or without the HDLC address/control bytes
// and with a one- or two-byte protocol field.
func (d *Decoder) ppp(b []byte, p *schemas.PacketMeta) Reason {
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
		b = b[2:]
	}
	if len(b) < 1 {
		return ReasonTruncatedL2
	}
	if b[0]&1 != 0 { // protocol field compression
		return d.pppProto(uint16(b[0]), b[1:], p)
	}
	if len(b) < 2 {
		return ReasonTruncatedL2
	}
	return d.pppProto(be16(b), b[2:], p)
}

func (d *Decoder) pppProto(proto uint16, b []byte, p *schemas.PacketMeta) Reason {
	switch proto {
	case 0x0021:
		return d.ipv4(b, p)
	case 0x0057:
		return d.ipv6(b, p)
	case 0x0281, 0x0283:
		return d.mpls(b, p)
	}
	return ReasonNotIP
}
