package injector

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestResetFrame(t *testing.T) {
	mac1 := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	for _, tc := range []struct {
		name     string
		src, dst string
		ack      bool
	}{
		{"v4 rst+ack", "198.19.0.7:443", "198.18.0.1:20001", true},
		{"v4 rst ack 0", "198.18.0.1:20001", "198.19.0.7:443", false},
		{"v6 rst+ack", "[fd00:7473:2::7]:443", "[fd00:7473:1::1]:20002", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Reset{SrcMAC: mac1, DstMAC: mac2, Src: netip.MustParseAddrPort(tc.src), Dst: netip.MustParseAddrPort(tc.dst),
				Seq: 0xdeadbeef, Ack: 12345, ACK: tc.ack, TTL: 47, IPID: 0x1234, Window: 777}
			if !tc.ack {
				r.Ack = 0
			}
			frame, err := r.Frame(gopacket.NewSerializeBuffer())
			if err != nil {
				t.Fatal(err)
			}
			p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
			tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if !ok {
				t.Fatalf("no TCP layer in %v", p)
			}
			if !tcp.RST || tcp.ACK != tc.ack || tcp.SYN || tcp.FIN || tcp.PSH {
				t.Errorf("flags RST=%v ACK=%v SYN=%v FIN=%v PSH=%v", tcp.RST, tcp.ACK, tcp.SYN, tcp.FIN, tcp.PSH)
			}
			if tcp.Seq != r.Seq || tcp.Ack != r.Ack || tcp.Window != r.Window || uint16(tcp.SrcPort) != r.Src.Port() || uint16(tcp.DstPort) != r.Dst.Port() {
				t.Errorf("tcp seq %d ack %d win %d ports %d->%d, want %+v", tcp.Seq, tcp.Ack, tcp.Window, tcp.SrcPort, tcp.DstPort, r)
			}
			var src, dst net.IP
			var ttl uint8
			if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
				src, dst, ttl = ip4.SrcIP, ip4.DstIP, ip4.TTL
				if ip4.Id != r.IPID {
					t.Errorf("IP ID %#x, want %#x", ip4.Id, r.IPID)
				}
			} else if ip6, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
				src, dst, ttl = ip6.SrcIP, ip6.DstIP, ip6.HopLimit
			}
			if !src.Equal(r.Src.Addr().AsSlice()) || !dst.Equal(r.Dst.Addr().AsSlice()) || ttl != r.TTL {
				t.Errorf("ip %v -> %v ttl %d, want %v", src, dst, ttl, r)
			}
			// A valid checksum survives re-serialisation unchanged.
			netLayer := p.NetworkLayer().(gopacket.SerializableLayer)
			_ = tcp.SetNetworkLayerForChecksum(p.NetworkLayer())
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
				p.LinkLayer().(gopacket.SerializableLayer), netLayer, tcp); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), frame) {
				t.Error("checksums differ from a fresh computation")
			}
		})
	}
}

func TestResetFrameMixedFamilies(t *testing.T) {
	r := Reset{Src: netip.MustParseAddrPort("198.18.0.1:1"), Dst: netip.MustParseAddrPort("[fd00::1]:2")}
	if _, err := r.Frame(gopacket.NewSerializeBuffer()); err == nil {
		t.Fatal("want an error for mixed address families")
	}
}
