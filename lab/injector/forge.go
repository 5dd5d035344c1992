package injector

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Reset describes one forged TCP segment.
type Reset struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.AddrPort
	Seq, Ack       uint32
	ACK            bool // set the ACK flag
	TTL            uint8
	IPID           uint16 // IPv4 identification; unused for IPv6
	Window         uint16
}

// Frame serialises r into an Ethernet frame with valid checksums.
func (r Reset) Frame(buf gopacket.SerializeBuffer) ([]byte, error) {
	if r.Src.Addr().Is4() != r.Dst.Addr().Is4() {
		return nil, fmt.Errorf("forge reset: mixed address families %s -> %s", r.Src, r.Dst)
	}
	eth := &layers.Ethernet{SrcMAC: r.SrcMAC, DstMAC: r.DstMAC}
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(r.Src.Port()),
		DstPort: layers.TCPPort(r.Dst.Port()),
		Seq:     r.Seq,
		Ack:     r.Ack,
		RST:     true,
		ACK:     r.ACK,
		Window:  r.Window,
	}
	var ip gopacket.SerializableLayer
	if r.Src.Addr().Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		src, dst := r.Src.Addr().As4(), r.Dst.Addr().As4()
		v4 := &layers.IPv4{Version: 4, TTL: r.TTL, Id: r.IPID, Protocol: layers.IPProtocolTCP, SrcIP: src[:], DstIP: dst[:]}
		_ = tcp.SetNetworkLayerForChecksum(v4)
		ip = v4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		v6 := &layers.IPv6{Version: 6, HopLimit: r.TTL, NextHeader: layers.IPProtocolTCP, SrcIP: r.Src.Addr().AsSlice(), DstIP: r.Dst.Addr().AsSlice()}
		_ = tcp.SetNetworkLayerForChecksum(v6)
		ip = v6
	}
	if err := buf.Clear(); err != nil {
		return nil, fmt.Errorf("forge reset: %w", err)
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp); err != nil {
		return nil, fmt.Errorf("forge reset: %w", err)
	}
	return buf.Bytes(), nil
}
