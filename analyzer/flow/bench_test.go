package flow

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tamperscope/tamperscope/schemas"
)

// workload builds n packets over the given number of flows: each flow is a
// handshake, request, response data and a close, interleaved round-robin,
// with timestamps advancing stepNs per packet. Payload snapshots are small
// (as the capture side sends them) so stream reassembly runs too.
func workload(n, flows int, stepNs int64) []schemas.PacketMeta {
	pkts := make([]schemas.PacketMeta, 0, n)
	payload := make([]byte, 256)
	type fl struct {
		cli     netip.Addr
		cp      uint16
		c, s    uint32
		step    int
		started bool
	}
	fs := make([]fl, flows)
	for i := range fs {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
		fs[i] = fl{cli: netip.AddrFrom4(a), cp: uint16(1024 + i%60000), c: uint32(i) * 7919, s: uint32(i) * 104729}
	}
	ts := int64(1_700_000_000_000_000_000)
	srv := netip.MustParseAddr("93.184.216.34")
	for i := 0; len(pkts) < n; i++ {
		f := &fs[i%flows]
		ts += stepNs
		p := schemas.PacketMeta{TimestampNs: ts, IPVersion: 4, Proto: schemas.ProtoTCP, TTL: 64, Window: 1024, IPID: uint32(i)}
		fromClient := true
		switch k := f.step % 20; {
		case k == 0:
			p.TCPFlags = schemas.TCPSyn
		case k == 1:
			p.TCPFlags, fromClient = schemas.TCPSyn|schemas.TCPAck, false
		case k == 2:
			p.TCPFlags = schemas.TCPAck
		case k == 3:
			p.TCPFlags, p.PayloadLen, p.Payload = schemas.TCPAck|schemas.TCPPsh, 256, payload
		case k < 18:
			p.TCPFlags, p.PayloadLen, fromClient = schemas.TCPAck, 1400, false
			if k < 6 {
				p.Payload = payload
			}
		case k == 18:
			p.TCPFlags = schemas.TCPFin | schemas.TCPAck
		default:
			p.TCPFlags, fromClient = schemas.TCPFin|schemas.TCPAck, false
		}
		if f.step%20 == 0 {
			// A new connection on the next source port.
			f.cp++
			f.c += 1 << 20
			f.s += 1 << 20
		}
		f.step++
		adv := p.PayloadLen
		if p.TCPFlags&(schemas.TCPSyn|schemas.TCPFin) != 0 {
			adv++
		}
		if fromClient {
			p.Src, p.Dst, p.SrcPort, p.DstPort, p.Seq, p.Ack = f.cli, srv, f.cp, 443, f.c, f.s
			f.c += adv
		} else {
			p.Src, p.Dst, p.SrcPort, p.DstPort, p.Seq, p.Ack = srv, f.cli, 443, f.cp, f.s, f.c
			f.s += adv
		}
		p.IPLen = uint16(40 + p.PayloadLen)
		pkts = append(pkts, p)
	}
	return pkts
}

func TestUpdateAllocs(t *testing.T) {
	pkts := workload(200_000, 5_000, 1_000_000) // 200 s: closed flows end
	ended := 0
	tb := New(Config{OnEnd: func(st *State, _ EndReason) { ended++ }})
	// Warm up: grow chunks, index and buffer pool to their working size.
	for i := range pkts[:100_000] {
		tb.Update(&pkts[i])
	}
	rest := pkts[100_000:]
	i := 0
	allocs := testing.AllocsPerRun(len(rest)-1, func() {
		tb.Update(&rest[i])
		i++
	})
	if allocs != 0 {
		t.Errorf("Update allocates %.3f times per packet in steady state", allocs)
	}
	if ended == 0 {
		t.Error("workload ended no flows: steady state not exercised")
	}
}

// BenchmarkUpdate: 1M packets over 50k flows, replayed; single runs Update
// packet by packet, batched the engine's way: KeysOf and Prefetch over a
// batch of 4096, then UpdateKeyed.
func BenchmarkUpdate(b *testing.B) {
	for _, batched := range []bool{false, true} {
		name := "single"
		if batched {
			name = "batched"
		}
		b.Run(name, func(b *testing.B) { benchUpdate(b, batched) })
	}
}

func benchUpdate(b *testing.B, batched bool) {
	pkts := workload(1_000_000, 50_000, 10_000) // 10 s of packet time
	tb := New(Config{OnEnd: func(*State, EndReason) {}})
	// As the engine does: once a parser has what it needs (here the first
	// 256 bytes of each direction), it stops collection.
	keyed := make([]KeyedPacket, 4096)
	update := func(ps []schemas.PacketMeta) {
		if batched {
			keyed = KeysOf(keyed, ps)
			for i := range keyed {
				tb.Prefetch(&keyed[i])
			}
		}
		for i := range ps {
			var st *State
			var d Dir
			if batched {
				st, d, _ = tb.UpdateKeyed(&ps[i], &keyed[i])
			} else {
				st, d, _ = tb.Update(&ps[i])
			}
			if st != nil && len(st.Stream(d)) >= 256 {
				st.StopCollect(d)
			}
		}
	}
	for i := 0; i < len(pkts); i += len(keyed) {
		update(pkts[i:min(i+len(keyed), len(pkts))])
	}
	b.ReportAllocs()
	b.ResetTimer()
	// Replays keep packet time moving forward so flows churn as in a
	// capture.
	shift := pkts[len(pkts)-1].TimestampNs - pkts[0].TimestampNs + 1
	for n := 0; n < b.N; {
		b.StopTimer()
		for i := range pkts {
			pkts[i].TimestampNs += shift
		}
		b.StartTimer()
		for i := 0; i < len(pkts) && n < b.N; {
			m := min(len(keyed), len(pkts)-i, b.N-n)
			update(pkts[i : i+m])
			i, n = i+m, n+m
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mupdates/s")
}
