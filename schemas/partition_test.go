package schemas

import (
	"net/netip"
	"testing"
)

func TestServerAddr(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	s := netip.MustParseAddr("93.184.216.34")
	tests := []struct {
		name string
		p    PacketMeta
		want netip.Addr
	}{
		{"client to server", PacketMeta{Src: a, SrcPort: 51000, Dst: s, DstPort: 443}, s},
		{"server to client", PacketMeta{Src: s, SrcPort: 443, Dst: a, DstPort: 51000}, s},
		{"echo request", PacketMeta{Src: a, Dst: s, Proto: ProtoICMP}, a},
		{"echo reply", PacketMeta{Src: s, Dst: a, Proto: ProtoICMP}, a},
		{"icmp error about a flow", PacketMeta{
			Src: netip.MustParseAddr("192.0.2.254"), Dst: a, Proto: ProtoICMP, ICMPType: 3, ICMPCode: 13,
			Quoted: Quoted{Src: a, SrcPort: 51000, Dst: s, DstPort: 443, Proto: ProtoTCP},
		}, s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.ServerAddr(); got != tt.want {
				t.Fatalf("ServerAddr = %v, want %v", got, tt.want)
			}
		})
	}
}
