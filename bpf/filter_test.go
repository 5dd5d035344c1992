package bpf

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// testPkt describes one packet of the parity table. Quoted is the packet
// an ICMP error quotes; it lies inside filters the outer packet does not,
// so that a filter looking at the quote instead of the packet shows.
type testPkt struct {
	name       string
	src, dst   netip.Addr
	proto      uint8
	sport      uint16
	dport      uint16 // also the echo identifier for ICMP echo
	icmpType   uint8
	quoted     *testPkt
	laterFrag  bool // an IPv4 fragment past the first: no transport header
	hopByHop   bool // an IPv6 hop-by-hop header before the transport header
	payloadLen int
}

// hasPorts says whether the packet carries ports the filter applies to:
// TCP or UDP with its transport header present.
func (p *testPkt) hasPorts() bool {
	return (p.proto == 6 || p.proto == 17) && !p.laterFrag
}

// l4 is the transport header and payload.
func (p *testPkt) l4() []byte {
	switch p.proto {
	case 6:
		b := make([]byte, 20+p.payloadLen)
		binary.BigEndian.PutUint16(b[0:], p.sport)
		binary.BigEndian.PutUint16(b[2:], p.dport)
		b[12] = 5 << 4
		b[13] = 0x18 // PSH|ACK
		binary.BigEndian.PutUint16(b[14:], 512)
		return b
	case 17:
		b := make([]byte, 8+p.payloadLen)
		binary.BigEndian.PutUint16(b[0:], p.sport)
		binary.BigEndian.PutUint16(b[2:], p.dport)
		binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
		return b
	}
	b := make([]byte, 8)
	b[0] = p.icmpType
	if p.quoted != nil {
		b[1] = 3 // port unreachable (v4); v6 code 3 is "address unreachable", either way an error
		return append(b, p.quoted.ip()...)
	}
	binary.BigEndian.PutUint16(b[4:], p.dport)
	return b
}

// ip is the IP packet.
func (p *testPkt) ip() []byte {
	l4 := p.l4()
	if p.src.Is4() {
		h := make([]byte, 20, 20+len(l4))
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(h[4:], 0x1234)
		if p.laterFrag {
			binary.BigEndian.PutUint16(h[6:], 185) // offset 1480, last fragment
		}
		h[8], h[9] = 64, p.proto
		copy(h[12:], p.src.AsSlice())
		copy(h[16:], p.dst.AsSlice())
		return append(h, l4...)
	}
	nh := p.proto
	if p.hopByHop {
		// Next header, length 0 (8 bytes), PadN filling the rest.
		l4 = append([]byte{nh, 0, 1, 4, 0, 0, 0, 0}, l4...)
		nh = 0
	}
	h := make([]byte, 40, 40+len(l4))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6], h[7] = nh, 64
	copy(h[8:], p.src.AsSlice())
	copy(h[24:], p.dst.AsSlice())
	return append(h, l4...)
}

// frame is the packet in an Ethernet frame.
func (p *testPkt) frame() []byte {
	b := make([]byte, 14, 14+64)
	copy(b[0:], []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1})
	et := uint16(0x86dd)
	if p.src.Is4() {
		et = 0x0800
	}
	binary.BigEndian.PutUint16(b[12:], et)
	return append(b, p.ip()...)
}

func parityPackets() []testPkt {
	a := netip.MustParseAddr
	var (
		host4  = a("198.18.0.1")
		web4   = a("203.0.113.9")
		ten4   = a("10.1.2.3")
		deep4  = a("10.9.0.7")
		host6  = a("2001:db8::1")
		web6   = a("2001:db8:1::5")
		ula6   = a("fd00::7")
		mapped = a("::ffff:203.0.113.9") // an IPv6 packet with a v4-mapped address
	)
	tcp := func(name string, s, d netip.Addr, sp, dp uint16) testPkt {
		return testPkt{name: name, src: s, dst: d, proto: 6, sport: sp, dport: dp, payloadLen: 16}
	}
	udp := func(name string, s, d netip.Addr, sp, dp uint16) testPkt {
		return testPkt{name: name, src: s, dst: d, proto: 17, sport: sp, dport: dp, payloadLen: 16}
	}
	icmpErr := func(name string, s, d netip.Addr, q testPkt) testPkt {
		proto, typ := uint8(1), uint8(3)
		if s.Is6() {
			proto, typ = 58, 1
		}
		q.payloadLen = 0
		return testPkt{name: name, src: s, dst: d, proto: proto, icmpType: typ, quoted: &q}
	}
	frag := tcp("tcp4 later fragment to 443", host4, web4, 0, 0)
	frag.laterFrag = true
	hbh := tcp("tcp6 hop-by-hop to 443", host6, web6, 40001, 443)
	hbh.hopByHop = true
	return []testPkt{
		tcp("tcp4 to 443", host4, web4, 40000, 443),
		tcp("tcp4 from 443", web4, host4, 443, 40000),
		tcp("tcp4 to 8080", host4, web4, 40000, 8080),
		tcp("tcp4 ssh to 10/8", host4, ten4, 40000, 22),
		tcp("tcp4 to 10.9/16", host4, deep4, 40000, 443),
		tcp("tcp4 from 10/8 to 443", ten4, host4, 51000, 443),
		udp("udp4 dns", host4, web4, 53000, 53),
		udp("udp4 to 8080", host4, ten4, 53000, 8080),
		udp("udp4 from 22", deep4, host4, 22, 53000),
		{name: "icmp4 echo", src: host4, dst: web4, proto: 1, icmpType: 8, dport: 7},
		{name: "icmp4 echo to 10/8", src: host4, dst: ten4, proto: 1, icmpType: 8, dport: 7},
		icmpErr("icmp4 error quoting 443 in 203.0.113/24", ten4, host4, tcp("", host4, web4, 40000, 443)),
		icmpErr("icmp4 error quoting 22 in 10/8", web4, host4, tcp("", host4, ten4, 40000, 22)),
		frag,
		tcp("tcp6 to 443", host6, web6, 40001, 443),
		tcp("tcp6 to 8080 in fd00::/8", host6, ula6, 40001, 8080),
		tcp("tcp6 ssh", ula6, host6, 22, 40001),
		udp("udp6 dns", host6, web6, 53001, 53),
		udp("udp6 to fd00::/8", host6, ula6, 53001, 4433),
		{name: "icmp6 echo", src: host6, dst: web6, proto: 58, icmpType: 128, dport: 9},
		icmpErr("icmp6 error quoting 443 in 2001:db8:1::/48", ula6, host6, tcp("", host6, web6, 40001, 443)),
		icmpErr("icmp6 error quoting 22 in fd00::/8", web6, host6, udp("", host6, ula6, 40001, 22)),
		hbh,
		tcp("tcp6 v4-mapped to 443", host6, mapped, 40002, 443),
	}
}

func parityFilters() map[string]Filter {
	p := netip.MustParsePrefix
	return map[string]Filter{
		"none":                       {},
		"ports":                      {Ports: []uint16{443, 53}},
		"nets v4":                    {Nets: []netip.Prefix{p("203.0.113.0/24")}},
		"nets v6":                    {Nets: []netip.Prefix{p("2001:db8:1::/48")}},
		"nets v4 and v6":             {Nets: []netip.Prefix{p("203.0.113.0/24"), p("2001:db8:1::/48")}},
		"exclude ports":              {ExcludePorts: []uint16{22}},
		"exclude nets v4":            {ExcludeNets: []netip.Prefix{p("10.0.0.0/8")}},
		"exclude nets v6":            {ExcludeNets: []netip.Prefix{p("fd00::/8")}},
		"ports, exclude nets":        {Ports: []uint16{443}, ExcludeNets: []netip.Prefix{p("10.0.0.0/8"), p("fd00::/8")}},
		"nets, exclude ports":        {Nets: []netip.Prefix{p("10.0.0.0/8"), p("2001:db8::/32")}, ExcludePorts: []uint16{22, 8080}},
		"ports and nets":             {Ports: []uint16{443}, Nets: []netip.Prefix{p("203.0.113.0/24"), p("2001:db8:1::/48")}},
		"port both included and out": {Ports: []uint16{443, 22}, ExcludePorts: []uint16{22}},
		"net both included and out":  {Nets: []netip.Prefix{p("10.0.0.0/8")}, ExcludeNets: []netip.Prefix{p("10.0.0.0/8")}},
		"exclude inside include":     {Nets: []netip.Prefix{p("10.0.0.0/8")}, ExcludeNets: []netip.Prefix{p("10.9.0.0/16")}},
		"everything":                 {Ports: []uint16{443, 53, 8080, 22, 4433}, Nets: []netip.Prefix{p("0.0.0.0/0"), p("::/0")}},
		// An LPM lookup sees only the longest match: an include inside an
		// exclude must still be excluded.
		"include inside exclude": {Nets: []netip.Prefix{p("10.1.0.0/16")}, ExcludeNets: []netip.Prefix{p("10.0.0.0/8")}},
		// IPv4 lives in the map as v4-mapped IPv6: an IPv6 network must not
		// catch it.
		"all of IPv6":           {Nets: []netip.Prefix{p("::/0")}},
		"exclude all of IPv6":   {ExcludeNets: []netip.Prefix{p("::/0")}},
		"all of IPv6, not IPv4": {Nets: []netip.Prefix{p("::/0")}, ExcludeNets: []netip.Prefix{p("0.0.0.0/0")}},
		"v4-mapped network":     {Nets: []netip.Prefix{p("::ffff:10.0.0.0/104")}},
	}
}

// TestFilterParity drives the program with BPF_PROG_TEST_RUN over a table
// of packets under several filters and checks that the kernel records a
// packet exactly when Filter.Match, the AF_PACKET source's filter, does.
func TestFilterParity(t *testing.T) {
	needRoot(t)
	pkts := parityPackets()
	for name, f := range parityFilters() {
		t.Run(name, func(t *testing.T) {
			c, err := Load(Config{RingBytes: 1 << 20, FlowSlots: 1024, Filter: f})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, p := range pkts {
				before, err := c.Counters()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Program().Run(&ebpf.RunOptions{Data: p.frame()}); err != nil {
					t.Fatalf("%s: run: %v", p.name, err)
				}
				after, err := c.Counters()
				if err != nil {
					t.Fatal(err)
				}
				d := delta(before, after)
				if d.Seen != 1 || d.Malformed != 0 || d.NotIP != 0 || d.RingDrops != 0 || d.Records+d.Filtered != 1 {
					t.Fatalf("%s: counters moved by %+v, want one packet either recorded or filtered", p.name, d)
				}
				kernel := d.Records == 1
				if user := f.Match(p.src, p.dst, p.sport, p.dport, p.hasPorts()); kernel != user {
					t.Errorf("%s: kernel records it: %v, Filter.Match: %v", p.name, kernel, user)
				}
			}
		})
	}
}

func delta(a, b Counters) Counters {
	return Counters{
		Seen:      b.Seen - a.Seen,
		Records:   b.Records - a.Records,
		RingDrops: b.RingDrops - a.RingDrops,
		Filtered:  b.Filtered - a.Filtered,
		NotIP:     b.NotIP - a.NotIP,
		Malformed: b.Malformed - a.Malformed,
	}
}

// TestParityPackets checks the table's frames decode to what they
// describe, so a parity failure points at the filter, not the frame.
func TestParityPackets(t *testing.T) {
	for _, p := range parityPackets() {
		t.Run(p.name, func(t *testing.T) {
			b := p.frame()
			ip := b[14:]
			var src, dst netip.Addr
			var next []byte
			if p.src.Is4() {
				src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
				if got := int(binary.BigEndian.Uint16(ip[2:])); got != len(ip) {
					t.Errorf("total length %d, packet %d bytes", got, len(ip))
				}
				next = ip[20:]
			} else {
				src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
				if got := int(binary.BigEndian.Uint16(ip[4:])); got != len(ip)-40 {
					t.Errorf("payload length %d, payload %d bytes", got, len(ip)-40)
				}
				next = ip[40:]
				if p.hopByHop {
					next = next[8:]
				}
			}
			if src != p.src || dst != p.dst {
				t.Errorf("addresses %v > %v, want %v > %v", src, dst, p.src, p.dst)
			}
			if p.hasPorts() {
				if sp, dp := binary.BigEndian.Uint16(next), binary.BigEndian.Uint16(next[2:]); sp != p.sport || dp != p.dport {
					t.Errorf("ports %d > %d, want %d > %d", sp, dp, p.sport, p.dport)
				}
			}
			if p.quoted != nil && fmt.Sprint(next[8:]) != fmt.Sprint(p.quoted.ip()) {
				t.Error("ICMP error does not quote its packet")
			}
		})
	}
}
