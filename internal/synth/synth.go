package synth

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Config sets the size and mix of a synthetic capture. The zero value gives
// the benchmark capture: 50,000 TLS flows, about 2 million packets.
type Config struct {
	Flows       int     // TCP/TLS flows; default 50,000
	IPv6Share   float64 // share of flows over IPv6; default 0.10
	PQShare     float64 // share of ClientHellos with an ML-KEM share (split over two segments); default 0.6
	ResetShare  float64 // flows reset right after the ClientHello; default 0.02
	DropShare   float64 // flows whose SYNs are never answered; default 0.01
	NoiseShare  float64 // DNS exchanges and QUIC datagrams per TLS flow; default 0.05
	MeanSegs    int     // mean server data segments per flow; default 22
	DurationSec int     // span of flow start times; default 120
	Names       int     // distinct server names; default 2,000
	Seed        uint64  // default 1
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Flows, 50000)
	deff(&c.IPv6Share, 0.10)
	deff(&c.PQShare, 0.6)
	deff(&c.ResetShare, 0.02)
	deff(&c.DropShare, 0.01)
	deff(&c.NoiseShare, 0.05)
	def(&c.MeanSegs, 22)
	def(&c.DurationSec, 120)
	def(&c.Names, 2000)
	if c.Seed == 0 {
		c.Seed = 1
	}
}

// Stats describes a written capture.
type Stats struct {
	Packets int
	Bytes   int64
	Flows   int
}

type kind uint8

const (
	payNone kind = iota
	payHello
	payServer
	payFiller
	payDNSQuery
	payDNSAnswer
	payQUIC
)

type pkt struct {
	ts         int64
	flow       int32
	fromServer bool
	flags      uint8
	kind       kind
	ttl        uint8
	seq, ack   uint32
	off, n     int32
}

type flowSpec struct {
	client, server net.IP
	cport, sport   uint16
	name           int
	pq             bool
	tls            int // the client program: index in clients
	v6             bool
	udp            bool
}

const segSize = 1448

// Write writes a pcap (nanosecond, Ethernet) built from cfg to w.
func Write(w io.Writer, cfg Config) (Stats, error) {
	cfg.defaults()
	r := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed))
	names := make([]string, cfg.Names)
	for i := range names {
		names[i] = fmt.Sprintf("www.site%04d.example%d.net", i, i%7)
	}
	// Which client opens a flow, and the random fields of its hello, come
	// from generators of their own.
	cr := rand.New(rand.NewPCG(cfg.Seed, 0xc11e47))
	hr := rand.New(rand.NewPCG(cfg.Seed, 0x4e110))
	hellos := make([][]byte, len(clients)*cfg.Names*2) // [(client*Names + name)*2 + pq]
	helloAt := func(f *flowSpec) int { return (f.tls*cfg.Names+f.name)*2 + b2i(f.pq) }
	helloFor := func(f *flowSpec) []byte {
		i := helloAt(f)
		if hellos[i] == nil {
			hellos[i] = clientHello(hr, &clients[f.tls], names[f.name], f.pq)
		}
		return hellos[i]
	}
	srvHello := serverHello(r)
	serverStream := make([]byte, 0, 256*segSize)
	serverStream = append(serverStream, srvHello...)
	for len(serverStream) < cap(serverStream) {
		serverStream = append(serverStream, byte(r.Uint32()))
	}

	var flows []flowSpec
	var pkts []pkt
	durNs := int64(cfg.DurationSec) * 1e9
	for i := range cfg.Flows {
		f := flowSpec{
			name:  r.IntN(cfg.Names),
			pq:    r.Float64() < cfg.PQShare,
			tls:   pickClient(cr),
			v6:    r.Float64() < cfg.IPv6Share,
			cport: uint16(32768 + r.IntN(28000)),
			sport: 443,
		}
		f.pq = f.pq && clients[f.tls].pq
		// Names live on a few hundred server IPs: shared hosting.
		srv := f.name % 400
		f.client, f.server = addrs(f.v6, r.IntN(250), srv)
		flows = append(flows, f)
		t := r.Int64N(durNs)
		rtt := int64(5e6 + r.IntN(80e6))
		isnC, isnS := r.Uint32(), r.Uint32()
		add := func(fromServer bool, flags uint8, seq, ack uint32, k kind, off, n int) {
			ttl := uint8(64)
			if fromServer {
				ttl = 52
			}
			pkts = append(pkts, pkt{ts: t, flow: int32(i), fromServer: fromServer, flags: flags, kind: k, ttl: ttl, seq: seq, ack: ack, off: int32(off), n: int32(n)})
		}
		const (
			fin, syn, rst, psh, ack = 0x01, 0x02, 0x04, 0x08, 0x10
		)
		p := r.Float64()
		if p < cfg.DropShare {
			for k := range 4 {
				add(false, syn, isnC, 0, payNone, 0, 0)
				t += int64(1e9) << k
			}
			continue
		}
		add(false, syn, isnC, 0, payNone, 0, 0)
		t += rtt
		add(true, syn|ack, isnS, isnC+1, payNone, 0, 0)
		t += 50e3
		add(false, ack, isnC+1, isnS+1, payNone, 0, 0)
		hello := helloFor(&f)
		cseq := isnC + 1
		for off := 0; off < len(hello); off += segSize {
			n := min(segSize, len(hello)-off)
			t += 20e3
			add(false, psh|ack, cseq, isnS+1, payHello, off, n)
			cseq += uint32(n)
		}
		t += rtt / 2
		if p < cfg.DropShare+cfg.ResetShare {
			// Forged RST+ACK from "the server", foreign TTL: the GFW shape.
			pkts = append(pkts, pkt{ts: t, flow: int32(i), fromServer: true, flags: rst | ack, ttl: 38, seq: isnS + 1, ack: cseq})
			t += 30e3
			pkts = append(pkts, pkt{ts: t, flow: int32(i), fromServer: true, flags: rst | ack, ttl: 41, seq: isnS + 1 + 1460, ack: cseq})
			continue
		}
		t += rtt / 2
		segs := 1 + r.IntN(2*cfg.MeanSegs)
		sseq := isnS + 1
		for s := range segs {
			off := s * segSize % (len(serverStream) - segSize)
			if s == 0 {
				off = 0
			}
			add(true, ack|psh, sseq, cseq, payServer, off, segSize)
			sseq += segSize
			t += 120e3
			if s%2 == 1 {
				add(false, ack, cseq, sseq, payNone, 0, 0)
			}
		}
		t += rtt / 4
		add(false, fin|ack, cseq, sseq, payNone, 0, 0)
		t += rtt
		add(true, fin|ack, sseq, cseq+1, payNone, 0, 0)
		t += 40e3
		add(false, ack, cseq+1, sseq+1, payNone, 0, 0)
	}
	// Noise: DNS lookups and QUIC datagrams between the same hosts.
	nNoise := int(float64(cfg.Flows) * cfg.NoiseShare)
	for range nNoise {
		i := len(flows)
		f := flowSpec{name: r.IntN(cfg.Names), v6: r.Float64() < cfg.IPv6Share, udp: true, cport: uint16(32768 + r.IntN(28000))}
		t := r.Int64N(durNs)
		if r.IntN(2) == 0 {
			f.client, f.server = addrs(f.v6, r.IntN(250), 1000)
			f.sport = 53
			flows = append(flows, f)
			pkts = append(pkts, pkt{ts: t, flow: int32(i), kind: payDNSQuery, ttl: 64})
			pkts = append(pkts, pkt{ts: t + 15e6, flow: int32(i), fromServer: true, kind: payDNSAnswer, ttl: 60})
			continue
		}
		f.client, f.server = addrs(f.v6, r.IntN(250), f.name%400)
		f.sport = 443
		flows = append(flows, f)
		for k := range 6 {
			pkts = append(pkts, pkt{ts: t + int64(k)*3e6, flow: int32(i), fromServer: k%2 == 1, kind: payQUIC, ttl: 60, n: 1200})
		}
	}
	slices.SortStableFunc(pkts, func(a, b pkt) int { return cmp.Compare(a.ts, b.ts) })

	bw := bufio.NewWriterSize(w, 1<<20)
	pw := pcapgo.NewWriterNanos(bw)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return Stats{}, fmt.Errorf("write pcap header: %w", err)
	}
	ser := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	ipid := make([]uint16, 2*len(flows))
	base := int64(1767225600) * 1e9
	var st Stats
	st.Flows = len(flows)
	dns := dnsMessages(names)
	for _, p := range pkts {
		f := &flows[p.flow]
		src, dst, sp, dp := f.client, f.server, f.cport, f.sport
		if p.fromServer {
			src, dst, sp, dp = dst, src, dp, sp
		}
		var payload []byte
		switch p.kind {
		case payHello:
			h := hellos[helloAt(f)]
			payload = h[p.off : p.off+p.n]
		case payServer:
			payload = serverStream[p.off : p.off+p.n]
		case payDNSQuery:
			payload = dns.query(f.name)
		case payDNSAnswer:
			payload = dns.answer(f.name, f.v6)
		case payQUIC:
			payload = quicNoise(serverStream[:p.n], f, p.fromServer)
		}
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		if p.fromServer {
			eth.SrcMAC, eth.DstMAC = eth.DstMAC, eth.SrcMAC
		}
		var l3 gopacket.SerializableLayer
		var nl gopacket.NetworkLayer
		proto := layers.IPProtocolTCP
		if f.udp {
			proto = layers.IPProtocolUDP
		}
		idk := int(p.flow)*2 + b2i(p.fromServer)
		ipid[idk]++
		if f.v6 {
			eth.EthernetType = layers.EthernetTypeIPv6
			ip := &layers.IPv6{Version: 6, HopLimit: p.ttl, NextHeader: proto, SrcIP: src, DstIP: dst}
			l3, nl = ip, ip
		} else {
			ip := &layers.IPv4{Version: 4, IHL: 5, TTL: p.ttl, Protocol: proto, SrcIP: src, DstIP: dst, Id: ipid[idk], Flags: layers.IPv4DontFragment}
			if p.ttl != 64 && p.ttl != 52 && p.ttl != 60 {
				ip.Id = uint16(r.Uint32())
			}
			l3, nl = ip, ip
		}
		var l4 gopacket.SerializableLayer
		if f.udp {
			u := &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}
			_ = u.SetNetworkLayerForChecksum(nl)
			l4 = u
		} else {
			tcp := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: p.seq, Ack: p.ack, Window: 502,
				FIN: p.flags&0x01 != 0, SYN: p.flags&0x02 != 0, RST: p.flags&0x04 != 0, PSH: p.flags&0x08 != 0, ACK: p.flags&0x10 != 0}
			if tcp.SYN {
				tcp.Window = 64240
				tcp.Options = []layers.TCPOption{
					{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
					{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
					{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
					{OptionType: layers.TCPOptionKindNop},
					{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
				}
			} else if !tcp.RST {
				tcp.Options = []layers.TCPOption{
					{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
					{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
				}
			}
			_ = tcp.SetNetworkLayerForChecksum(nl)
			l4 = tcp
		}
		if err := gopacket.SerializeLayers(ser, opts, eth, l3, l4, gopacket.Payload(payload)); err != nil {
			return st, fmt.Errorf("serialize packet %d: %w", st.Packets, err)
		}
		data := ser.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: unixNano(base + p.ts), CaptureLength: len(data), Length: len(data)}
		if err := pw.WritePacket(ci, data); err != nil {
			return st, fmt.Errorf("write packet %d: %w", st.Packets, err)
		}
		st.Packets++
		st.Bytes += int64(len(data)) + 16
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("flush capture: %w", err)
	}
	return st, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// addrs gives client c and server s addresses in documentation ranges.
func addrs(v6 bool, c, s int) (net.IP, net.IP) {
	if v6 {
		return net.ParseIP(fmt.Sprintf("2001:db8:1::%x", c+1)), net.ParseIP(fmt.Sprintf("2001:db8:2::%x", s+1))
	}
	return net.IPv4(192, 0, 2, byte(c+1)).To4(), net.IPv4(198, 51, byte(s/250), byte(s%250+1)).To4()
}
