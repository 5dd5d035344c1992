package pcapfile

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"

	"github.com/tamperscope/tamperscope/capture"
)

const benchFrames = 1_000_000

// writeBenchCapture writes benchFrames 60-byte frames with write.
func writeBenchCapture(b *testing.B, name string, write func(w *bufio.Writer)) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	write(w)
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchRead reads b.N frames, reopening the file at its end, so one op is
// one frame and allocs/op is allocations per frame.
func benchRead(b *testing.B, path string) {
	r, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var f capture.Frame
	var size int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := r.Next(&f)
		if err != nil {
			r.Close()
			if r, err = Open(path, Options{}); err != nil {
				b.Fatal(err)
			}
			if err = r.Next(&f); err != nil {
				b.Fatal(err)
			}
		}
		size += int64(len(f.Data))
	}
	b.StopTimer()
	r.Close()
	b.SetBytes(size / int64(max(b.N, 1)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func BenchmarkReadPcap(b *testing.B) {
	frame := make([]byte, 60)
	path := writeBenchCapture(b, "bench.pcap", func(w *bufio.Writer) {
		w.Write(buildPcap(le, 0xa1b2c3d4, 4, 1))
		for i := range benchFrames {
			w.Write(buildPcap(le, 0, 0, 0, rec(uint32(i/1000), uint32(i%1000), frame))[pcapHeaderLen:])
		}
	})
	benchRead(b, path)
}

func BenchmarkReadPcapng(b *testing.B) {
	frame := make([]byte, 60)
	path := writeBenchCapture(b, "bench.pcapng", func(w *bufio.Writer) {
		ng := &ngWriter{order: le}
		w.Write(ng.shb(1, 0).idb(1, 0).b)
		for i := range benchFrames {
			ng.b = ng.b[:0]
			w.Write(ng.epb(0, uint64(i), 60, frame).b)
		}
	})
	benchRead(b, path)
}
