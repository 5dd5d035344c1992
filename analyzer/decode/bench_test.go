package decode

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/schemas"
)

func benchFrames() []struct {
	name  string
	frame capture.Frame
} {
	syn := eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 6, ttl: 64, id: 1, flagsOff: 0x4000}.build(
		tcphdr{sp: 40000, dp: 443, seq: 1, flags: schemas.TCPSyn, win: 64240, opts: synOpts}.build(nil)))
	return []struct {
		name  string
		frame capture.Frame
	}{
		{"ethernet/ipv4/tcp-syn-options", capture.Frame{LinkType: capture.LinkEthernet, Data: syn}},
		{"ethernet/ipv4/tcp-sack-ts", capture.Frame{LinkType: capture.LinkEthernet, Data: eth(0x0800, inner4)}},
		{"ethernet/ipv6/tcp", capture.Frame{LinkType: capture.LinkEthernet, Data: eth(0x86dd, inner6)}},
		{"vlan/ipv4/tcp", capture.Frame{LinkType: capture.LinkEthernet, Data: eth(0x8100, cat(tag(100, 0x0800), inner4))}},
		{"vxlan/ipv4/tcp", capture.Frame{LinkType: capture.LinkEthernet, Data: eth(0x0800, outer4(17).build(udpDgram(54321, 4789, cat(vxlanHdr(42), eth(0x0800, inner4)))))}},
		{"sll2/ipv6/tcp", capture.Frame{LinkType: capture.LinkSLL2, Data: sll2(0x86dd, inner6)}},
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, bf := range benchFrames() {
		b.Run(bf.name, func(b *testing.B) {
			d := New(Options{})
			var p schemas.PacketMeta
			f := bf.frame
			b.ReportAllocs()
			b.SetBytes(int64(len(f.Data)))
			reportCPU(b, func() {
				for b.Loop() {
					if err := d.Decode(&f, &p); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkGopacketParser is the alternative STYLE.md names: one
// DecodingLayerParser with preallocated layers, filling the same
// PacketMeta fields. It is here to keep the choice in doc.go measurable.
func BenchmarkGopacketParser(b *testing.B) {
	for _, bf := range benchFrames()[:3] {
		b.Run(bf.name, func(b *testing.B) {
			var (
				eth     layers.Ethernet
				ip4     layers.IPv4
				ip6     layers.IPv6
				tcp     layers.TCP
				udp     layers.UDP
				payload gopacket.Payload
			)
			parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &tcp, &udp, &payload)
			parser.IgnoreUnsupported = true // the TLS payload layer is not in the parser
			decoded := make([]gopacket.LayerType, 0, 8)
			var p schemas.PacketMeta
			data := bf.frame.Data
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			reportCPU(b, func() { gopacketLoop(b, parser, data, &decoded, &p, &ip4, &ip6, &tcp) })
			if p.SrcPort == 0 {
				b.Fatal("gopacket decoded no ports")
			}
		})
	}
}

func gopacketLoop(b *testing.B, parser *gopacket.DecodingLayerParser, data []byte, decoded *[]gopacket.LayerType,
	p *schemas.PacketMeta, ip4 *layers.IPv4, ip6 *layers.IPv6, tcp *layers.TCP) {
	for b.Loop() {
		*p = schemas.PacketMeta{}
		if err := parser.DecodeLayers(data, decoded); err != nil {
			b.Fatal(err)
		}
		for _, lt := range *decoded {
			switch lt {
			case layers.LayerTypeIPv4:
				p.IPVersion, p.TTL, p.IPID, p.Proto = 4, ip4.TTL, uint32(ip4.Id), uint8(ip4.Protocol)
				p.Src, _ = netip.AddrFromSlice(ip4.SrcIP)
				p.Dst, _ = netip.AddrFromSlice(ip4.DstIP)
			case layers.LayerTypeIPv6:
				p.IPVersion, p.TTL, p.IPID, p.Proto = 6, ip6.HopLimit, ip6.FlowLabel, uint8(ip6.NextHeader)
				p.Src, _ = netip.AddrFromSlice(ip6.SrcIP)
				p.Dst, _ = netip.AddrFromSlice(ip6.DstIP)
			case layers.LayerTypeTCP:
				p.SrcPort, p.DstPort, p.Seq, p.Ack, p.Window = uint16(tcp.SrcPort), uint16(tcp.DstPort), tcp.Seq, tcp.Ack, tcp.Window
				for _, o := range tcp.Options {
					switch o.OptionType {
					case layers.TCPOptionKindMSS:
						if len(o.OptionData) == 2 {
							p.TCPOpts |= schemas.OptMSS
							p.MSS = uint16(o.OptionData[0])<<8 | uint16(o.OptionData[1])
						}
					case layers.TCPOptionKindWindowScale:
						if len(o.OptionData) == 1 {
							p.TCPOpts |= schemas.OptWScale
							p.WScale = o.OptionData[0]
						}
					case layers.TCPOptionKindSACKPermitted:
						p.TCPOpts |= schemas.OptSACKPerm
					case layers.TCPOptionKindSACK:
						p.TCPOpts |= schemas.OptSACK
					case layers.TCPOptionKindTimestamps:
						if len(o.OptionData) == 8 {
							p.TCPOpts |= schemas.OptTimestamps
							p.TSVal = be32(o.OptionData)
							p.TSEcr = be32(o.OptionData[4:])
						}
					}
				}
				p.Payload = tcp.Payload
				p.PayloadLen = uint32(len(tcp.Payload))
			}
		}
	}
}
