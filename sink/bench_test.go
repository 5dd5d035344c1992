package sink

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/columnar/columnartest"
)

// packetStream returns n packets shaped like a busy vantage: 1 µs apart,
// 2000 interleaved TCP flows between 200 clients and 50 servers, advancing
// sequence numbers, and a 512-byte payload snapshot on one packet in 200.
func packetStream(n int) []schemas.PacketMeta {
	r := rand.New(rand.NewPCG(7, 8))
	snap := make([]byte, 512)
	for i := range snap {
		snap[i] = byte(r.Uint32())
	}
	seq := make([]uint32, 2000)
	pkts := make([]schemas.PacketMeta, n)
	for i := range pkts {
		f := r.IntN(len(seq))
		p := &pkts[i]
		*p = schemas.PacketMeta{
			TimestampNs: base + int64(i)*int64(time.Microsecond),
			Vantage:     "vp-ams-1", WireLen: 1514, IPVersion: 4,
			Src:   netip.AddrFrom4([4]byte{10, 0, byte(f % 200), 1}),
			Dst:   netip.AddrFrom4([4]byte{203, 0, 113, byte(f % 50)}),
			Proto: schemas.ProtoTCP, TTL: 57, IPID: r.Uint32() & 0xffff, IPLen: 1500,
			SrcPort: uint16(30000 + f), DstPort: 443, TCPFlags: schemas.TCPAck,
			Seq: seq[f], Ack: r.Uint32(), Window: 501, TCPOpts: schemas.OptTimestamps,
			TSVal: uint32(i / 1000), TSEcr: uint32(i/1000 - 20), PayloadLen: 1448,
		}
		seq[f] += 1448
		if i%200 == 0 {
			p.Payload = snap
		}
	}
	return pkts
}

func BenchmarkWritePackets(b *testing.B) {
	pkts := packetStream(1 << 20)
	d, err := Open(b.TempDir(), Config{})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1024
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		off := (i * batch) % len(pkts)
		if err := d.WritePackets(pkts[off : off+batch]); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := d.Stats().Packets
	b.ReportMetric(float64(st.Rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(st.Rows)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
	b.ReportMetric(float64(st.Bytes)/float64(st.Rows), "bytes/row")
	b.ReportMetric(float64(b.N*batch), "rows")
}

func BenchmarkWriteFlows(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	flows := make([]schemas.FlowRecord, 4096)
	for i := range flows {
		columnartest.Fill(&flows[i], r)
		flows[i].StartNs = base + int64(i)
	}
	d, err := Open(b.TempDir(), Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		if err := d.WriteFlow(&flows[i%len(flows)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
}

// cpuTime returns the user and system CPU time of the process: on a machine
// shared with other work, rows per CPU second says more than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPacketMemoryBounded writes 2 Mi packet rows and checks that the heap
// stays bounded by the open row group, not the rows written.
func TestPacketMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2 Mi rows")
	}
	const total = 2 << 20
	pkts := packetStream(1 << 16)
	d, err := Open(t.TempDir(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	var peak, peakLive uint64
	start := time.Now()
	for n := 0; n < total; n += len(pkts) {
		if n%(256<<10) == 0 && n > 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peakLive = max(peakLive, ms.HeapInuse)
		}
		for i := range pkts {
			pkts[i].TimestampNs = base + int64(n+i)*int64(time.Microsecond)
		}
		for off := 0; off < len(pkts); off += 1024 {
			if err := d.WritePackets(pkts[off : off+1024]); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms)
	st := d.Stats().Packets
	t.Logf("%d rows in %v (%.2f M rows/s), %d files, %.1f bytes/row; HeapInuse peak %d MiB, live peak %d MiB (before %d MiB), after Close %d MiB; Sys %d MiB",
		st.Rows, elapsed.Round(time.Millisecond), float64(st.Rows)/elapsed.Seconds()/1e6, st.Files, float64(st.Bytes)/float64(st.Rows),
		peak>>20, peakLive>>20, before>>20, ms.HeapInuse>>20, ms.Sys>>20)
	if st.Rows != total {
		t.Fatalf("%d rows committed, want %d", st.Rows, total)
	}
	// Live heap after a GC: one buffered row group of 1 Mi packet rows
	// (compressed), one Arrow batch, and a page per column. Holding the
	// rows written would take ~150 bytes each, 300 MiB for 2 Mi rows.
	if growth := peakLive - before; growth > 128<<20 {
		t.Errorf("live heap grew by %d MiB while writing, want < 128 MiB", growth>>20)
	}
}
