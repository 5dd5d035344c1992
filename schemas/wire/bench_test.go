package wire

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/tamperscope/tamperscope/schemas"
)

// trafficBatch looks like a capture: IPv4 and IPv6 TCP flows with
// increasing timestamps and sequence numbers, one vantage, and a
// ClientHello-sized payload snapshot on one packet in 20.
func trafficBatch(n int) *schemas.PacketBatch {
	rng := rand.New(rand.NewPCG(17, 18))
	b := &schemas.PacketBatch{}
	hello := make([]byte, 517)
	for i := range hello {
		hello[i] = byte(rng.Uint32() >> 28) // half-entropy bytes, like a real hello
	}
	ts := int64(1_700_000_000_000_000_000)
	for i := range n {
		flow := rng.IntN(64)
		client := netip.AddrFrom4([4]byte{10, 0, 0, byte(flow)})
		server := netip.AddrFrom4([4]byte{93, 184, byte(flow / 8), byte(flow)})
		if flow%4 == 0 {
			client = netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(flow)})
			server = netip.AddrFrom16([16]byte{0x26, 6, 0x47, 0, 15: byte(flow)})
		}
		ts += int64(rng.IntN(20000))
		p := schemas.PacketMeta{
			TimestampNs: ts, Vantage: "ams-1", Iface: 2, WireLen: 66 + uint32(rng.IntN(1400)),
			IPVersion: 4, Src: client, Dst: server, Proto: schemas.ProtoTCP, TTL: 64,
			IPID: uint32(i), IPLen: 52, SrcPort: 40000 + uint16(flow), DstPort: 443,
			TCPFlags: schemas.TCPAck, Seq: uint32(i * 1448), Ack: uint32(i * 31), Window: 502,
			TCPOpts: schemas.OptTimestamps, TSVal: uint32(ts / 1e6), TSEcr: uint32(ts/1e6) - 20,
			PayloadLen: uint32(rng.IntN(1400)),
		}
		if rng.IntN(2) == 0 {
			p.Src, p.Dst, p.SrcPort, p.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
		}
		if i%20 == 0 {
			lo := len(b.Arena)
			b.Arena = append(b.Arena, hello...)
			p.Payload = b.Arena[lo:len(b.Arena):len(b.Arena)]
		}
		b.Packets = append(b.Packets, p)
	}
	// Payload slices were taken while Arena grew; point them at its final
	// storage as a capture would.
	off := 0
	for i := range b.Packets {
		if b.Packets[i].Payload != nil {
			b.Packets[i].Payload = b.Arena[off : off+len(hello) : off+len(hello)]
			off += len(hello)
		}
	}
	return b
}

const benchRows = 4096

func BenchmarkEncode(b *testing.B) {
	for _, c := range codecs {
		b.Run(c.String(), func(b *testing.B) {
			in := trafficBatch(benchRows)
			e, _ := NewEncoder(EncoderOptions{Codec: c})
			var msg []byte
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if msg, err = e.Encode(msg[:0], in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(len(msg))/benchRows, "bytes/row")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range codecs {
		b.Run(c.String(), func(b *testing.B) {
			in := trafficBatch(benchRows)
			e, _ := NewEncoder(EncoderOptions{Codec: c})
			msg, err := e.Encode(nil, in)
			if err != nil {
				b.Fatal(err)
			}
			d := NewDecoder(DecoderOptions{})
			var out schemas.PacketBatch
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Decode(msg, &out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
