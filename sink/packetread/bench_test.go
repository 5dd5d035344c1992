package packetread

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/tamperscope/tamperscope/schemas"
)

// discard is a publisher that hands batches back for reuse, as inproc does.
type discard struct{ b *schemas.PacketBatch }

func (d *discard) Publish(_ context.Context, b *schemas.PacketBatch) error { d.b = b; return nil }
func (d *discard) Close() error                                            { return nil }
func (d *discard) Get() *schemas.PacketBatch {
	if d.b == nil {
		return &schemas.PacketBatch{}
	}
	b := d.b
	d.b = nil
	b.Packets, b.Arena = b.Packets[:0], b.Arena[:0]
	return b
}

// BenchmarkRun reads a 20k-packet dataset of three hourly partitions; the
// allocations reported are per packet.
func BenchmarkRun(b *testing.B) {
	root := b.TempDir()
	pkts := randomPackets(rand.New(rand.NewPCG(5, 5)), 20000, "v")
	for i := range pkts {
		if i%10 != 0 {
			pkts[i].Payload = nil // snapshots are rare in real archives
		}
	}
	write(b, root, "bench", 0, pkts)
	b.ReportAllocs()
	b.ResetTimer()
	var d discard
	for b.Loop() {
		if _, err := Run(context.Background(), root, &d, Config{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/pkt")
	b.ReportMetric(0, "ns/op")
}
