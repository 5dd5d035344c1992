package afpacket

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tamperscope/tamperscope/bpf"
)

func frame4(proto uint8, sport, dport uint16) []byte {
	b := make([]byte, 14+20+20)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	b[14] = 0x45
	b[14+9] = proto
	copy(b[14+12:], []byte{198, 18, 0, 1, 198, 19, 0, 2})
	binary.BigEndian.PutUint16(b[34:], sport)
	binary.BigEndian.PutUint16(b[36:], dport)
	return b
}

func frame6(sport, dport uint16) []byte {
	b := make([]byte, 14+4+40+20) // with an 802.1Q tag
	binary.BigEndian.PutUint16(b[12:], 0x8100)
	binary.BigEndian.PutUint16(b[16:], 0x86dd)
	ip := b[18:]
	ip[0] = 0x60
	ip[6] = 6
	a := netip.MustParseAddr("fd00::1").As16()
	copy(ip[8:], a[:])
	a = netip.MustParseAddr("fd00::2").As16()
	copy(ip[24:], a[:])
	binary.BigEndian.PutUint16(ip[40:], sport)
	binary.BigEndian.PutUint16(ip[42:], dport)
	return b
}

func TestMatch(t *testing.T) {
	mgmt := bpf.Filter{ExcludePorts: []uint16{22}, ExcludeNets: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/16")}}
	only443 := bpf.Filter{Ports: []uint16{443}, Nets: []netip.Prefix{netip.MustParsePrefix("fd00::/64")}}
	for _, tc := range []struct {
		name  string
		f     bpf.Filter
		frame []byte
		want  bool
	}{
		{"ssh excluded", bpf.Filter{ExcludePorts: []uint16{22}}, frame4(6, 50000, 22), false},
		{"ssh reply excluded", bpf.Filter{ExcludePorts: []uint16{22}}, frame4(6, 22, 50000), false},
		{"other port kept", bpf.Filter{ExcludePorts: []uint16{22}}, frame4(6, 50000, 443), true},
		{"excluded network", mgmt, frame4(17, 5000, 53), false},
		{"icmp outside include ports", bpf.Filter{Ports: []uint16{443}}, frame4(1, 0, 0), false},
		{"v6 in include lists", only443, frame6(50000, 443), true},
		{"v6 wrong port", only443, frame6(50000, 80), false},
		{"v4 outside include nets", only443, frame4(6, 50000, 443), false},
		{"truncated passes", mgmt, frame4(6, 1, 22)[:20], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Source{filter: tc.f, filters: true}
			if got := s.match(tc.frame); got != tc.want {
				t.Errorf("match = %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzMatch(f *testing.F) {
	f.Add(frame4(6, 50000, 22))
	f.Add(frame6(50000, 443))
	f.Add(frame4(17, 1, 2)[:30])
	s := &Source{filter: bpf.Filter{Ports: []uint16{443}, ExcludePorts: []uint16{22}, Nets: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}, filters: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		s.match(b)
	})
}
