package ebpf

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/tamperscope/tamperscope/bpf"
	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/capture/afpacket"
	"github.com/tamperscope/tamperscope/internal/testenv"
	"github.com/tamperscope/tamperscope/lab/netns"
	"github.com/tamperscope/tamperscope/schemas"
)

// tcpFrame is an Ethernet/IPv4/TCP data segment with timestamps, the
// common case on a busy vantage: 1448 payload bytes, no snapshot once the
// flow's budget is spent.
func tcpFrame() []byte {
	b := make([]byte, 14+20+32+1448)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)-14))
	ip[8], ip[9] = 64, 6
	copy(ip[12:], []byte{198, 18, 0, 1, 198, 18, 0, 2})
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 443)
	tcp[12] = 8 << 4
	tcp[13] = 0x10
	copy(tcp[20:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	return b
}

// BenchmarkRing drives the program with BPF_PROG_TEST_RUN while Run's
// reader drains the ring; it reports records delivered per second and the
// share the ring dropped.
func BenchmarkRing(b *testing.B) {
	if os.Geteuid() != 0 {
		testenv.Need(b, "BPF_PROG_TEST_RUN needs root")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		b.Fatal(err)
	}
	c, err := bpf.Load(bpf.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rd, err := ringbuf.NewReader(c.Events())
	if err != nil {
		b.Fatal(err)
	}
	r := newReader(discard{}, Config{})
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var rec ringbuf.Record
		for {
			rd.SetDeadline(time.Now().Add(10 * time.Millisecond))
			err := rd.ReadInto(&rec)
			if err == nil {
				_ = r.add(context.Background(), rec.RawSample)
				continue
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			_ = r.flush(context.Background())
			if stop.Load() {
				return
			}
		}
	}()
	frame := tcpFrame()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for left := b.N; left > 0; {
		n := min(left, 1<<20)
		if _, err := c.Program().Run(&ebpf.RunOptions{Data: frame, Repeat: uint32(n)}); err != nil {
			b.Fatal(err)
		}
		left -= n
	}
	stop.Store(true)
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	k, err := c.Counters()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.published)/el.Seconds()/1e6, "Mrec/s")
	b.ReportMetric(100*float64(k.RingDrops)/float64(max(k.Seen, 1)), "loss%")
}

type discard struct{}

func (discard) Publish(context.Context, *schemas.PacketBatch) error { return nil }
func (discard) Close() error                                        { return nil }

// BenchmarkAFPacket floods a veth pair with UDP from several goroutines
// and reads it with the AF_PACKET source on the receiving side; it
// reports packets read per second and the kernel's drop share.
func BenchmarkAFPacket(b *testing.B) {
	needLab(b)
	l := newLab(b)
	var src *afpacket.Source
	if err := netns.Do(l.srv, func() (err error) { src, err = afpacket.Open(srvIf, afpacket.Config{}); return err }); err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	var sent atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			if err := netns.Do(l.cli, func() (err error) { c, err = net.Dial("udp", net.JoinHostPort(srv4, "7")); return err }); err != nil {
				return
			}
			defer c.Close()
			p := make([]byte, 64)
			for ctx.Err() == nil {
				if _, err := c.Write(p); err == nil {
					sent.Add(1)
				}
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	var f capture.Frame
	for i := 0; i < b.N; i++ {
		if err := src.Next(&f); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	cancel()
	wg.Wait()
	st := src.Stats()
	b.ReportMetric(float64(st.Frames)/el.Seconds()/1e6, "Mpps")
	b.ReportMetric(100*float64(st.Drops)/float64(max(st.Frames+st.Drops, 1)), "loss%")
}
