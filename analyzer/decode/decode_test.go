package decode

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/schemas"
)

// view is the part of PacketMeta a table case pins down exactly.
type view struct {
	Ver        uint8
	Src, Dst   netip.Addr
	Proto      uint8
	TTL        uint8
	IPID       uint32
	Frag       schemas.Frag
	FragOff    uint16
	SrcPort    uint16
	DstPort    uint16
	PayloadLen uint32
	Payload    string
}

func viewOf(p *schemas.PacketMeta) view {
	return view{
		Ver: p.IPVersion, Src: p.Src, Dst: p.Dst, Proto: p.Proto, TTL: p.TTL, IPID: p.IPID,
		Frag: p.Frag, FragOff: p.FragOff, SrcPort: p.SrcPort, DstPort: p.DstPort,
		PayloadLen: p.PayloadLen, Payload: string(p.Payload),
	}
}

var hello = []byte{0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0}

var (
	tcp4 = tcphdr{sp: 40000, dp: 443, seq: 1000, ack: 2000, flags: schemas.TCPPsh | schemas.TCPAck, win: 502, opts: sackOpts}
	tcp6 = tcphdr{sp: 40001, dp: 443, seq: 3000, ack: 4000, flags: schemas.TCPPsh | schemas.TCPAck, win: 503}

	inner4 = v4hdr{src: cli4, dst: srv4, proto: 6, ttl: 64, id: 0x1234}.build(tcp4.build(hello))
	inner6 = v6hdr{src: cli6, dst: srv6, nh: 6, hop: 57, flow: 0xabcde}.build(tcp6.build(hello))

	want4 = view{Ver: 4, Src: cli4, Dst: srv4, Proto: 6, TTL: 64, IPID: 0x1234, SrcPort: 40000, DstPort: 443, PayloadLen: uint32(len(hello)), Payload: string(hello)}
	want6 = view{Ver: 6, Src: cli6, Dst: srv6, Proto: 6, TTL: 57, IPID: 0xabcde, SrcPort: 40001, DstPort: 443, PayloadLen: uint32(len(hello)), Payload: string(hello)}
)

func outer4(proto uint8) v4hdr { return v4hdr{src: out4, dst: end4, proto: proto, ttl: 200, id: 7} }
func outer6(nh uint8) v6hdr    { return v6hdr{src: out6, dst: end6, nh: nh, hop: 199, flow: 1} }

// patch returns a copy of b with bytes at off replaced.
func patch(b []byte, off int, v ...byte) []byte {
	c := append([]byte(nil), b...)
	copy(c[off:], v)
	return c
}

type tcase struct {
	name   string
	link   uint16
	frame  []byte
	opts   Options
	wire   uint32 // frame's wire length; 0: unknown
	reason Reason
	want   view // compared when the reason leaves IP fields (ok or partial)
	check  func(t *testing.T, p *schemas.PacketMeta)
}

func tableCases() []tcase {
	fragData := []byte("0123456789abcdef")
	udpPay := []byte("quic-initial")
	greUnknown := cat(greHdr(0, 0x88b5, 0), []byte{1, 2, 3, 4})
	v4udp := v4hdr{src: cli4, dst: srv4, proto: 17, ttl: 60, id: 9}.build(udpDgram(5353, 443, udpPay))
	wantUDP := view{Ver: 4, Src: cli4, Dst: srv4, Proto: 17, TTL: 60, IPID: 9, SrcPort: 5353, DstPort: 443, PayloadLen: uint32(len(udpPay)), Payload: string(udpPay)}
	synFrame := v4hdr{src: cli4, dst: srv4, proto: 6, ttl: 64, id: 1}.build(
		tcphdr{sp: 1025, dp: 80, seq: 0xdeadbeef, flags: schemas.TCPSyn, win: 64240, opts: synOpts}.build(nil))
	big := make([]byte, 1000)
	big[0] = 0x16
	snap := eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 6, ttl: 64, id: 0x1234}.build(tcp4.build(big)))[:14+20+len(sackOpts)+20+5]
	gtpInner := cat([]byte{0x30, 0xff}, u16(uint16(len(inner4))), []byte{0, 0, 0, 1}, inner4)
	gtpExt := cat([]byte{0x34, 0xff}, u16(uint16(4+4+len(inner4))), []byte{0, 0, 0, 1}, []byte{0, 1, 0, 0x85}, []byte{1, 0, 9, 0}, inner4)
	quoteTCP := v4hdr{src: srv4, dst: cli4, proto: 6, ttl: 1, id: 5, totalLen: 1500}.build(tcphdr{sp: 443, dp: 40000}.build(nil))[:28]
	quoteUDP := v4hdr{src: cli4, dst: srv4, proto: 17, ttl: 1, id: 6}.build(udpDgram(5353, 53, make([]byte, 30)))
	quoteEcho := v4hdr{src: cli4, dst: srv4, proto: 1, ttl: 1, id: 6}.build(icmpMsg(8, 0, 0x4242<<16|1, nil))
	quote6 := v6hdr{src: cli6, dst: srv6, nh: 60}.build(cat(ext6(6, 0), tcp6.build(make([]byte, 1400))))[:40+8+8]
	teredoOrigin := cat([]byte{0, 0, 0xaa, 0xbb, 1, 2, 3, 4}, inner6)
	ah := cat([]byte{6, 4, 0, 0}, make([]byte, 20))

	return []tcase{
		{name: "ethernet/ipv4/tcp", link: capture.LinkEthernet, frame: eth(0x0800, inner4), want: want4,
			check: func(t *testing.T, p *schemas.PacketMeta) {
				if p.Seq != 1000 || p.Ack != 2000 || p.Window != 502 || p.TCPFlags != schemas.TCPPsh|schemas.TCPAck {
					t.Errorf("seq/ack/win/flags = %d/%d/%d/%#x", p.Seq, p.Ack, p.Window, p.TCPFlags)
				}
				if p.TCPOpts != schemas.OptSACK|schemas.OptTimestamps || p.TSVal != 9 || p.TSEcr != 8 {
					t.Errorf("opts %#x tsval %d tsecr %d, want SACK+TS 9/8", p.TCPOpts, p.TSVal, p.TSEcr)
				}
				if p.IPLen != uint16(len(inner4)) {
					t.Errorf("IPLen %d, want %d", p.IPLen, len(inner4))
				}
			}},
		{name: "ethernet/ipv4/tcp-syn-options", link: capture.LinkEthernet, frame: eth(0x0800, synFrame),
			want: view{Ver: 4, Src: cli4, Dst: srv4, Proto: 6, TTL: 64, IPID: 1, SrcPort: 1025, DstPort: 80},
			check: func(t *testing.T, p *schemas.PacketMeta) {
				want := schemas.OptMSS | schemas.OptWScale | schemas.OptSACKPerm | schemas.OptTimestamps
				if p.TCPOpts != want || p.MSS != 1460 || p.WScale != 7 || p.TSVal != 0x01020304 || p.TSEcr != 0 {
					t.Errorf("opts %#x mss %d ws %d ts %#x/%d", p.TCPOpts, p.MSS, p.WScale, p.TSVal, p.TSEcr)
				}
				if p.TCPFlags != schemas.TCPSyn || p.Seq != 0xdeadbeef || p.Window != 64240 {
					t.Errorf("flags %#x seq %#x win %d", p.TCPFlags, p.Seq, p.Window)
				}
			}},
		{name: "ethernet/ipv6/tcp", link: capture.LinkEthernet, frame: eth(0x86dd, inner6), want: want6},
		{name: "ethernet/ipv4-options/tcp", link: capture.LinkEthernet,
			frame: eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 6, ttl: 64, id: 0x1234, opts: []byte{1, 1, 1, 0, 0x94, 4, 0, 0}}.build(tcp4.build(hello))), want: want4},
		{name: "802.1q", link: capture.LinkEthernet, frame: eth(0x8100, cat(tag(100, 0x0800), inner4)), want: want4},
		{name: "802.1ad-qinq", link: capture.LinkEthernet, frame: eth(0x88a8, cat(tag(10, 0x8100), tag(20, 0x0800), inner4)), want: want4},
		{name: "qinqinq-9100", link: capture.LinkEthernet, frame: eth(0x9100, cat(tag(1, 0x8100), tag(2, 0x8100), tag(3, 0x86dd), inner6)), want: want6},
		{name: "mpls-two-labels", link: capture.LinkEthernet, frame: eth(0x8847, cat(mplsLabel(16, false), mplsLabel(17, true), inner4)), want: want4},
		{name: "mpls-in-vlan/ipv6", link: capture.LinkEthernet, frame: eth(0x8100, cat(tag(5, 0x8847), mplsLabel(18, true), inner6)), want: want6},
		{name: "mpls-pw-control-word/ethernet", link: capture.LinkEthernet, frame: eth(0x8847, cat(mplsLabel(19, true), make([]byte, 4), eth(0x0800, inner4))), want: want4},
		{name: "pppoe/ipv4", link: capture.LinkEthernet, frame: eth(0x8864, pppoeSession(0x0021, inner4)), want: want4},
		{name: "pppoe/ipv6", link: capture.LinkEthernet, frame: eth(0x8864, pppoeSession(0x0057, inner6)), want: want6},
		{name: "pppoe/lcp", link: capture.LinkEthernet, frame: eth(0x8864, pppoeSession(0xc021, make([]byte, 10))), reason: ReasonNotIP},
		{name: "pppoe-discovery", link: capture.LinkEthernet, frame: eth(0x8863, make([]byte, 20)), reason: ReasonNotIP},
		{name: "arp", link: capture.LinkEthernet, frame: eth(0x0806, make([]byte, 28)), reason: ReasonNotIP},
		{name: "llc-snap", link: capture.LinkEthernet, frame: eth(uint16(8+len(inner4)), cat([]byte{0xaa, 0xaa, 3, 0, 0, 0}, u16(0x0800), inner4)), want: want4},
		{name: "llc-stp", link: capture.LinkEthernet, frame: eth(38, cat([]byte{0x42, 0x42, 3}, make([]byte, 35))), reason: ReasonNotIP},
		{name: "sll/ipv4", link: capture.LinkSLL, frame: sll(0x0800, inner4), want: want4},
		{name: "sll/vlan/ipv4", link: capture.LinkSLL, frame: sll(0x8100, cat(tag(100, 0x0800), inner4)), want: want4},
		{name: "sll/arp", link: capture.LinkSLL, frame: sll(0x0806, make([]byte, 28)), reason: ReasonNotIP},
		{name: "sll2/ipv6", link: capture.LinkSLL2, frame: sll2(0x86dd, inner6), want: want6},
		{name: "raw101/ipv4", link: capture.LinkRaw, frame: inner4, want: want4},
		{name: "raw101/ipv6", link: capture.LinkRaw, frame: inner6, want: want6},
		{name: "raw12/ipv4", link: 12, frame: inner4, want: want4},
		{name: "raw14/ipv6", link: 14, frame: inner6, want: want6},
		{name: "ipv4-228", link: capture.LinkIPv4, frame: inner4, want: want4},
		{name: "ipv6-229", link: capture.LinkIPv6, frame: inner6, want: want6},
		{name: "ipv4-228-carrying-ipv6", link: capture.LinkIPv4, frame: inner6, reason: ReasonBadIPVersion},
		{name: "ipv6-229-carrying-ipv4", link: capture.LinkIPv6, frame: inner4, reason: ReasonBadIPVersion},
		{name: "null-le/inet", link: capture.LinkNull, frame: nullLE(2, inner4), want: want4},
		{name: "null-be/inet", link: capture.LinkNull, frame: nullBE(2, inner4), want: want4},
		{name: "null-le/inet6-24", link: capture.LinkNull, frame: nullLE(24, inner6), want: want6},
		{name: "null-be/inet6-28", link: capture.LinkNull, frame: nullBE(28, inner6), want: want6},
		{name: "null-le/inet6-30", link: capture.LinkNull, frame: nullLE(30, inner6), want: want6},
		{name: "loop-108/inet6-24", link: capture.LinkLoop, frame: nullBE(24, inner6), want: want6},
		{name: "null/other-family", link: capture.LinkNull, frame: nullLE(7, inner4), reason: ReasonNotIP},
		{name: "ppp/ipv4", link: 9, frame: cat([]byte{0xff, 3}, u16(0x21), inner4), want: want4},
		{name: "ppp/compressed-protocol", link: 9, frame: cat([]byte{0x21}, inner4), want: want4},
		{name: "ppp-hdlc/ipv6", link: 50, frame: cat([]byte{0xff, 3}, u16(0x57), inner6), want: want6},
		{name: "nflog-le/ipv4", link: 239, frame: nflogRec(2, binary.LittleEndian, inner4), want: want4},
		{name: "nflog-be/ipv6", link: 239, frame: nflogRec(10, binary.BigEndian, inner6), want: want6},
		{name: "nflog-no-payload-tlv", link: 239, frame: nflogRec(2, binary.LittleEndian, nil)[:12], reason: ReasonTruncatedL2},
		{name: "unsupported-link-182", link: 182, frame: inner4, reason: ReasonUnsupportedLinkType},
		{name: "4in4", link: capture.LinkEthernet, frame: eth(0x0800, outer4(4).build(inner4)), want: want4},
		{name: "6in4", link: capture.LinkEthernet, frame: eth(0x0800, outer4(41).build(inner6)), want: want6},
		{name: "4in6", link: capture.LinkEthernet, frame: eth(0x86dd, outer6(4).build(inner4)), want: want4},
		{name: "6in6", link: capture.LinkEthernet, frame: eth(0x86dd, outer6(41).build(inner6)), want: want6},
		{name: "4in4-carrying-ipv6", link: capture.LinkEthernet, frame: eth(0x0800, outer4(4).build(inner6)), reason: ReasonBadIPVersion},
		{name: "gre/ipv4", link: capture.LinkEthernet, frame: eth(0x0800, outer4(47).build(cat(greHdr(0, 0x0800, 0), inner4))), want: want4},
		{name: "gre-csum-key-seq/ipv6", link: capture.LinkEthernet, frame: eth(0x0800, outer4(47).build(cat(greHdr(0xb000, 0x86dd, 12), inner6))), want: want6},
		{name: "gre-teb/vlan/ipv4", link: capture.LinkEthernet, frame: eth(0x0800, outer4(47).build(cat(greHdr(0x2000, 0x6558, 4), eth(0x8100, cat(tag(7, 0x0800), inner4))))), want: want4},
		{name: "erspan-ii", link: capture.LinkEthernet, frame: eth(0x0800, outer4(47).build(cat(greHdr(0x1000, 0x88be, 4), make([]byte, 8), eth(0x0800, inner4)))), want: want4},
		{name: "erspan-i", link: capture.LinkEthernet, frame: eth(0x0800, outer4(47).build(cat(greHdr(0, 0x88be, 0), eth(0x86dd, inner6)))), want: want6},
		{name: "erspan-iii-subheader", link: capture.LinkEthernet, frame: eth(0x0800, outer4(47).build(cat(greHdr(0x1000, 0x22eb, 4), make([]byte, 11), []byte{1}, make([]byte, 8), eth(0x0800, inner4)))), want: want4},
		{name: "gre-v1-pptp/ppp", link: capture.LinkEthernet, frame: eth(0x0800, outer4(47).build(cat(greHdr(0x3001, 0x880b, 8), []byte{0xff, 3}, u16(0x21), inner4))), want: want4},
		{name: "gre-unknown-protocol", link: capture.LinkEthernet, frame: eth(0x0800, outer4(47).build(greUnknown)), reason: ReasonUnknownTransport,
			want: view{Ver: 4, Src: out4, Dst: end4, Proto: 47, TTL: 200, IPID: 7, PayloadLen: uint32(len(greUnknown)), Payload: string(greUnknown)}},
		{name: "vxlan", link: capture.LinkEthernet, frame: eth(0x0800, outer4(17).build(udpDgram(54321, 4789, cat(vxlanHdr(42), eth(0x0800, inner4))))), want: want4},
		{name: "vxlan-custom-port", link: capture.LinkEthernet, opts: Options{VXLANPort: 8472}, frame: eth(0x0800, outer4(17).build(udpDgram(54321, 8472, cat(vxlanHdr(42), eth(0x86dd, inner6))))), want: want6},
		{name: "vxlan-port-without-vxlan-flag", link: capture.LinkEthernet, frame: eth(0x0800, outer4(17).build(udpDgram(54321, 4789, make([]byte, 30)))),
			want: view{Ver: 4, Src: out4, Dst: end4, Proto: 17, TTL: 200, IPID: 7, SrcPort: 54321, DstPort: 4789, PayloadLen: 30, Payload: string(make([]byte, 30))}},
		{name: "vxlan-carrying-arp", link: capture.LinkEthernet, frame: eth(0x0800, outer4(17).build(udpDgram(54321, 4789, cat(vxlanHdr(1), eth(0x0806, make([]byte, 28)))))),
			want: view{Ver: 4, Src: out4, Dst: end4, Proto: 17, TTL: 200, IPID: 7, SrcPort: 54321, DstPort: 4789, PayloadLen: 8 + 14 + 28, Payload: string(cat(vxlanHdr(1), eth(0x0806, make([]byte, 28))))}},
		{name: "geneve-options/ethernet/ipv6", link: capture.LinkEthernet, frame: eth(0x0800, outer4(17).build(udpDgram(5555, 6081, cat(geneveHdr(2, 0x6558), eth(0x86dd, inner6))))), want: want6},
		{name: "geneve/ipv4", link: capture.LinkEthernet, frame: eth(0x86dd, outer6(17).build(udpDgram(5555, 6081, cat(geneveHdr(0, 0x0800), inner4)))), want: want4},
		{name: "teredo", link: capture.LinkEthernet, frame: eth(0x0800, outer4(17).build(udpDgram(3544, 50000, inner6))), want: want6},
		{name: "teredo-origin-indication", link: capture.LinkEthernet, frame: eth(0x0800, outer4(17).build(udpDgram(3544, 50000, teredoOrigin))), want: want6},
		{name: "teredo-port-not-ipv6", link: capture.LinkEthernet, frame: eth(0x0800, outer4(17).build(udpDgram(50000, 3544, []byte("xyz")))),
			want: view{Ver: 4, Src: out4, Dst: end4, Proto: 17, TTL: 200, IPID: 7, SrcPort: 50000, DstPort: 3544, PayloadLen: 3, Payload: "xyz"}},
		{name: "gtp-u", link: capture.LinkEthernet, frame: eth(0x0800, outer4(17).build(udpDgram(2152, 2152, gtpInner))), want: want4},
		{name: "gtp-u-extension-header", link: capture.LinkEthernet, frame: eth(0x0800, outer4(17).build(udpDgram(2152, 2152, gtpExt))), want: want4},
		{name: "ipv4-first-fragment", link: capture.LinkEthernet,
			frame: eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 6, ttl: 64, id: 0x1234, flagsOff: 0x2000}.build(tcp4.build(hello))),
			want:  func() view { w := want4; w.Frag = schemas.FragFirst; return w }()},
		{name: "ipv4-later-fragment", link: capture.LinkEthernet, reason: ReasonFragLater,
			frame: eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 6, ttl: 64, id: 0x1234, flagsOff: 185}.build(fragData)),
			want:  view{Ver: 4, Src: cli4, Dst: srv4, Proto: 6, TTL: 64, IPID: 0x1234, Frag: schemas.FragLater, FragOff: 1480, PayloadLen: uint32(len(fragData)), Payload: string(fragData)}},
		{name: "ipv4-first-fragment-of-tunnel-not-followed", link: capture.LinkEthernet, reason: ReasonUnknownTransport,
			frame: eth(0x0800, v4hdr{src: out4, dst: end4, proto: 41, ttl: 200, id: 7, flagsOff: 0x2000}.build(inner6)),
			want:  view{Ver: 4, Src: out4, Dst: end4, Proto: 41, TTL: 200, IPID: 7, Frag: schemas.FragFirst, PayloadLen: uint32(len(inner6)), Payload: string(inner6)}},
		{name: "ethernet-padding-trimmed", link: capture.LinkEthernet, frame: eth(0x0800, cat(v4udp, make([]byte, 12))), want: wantUDP},
		{name: "snaplen-truncated-payload", link: capture.LinkEthernet, frame: snap,
			want: view{Ver: 4, Src: cli4, Dst: srv4, Proto: 6, TTL: 64, IPID: 0x1234, SrcPort: 40000, DstPort: 443, PayloadLen: 1000, Payload: string(big[:5])}},
		{name: "snaplen-cut-with-wire-length", link: capture.LinkEthernet, frame: snap, wire: 14 + 20 + uint32(len(sackOpts)) + 20 + 1000,
			want: view{Ver: 4, Src: cli4, Dst: srv4, Proto: 6, TTL: 64, IPID: 0x1234, SrcPort: 40000, DstPort: 443, PayloadLen: 1000, Payload: string(big[:5])}},
		{name: "ipv4-longer-than-wire-frame", link: capture.LinkEthernet, frame: snap, wire: uint32(len(snap)), reason: ReasonTruncatedIPPayload,
			want: view{Ver: 4, Src: cli4, Dst: srv4, Proto: 6, TTL: 64, IPID: 0x1234, SrcPort: 40000, DstPort: 443, PayloadLen: 1000, Payload: string(big[:5])}},
		{name: "ipv6-longer-than-wire-frame", link: capture.LinkEthernet, frame: eth(0x86dd, inner6)[:14+40+20+3], wire: 14 + 40 + 20 + 3, reason: ReasonTruncatedIPPayload,
			want: func() view { w := want6; w.Payload = string(hello[:3]); return w }()},
		{name: "ipv4-total-length-zero-tso", link: capture.LinkEthernet, frame: eth(0x0800, patch(inner4, 2, 0, 0)), want: want4},
		{name: "ipv6-payload-length-zero-big-tcp", link: capture.LinkEthernet, frame: eth(0x86dd, patch(inner6, 4, 0, 0)), want: want6},
		{name: "ipv4-first-fragment-cut-inside-tcp-options", link: capture.LinkEthernet, reason: ReasonTruncatedTCP,
			frame: eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 6, ttl: 64, id: 0x1234, flagsOff: 0x2000}.build(tcp4.build(nil)[:24])),
			want:  view{Ver: 4, Src: cli4, Dst: srv4, Proto: 6, TTL: 64, IPID: 0x1234, Frag: schemas.FragFirst, SrcPort: 40000, DstPort: 443}},
		{name: "ipv6-extension-chain", link: capture.LinkEthernet, frame: eth(0x86dd, v6hdr{src: cli6, dst: srv6, nh: 0, hop: 57, flow: 0xabcde}.build(cat(ext6(60, 0), ext6(43, 1), ext6(6, 0), tcp6.build(hello)))), want: want6},
		{name: "ipv6-ah", link: capture.LinkEthernet, frame: eth(0x86dd, v6hdr{src: cli6, dst: srv6, nh: 51, hop: 57, flow: 0xabcde}.build(cat(ah, tcp6.build(hello)))), want: want6},
		{name: "ipv6-first-fragment", link: capture.LinkEthernet, frame: eth(0x86dd, v6hdr{src: cli6, dst: srv6, nh: 44, hop: 57, flow: 0xabcde}.build(cat(frag6(6, 0, true, 77), tcp6.build(hello)))),
			want: func() view { w := want6; w.Frag = schemas.FragFirst; return w }()},
		{name: "ipv6-later-fragment", link: capture.LinkEthernet, reason: ReasonFragLater,
			frame: eth(0x86dd, v6hdr{src: cli6, dst: srv6, nh: 0, hop: 57, flow: 0xabcde}.build(cat(ext6(44, 0), frag6(6, 1448, false, 77), fragData))),
			want:  view{Ver: 6, Src: cli6, Dst: srv6, Proto: 6, TTL: 57, IPID: 0xabcde, Frag: schemas.FragLater, FragOff: 1448, PayloadLen: uint32(len(fragData)), Payload: string(fragData)}},
		{name: "ipv6-esp", link: capture.LinkEthernet, reason: ReasonUnknownTransport, frame: eth(0x86dd, v6hdr{src: cli6, dst: srv6, nh: 50, hop: 57}.build(fragData)),
			want: view{Ver: 6, Src: cli6, Dst: srv6, Proto: 50, TTL: 57, PayloadLen: uint32(len(fragData)), Payload: string(fragData)}},
		{name: "ipv6-no-next-header", link: capture.LinkEthernet, reason: ReasonUnknownTransport, frame: eth(0x86dd, v6hdr{src: cli6, dst: srv6, nh: 60, hop: 57}.build(ext6(59, 0))),
			want: view{Ver: 6, Src: cli6, Dst: srv6, Proto: 59, TTL: 57}},
		{name: "ipv4-sctp", link: capture.LinkEthernet, reason: ReasonUnknownTransport, frame: eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 132, ttl: 3}.build(fragData)),
			want: view{Ver: 4, Src: cli4, Dst: srv4, Proto: 132, TTL: 3, PayloadLen: uint32(len(fragData)), Payload: string(fragData)}},
		{name: "ipv4/udp", link: capture.LinkEthernet, frame: eth(0x0800, v4udp), want: wantUDP},
		{name: "wire-length-below-capture", link: capture.LinkEthernet, frame: eth(0x0800, inner4), wire: 10, want: want4},
		{name: "udp-length-shorter-than-ip-payload", link: capture.LinkEthernet,
			frame: eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 17, ttl: 60, id: 9}.build(patch(udpDgram(5353, 443, udpPay), 4, 0, 12))),
			want:  view{Ver: 4, Src: cli4, Dst: srv4, Proto: 17, TTL: 60, IPID: 9, SrcPort: 5353, DstPort: 443, PayloadLen: 4, Payload: string(udpPay[:4])}},
		{name: "udp-first-fragment", link: capture.LinkEthernet,
			frame: eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 17, ttl: 60, id: 9, flagsOff: 0x2000}.build(patch(udpDgram(5353, 443, udpPay), 4, 0x07, 0xd0))),
			want:  view{Ver: 4, Src: cli4, Dst: srv4, Proto: 17, TTL: 60, IPID: 9, Frag: schemas.FragFirst, SrcPort: 5353, DstPort: 443, PayloadLen: uint32(len(udpPay)), Payload: string(udpPay)}},
		{name: "icmp-echo-request", link: capture.LinkEthernet, frame: eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 1, ttl: 64}.build(icmpMsg(8, 0, 0x4242<<16|7, fragData))),
			want: view{Ver: 4, Src: cli4, Dst: srv4, Proto: 1, TTL: 64, SrcPort: 0x4242, DstPort: 0x4242, PayloadLen: uint32(len(fragData)), Payload: string(fragData)}},
		{name: "icmpv6-echo-reply", link: capture.LinkEthernet, frame: eth(0x86dd, v6hdr{src: srv6, dst: cli6, nh: 58, hop: 64}.build(icmpMsg(129, 0, 0x4343<<16|7, nil))),
			want: view{Ver: 6, Src: srv6, Dst: cli6, Proto: 58, TTL: 64, SrcPort: 0x4343, DstPort: 0x4343}},
		{name: "icmp-admin-prohibited-quotes-tcp", link: capture.LinkEthernet, frame: eth(0x0800, v4hdr{src: out4, dst: srv4, proto: 1, ttl: 250}.build(icmpMsg(3, 13, 0, quoteTCP))),
			want: view{Ver: 4, Src: out4, Dst: srv4, Proto: 1, TTL: 250, PayloadLen: 28, Payload: string(quoteTCP)},
			check: func(t *testing.T, p *schemas.PacketMeta) {
				want := schemas.Quoted{Src: srv4, Dst: cli4, SrcPort: 443, DstPort: 40000, Proto: 6}
				if p.ICMPType != 3 || p.ICMPCode != 13 || p.Quoted != want {
					t.Errorf("type %d code %d quoted %+v, want 3/13 %+v", p.ICMPType, p.ICMPCode, p.Quoted, want)
				}
			}},
		{name: "icmp-time-exceeded-quotes-udp", link: capture.LinkEthernet, frame: eth(0x0800, v4hdr{src: out4, dst: cli4, proto: 1, ttl: 250}.build(icmpMsg(11, 0, 0, quoteUDP))),
			want: view{Ver: 4, Src: out4, Dst: cli4, Proto: 1, TTL: 250, PayloadLen: uint32(len(quoteUDP)), Payload: string(quoteUDP)},
			check: func(t *testing.T, p *schemas.PacketMeta) {
				want := schemas.Quoted{Src: cli4, Dst: srv4, SrcPort: 5353, DstPort: 53, Proto: 17}
				if p.Quoted != want {
					t.Errorf("quoted %+v, want %+v", p.Quoted, want)
				}
			}},
		{name: "icmp-unreachable-quotes-echo", link: capture.LinkEthernet, frame: eth(0x0800, v4hdr{src: out4, dst: cli4, proto: 1, ttl: 250}.build(icmpMsg(3, 1, 0, quoteEcho))),
			want: view{Ver: 4, Src: out4, Dst: cli4, Proto: 1, TTL: 250, PayloadLen: uint32(len(quoteEcho)), Payload: string(quoteEcho)},
			check: func(t *testing.T, p *schemas.PacketMeta) {
				want := schemas.Quoted{Src: cli4, Dst: srv4, SrcPort: 0x4242, DstPort: 0x4242, Proto: 1}
				if p.Quoted != want {
					t.Errorf("quoted %+v, want %+v", p.Quoted, want)
				}
			}},
		{name: "icmpv6-packet-too-big-quotes-tcp-past-extension", link: capture.LinkEthernet, frame: eth(0x86dd, v6hdr{src: out6, dst: cli6, nh: 58, hop: 250}.build(icmpMsg(2, 0, 1280, quote6))),
			want: view{Ver: 6, Src: out6, Dst: cli6, Proto: 58, TTL: 250, PayloadLen: uint32(len(quote6)), Payload: string(quote6)},
			check: func(t *testing.T, p *schemas.PacketMeta) {
				want := schemas.Quoted{Src: cli6, Dst: srv6, SrcPort: 40001, DstPort: 443, Proto: 6}
				if p.ICMPType != 2 || p.Quoted != want {
					t.Errorf("type %d quoted %+v, want 2 %+v", p.ICMPType, p.Quoted, want)
				}
			}},
		{name: "icmp-error-short-quote", link: capture.LinkEthernet, frame: eth(0x0800, v4hdr{src: out4, dst: cli4, proto: 1, ttl: 250}.build(icmpMsg(3, 3, 0, quoteUDP[:12]))),
			want: view{Ver: 4, Src: out4, Dst: cli4, Proto: 1, TTL: 250, PayloadLen: 12, Payload: string(quoteUDP[:12])},
			check: func(t *testing.T, p *schemas.PacketMeta) {
				if p.Quoted != (schemas.Quoted{}) {
					t.Errorf("quoted %+v from a 12-byte quote, want zero", p.Quoted)
				}
			}},
		{name: "icmp-truncated", link: capture.LinkEthernet, reason: ReasonTruncatedICMP, frame: eth(0x0800, v4hdr{src: out4, dst: cli4, proto: 1, ttl: 250}.build([]byte{3, 1, 0, 0})),
			want: view{Ver: 4, Src: out4, Dst: cli4, Proto: 1, TTL: 250}},
		{name: "ipv4-ihl-below-5", link: capture.LinkEthernet, reason: ReasonBadIPHeaderLen, frame: eth(0x0800, patch(inner4, 0, 0x44))},
		{name: "ipv4-total-length-below-header", link: capture.LinkEthernet, reason: ReasonBadIPLength, frame: eth(0x0800, patch(inner4, 2, 0, 10))},
		{name: "ipv4-version-5", link: capture.LinkEthernet, reason: ReasonBadIPVersion, frame: eth(0x0800, patch(inner4, 0, 0x55))},
		{name: "tcp-data-offset-below-5", link: capture.LinkEthernet, reason: ReasonBadTCPHeaderLen, frame: eth(0x0800, patch(inner4, 20+12, 0x40)),
			want: view{Ver: 4, Src: cli4, Dst: srv4, Proto: 6, TTL: 64, IPID: 0x1234, SrcPort: 40000, DstPort: 443}},
		{name: "tcp-data-offset-past-ip-length", link: capture.LinkEthernet, reason: ReasonBadTCPHeaderLen, frame: eth(0x0800, patch(inner4, 2, 0, 20+20)),
			want: view{Ver: 4, Src: cli4, Dst: srv4, Proto: 6, TTL: 64, IPID: 0x1234, SrcPort: 40000, DstPort: 443}},
		{name: "empty-ethernet", link: capture.LinkEthernet, reason: ReasonTruncatedL2, frame: nil},
		{name: "vlan-cut", link: capture.LinkEthernet, reason: ReasonTruncatedL2, frame: eth(0x8100, []byte{0, 1})},
	}
}

func TestDecodeTable(t *testing.T) {
	for _, tc := range tableCases() {
		t.Run(tc.name, func(t *testing.T) {
			d := New(tc.opts)
			f := capture.Frame{TimestampNs: 42, LinkType: tc.link, Iface: 3, WireLen: tc.wire, Data: tc.frame}
			wire := tc.wire
			if wire == 0 {
				wire = uint32(len(tc.frame))
			}
			var p schemas.PacketMeta
			p.TCPFlags = 0xff // Decode must reset what the previous packet left
			err := d.Decode(&f, &p)
			if got := ReasonOf(err); got != tc.reason {
				t.Fatalf("reason %v, want %v", got, tc.reason)
			}
			if p.TimestampNs != 42 || p.Iface != 3 || p.WireLen != wire {
				t.Errorf("frame fields ts %d iface %d wirelen %d", p.TimestampNs, p.Iface, p.WireLen)
			}
			if st := d.Stats(); st.Frames != 1 || st.Reasons[tc.reason] != 1 {
				t.Errorf("stats %+v, want one frame counted under %v", st, tc.reason)
			}
			if tc.reason != ReasonOK && !tc.reason.Partial() {
				return
			}
			if !errors.Is(err, ErrPartial) && err != nil {
				t.Errorf("error %v does not match ErrPartial", err)
			}
			if diff := cmp.Diff(tc.want, viewOf(&p), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("PacketMeta mismatch (-want +got):\n%s", diff)
			}
			if tc.check != nil {
				tc.check(t, &p)
			}
		})
	}
}

// TestTruncationSweep cuts valid TCP frames at every byte offset: the
// decoder must not panic, must name the layer the cut falls in, and from
// the end of the TCP header on must decode fully with lengths from the
// headers.
func TestTruncationSweep(t *testing.T) {
	payload := []byte("GET / HTTP/1.1\r\n")
	cases := []struct {
		name  string
		frame []byte
		l2    int // bytes of link-layer headers
		ip    int // bytes of IP headers
		tcp   int // bytes of TCP header
	}{
		{"ethernet/ipv4/tcp-options", eth(0x0800, v4hdr{src: cli4, dst: srv4, proto: 6, ttl: 64, opts: []byte{1, 1, 1, 0}}.build(tcphdr{sp: 1, dp: 2, opts: sackOpts}.build(payload))), 14, 24, 20 + len(sackOpts)},
		{"vlan/ipv6-ext/tcp", eth(0x8100, cat(tag(1, 0x86dd), v6hdr{src: cli6, dst: srv6, nh: 60, hop: 9}.build(cat(ext6(6, 0), tcphdr{sp: 1, dp: 2, opts: synOpts[:12]}.build(payload))))), 18, 48, 32},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Options{})
			for n := 0; n <= len(tc.frame); n++ {
				f := capture.Frame{LinkType: capture.LinkEthernet, Data: tc.frame[:n]}
				var p schemas.PacketMeta
				r := ReasonOf(d.Decode(&f, &p))
				var want Reason
				switch {
				case n < tc.l2:
					want = ReasonTruncatedL2
				case n < tc.l2+tc.ip:
					want = ReasonTruncatedIP
				case n < tc.l2+tc.ip+tc.tcp:
					want = ReasonTruncatedTCP
				default:
					want = ReasonOK
				}
				if r != want {
					t.Fatalf("cut at %d: reason %v, want %v", n, r, want)
				}
				if r == ReasonTruncatedTCP && n >= tc.l2+tc.ip+4 && (p.SrcPort != 1 || p.DstPort != 2) {
					t.Errorf("cut at %d inside TCP: ports %d/%d, want 1/2", n, p.SrcPort, p.DstPort)
				}
				if r == ReasonOK {
					if p.PayloadLen != uint32(len(payload)) || len(p.Payload) != n-tc.l2-tc.ip-tc.tcp {
						t.Errorf("cut at %d: PayloadLen %d len(Payload) %d", n, p.PayloadLen, len(p.Payload))
					}
				}
			}
			if st := d.Stats(); st.Frames != uint64(len(tc.frame)+1) {
				t.Errorf("stats counted %d frames, want %d", st.Frames, len(tc.frame)+1)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for r := Reason(1); r < NumReasons; r++ {
		err := reasonErrs[r]
		if err == nil {
			t.Fatalf("reason %v has no sentinel", r)
		}
		if ReasonOf(err) != r {
			t.Errorf("ReasonOf(%v) = %v", err, ReasonOf(err))
		}
		if errors.Is(err, ErrTruncated) != r.Truncated() || errors.Is(err, ErrPartial) != r.Partial() {
			t.Errorf("%v: errors.Is truncated=%v partial=%v", r, errors.Is(err, ErrTruncated), errors.Is(err, ErrPartial))
		}
		if r.String() == "" || r.String() == NumReasons.String() {
			t.Errorf("reason %d has no name", r)
		}
	}
	if !errors.Is(ErrTruncatedTCP, ErrPartial) || errors.Is(ErrTruncatedIP, ErrPartial) || errors.Is(ErrNotIP, ErrTruncated) {
		t.Error("group membership of sentinels is wrong")
	}
	if ReasonOf(nil) != ReasonOK {
		t.Error("ReasonOf(nil) is not ReasonOK")
	}
}

// TestDecodeAllocs proves the hot path allocates nothing, on every table
// frame (every link type, tunnel and error path).
func TestDecodeAllocs(t *testing.T) {
	cases := tableCases()
	d := New(Options{Vantage: "v1"})
	var p schemas.PacketMeta
	frames := make([]capture.Frame, len(cases))
	for i, tc := range cases {
		frames[i] = capture.Frame{LinkType: tc.link, Data: tc.frame}
	}
	allocs := testing.AllocsPerRun(100, func() {
		for i := range frames {
			_ = d.Decode(&frames[i], &p)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run of %d frames, want 0", allocs, len(frames))
	}
	if p.Vantage != "v1" {
		t.Errorf("vantage %q, want v1", p.Vantage)
	}
}
