package packetread

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/tamperscope/tamperscope/transport/inproc"
)

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
	var d inproc.Discard
	for b.Loop() {
		if _, err := Run(context.Background(), root, &d, Config{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/pkt")
	b.ReportMetric(0, "ns/op")
}
