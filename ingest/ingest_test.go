package ingest

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport/inproc"
)

// frames is a capture.Source over prepared frames, ending with err.
type frames struct {
	f   []capture.Frame
	i   int
	err error
}

func (s *frames) Next(f *capture.Frame) error {
	if s.i == len(s.f) {
		if s.err != nil {
			return s.err
		}
		return io.EOF
	}
	*f = s.f[s.i]
	s.i++
	return nil
}
func (s *frames) Stats() capture.Stats { return capture.Stats{Frames: uint64(s.i)} }
func (s *frames) Close() error         { return nil }

// collector is a transport.Publisher that keeps copies of what it gets.
type collector struct {
	batches int
	pkts    []schemas.PacketMeta
}

func (c *collector) Publish(_ context.Context, b *schemas.PacketBatch) error {
	c.batches++
	for _, p := range b.Packets {
		p.Payload = append([]byte(nil), p.Payload...)
		c.pkts = append(c.pkts, p)
	}
	return nil
}
func (c *collector) Close() error { return nil }

func tcpFrame(t *testing.T, src, dst string, sport, dport uint16, syn bool, payload []byte) capture.Frame {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: !syn, Window: 1000}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	d := buf.Bytes()
	return capture.Frame{LinkType: capture.LinkEthernet, Data: d, CapLen: uint32(len(d)), WireLen: uint32(len(d))}
}

func bytesOf(n int, b byte) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// TestSnapshotPolicy: each direction of a flow keeps payload until its
// packet or byte budget is spent; later bulk data travels without payload
// but with its length; a new SYN on the 4-tuple starts over.
func TestSnapshotPolicy(t *testing.T) {
	var fs []capture.Frame
	fs = append(fs, tcpFrame(t, "192.0.2.1", "198.51.100.1", 40000, 443, true, nil))
	for i := range 5 {
		fs = append(fs, tcpFrame(t, "192.0.2.1", "198.51.100.1", 40000, 443, false, bytesOf(400, byte(i+1))))
		fs = append(fs, tcpFrame(t, "198.51.100.1", "192.0.2.1", 443, 40000, false, bytesOf(400, byte(i+10))))
	}
	fs = append(fs, tcpFrame(t, "192.0.2.1", "198.51.100.1", 40000, 443, true, nil))
	fs = append(fs, tcpFrame(t, "192.0.2.1", "198.51.100.1", 40000, 443, false, bytesOf(400, 99)))
	src := &frames{f: fs}
	col := &collector{}
	st, err := Run(context.Background(), src, col, Config{BatchSize: 3, Snap: SnapConfig{Bytes: 1000, Packets: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Published != uint64(len(fs)) || len(col.pkts) != len(fs) {
		t.Fatalf("published %d (%d collected), want %d", st.Published, len(col.pkts), len(fs))
	}
	if col.batches != (len(fs)+2)/3 {
		t.Errorf("%d batches for %d packets of 3, want %d", col.batches, len(fs), (len(fs)+2)/3)
	}
	var kept [2]int
	for i, p := range col.pkts {
		if p.PayloadLen == 0 {
			continue
		}
		dir := 0
		if p.SrcPort == 443 {
			dir = 1
		}
		switch {
		case i == len(col.pkts)-1: // after the new SYN
			if len(p.Payload) != 400 || p.Payload[0] != 99 {
				t.Errorf("packet after a new SYN: %d payload bytes, want a fresh 400", len(p.Payload))
			}
		case len(p.Payload) > 0:
			if p.PayloadLen != 400 {
				t.Errorf("packet %d: PayloadLen %d, want 400", i, p.PayloadLen)
			}
			kept[dir]++
		}
	}
	if kept != [2]int{2, 2} {
		t.Errorf("snapshotted packets per direction %v, want [2 2] (the packet budget)", kept)
	}
	if st.SnapBytes != 5*400 {
		t.Errorf("SnapBytes %d, want %d", st.SnapBytes, 5*400)
	}
}

// TestSnapshotByteBudget: the byte budget cuts a packet's snapshot short.
func TestSnapshotByteBudget(t *testing.T) {
	fs := []capture.Frame{
		tcpFrame(t, "192.0.2.1", "198.51.100.1", 40000, 443, false, bytesOf(700, 1)),
		tcpFrame(t, "192.0.2.1", "198.51.100.1", 40000, 443, false, bytesOf(700, 2)),
	}
	col := &collector{}
	if _, err := Run(context.Background(), &frames{f: fs}, col, Config{Snap: SnapConfig{Bytes: 1000}}); err != nil {
		t.Fatal(err)
	}
	if got := []int{len(col.pkts[0].Payload), len(col.pkts[1].Payload)}; got[0] != 700 || got[1] != 300 {
		t.Errorf("snapshot lengths %v, want [700 300]", got)
	}
}

// TestUndecodableFramesCountedAndReadErrorKept: frames that do not decode
// are skipped and counted; a source error after good frames is returned
// with the good frames already published.
func TestUndecodableFramesCountedAndReadErrorKept(t *testing.T) {
	good := tcpFrame(t, "192.0.2.1", "198.51.100.1", 40000, 443, true, nil)
	junk := capture.Frame{LinkType: capture.LinkEthernet, Data: []byte{1, 2, 3}, CapLen: 3, WireLen: 3}
	boom := errors.New("corrupt tail")
	col := &collector{}
	st, err := Run(context.Background(), &frames{f: []capture.Frame{good, junk, good}, err: boom}, col, Config{})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want the source's", err)
	}
	if len(col.pkts) != 2 || st.Skipped() != 1 {
		t.Errorf("published %d, skipped %d; want 2 and 1", len(col.pkts), st.Skipped())
	}
}

func TestFlowHashSymmetric(t *testing.T) {
	p := schemas.PacketMeta{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"), SrcPort: 1, DstPort: 2, Proto: 6}
	q := schemas.PacketMeta{Src: p.Dst, Dst: p.Src, SrcPort: 2, DstPort: 1, Proto: 6}
	h1, d1 := flowHash(&p)
	h2, d2 := flowHash(&q)
	if h1 != h2 || d1 == d2 {
		t.Errorf("hash %x/%x dir %d/%d: want equal hashes, opposite directions", h1, h2, d1, d2)
	}
}

func BenchmarkRun(b *testing.B) {
	f := tcpFrame(&testing.T{}, "192.0.2.1", "198.51.100.1", 40000, 443, false, bytesOf(1000, 1))
	fs := make([]capture.Frame, 4096)
	for i := range fs {
		fs[i] = f
	}
	pub := &inproc.Discard{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Run(context.Background(), &frames{f: fs}, pub, Config{Snap: SnapConfig{Slots: 1024}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(fs))/b.Elapsed().Seconds()/1e6, "Mpkt/s")
}

// idle is a live source that has nothing for a while after its frames.
type idle struct {
	frames
	waits int
}

func (s *idle) Next(f *capture.Frame) error {
	if s.i == len(s.f) && s.waits > 0 {
		s.waits--
		time.Sleep(2 * time.Millisecond) // the poll timeout of a live source
		return capture.ErrNoFrame
	}
	return s.frames.Next(f)
}

// TestFlushIntervalOnIdleSource: with a flush interval, a partial batch
// is published while a live source is idle, not only at its end.
func TestFlushIntervalOnIdleSource(t *testing.T) {
	src := &idle{frames: frames{f: []capture.Frame{tcpFrame(t, "192.0.2.1", "198.51.100.1", 40000, 443, true, nil)}}, waits: 100}
	// The publisher runs on Run's goroutine: it can read the source.
	pub := &firstPublish{got: make(chan int, 4), idleLeft: func() int { return src.waits }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := Run(context.Background(), src, pub, Config{FlushInterval: time.Millisecond}); err != nil {
			t.Error(err)
		}
	}()
	select {
	case n := <-pub.got:
		if n != 1 {
			t.Errorf("first batch has %d packets, want 1", n)
		}
		if left := <-pub.got; left == 0 {
			t.Error("the batch was published only when the source ended")
		}
	case <-done:
		t.Fatal("Run ended without publishing")
	}
	<-done
}

type firstPublish struct {
	got      chan int
	idleLeft func() int
	n        int
}

// Publish reports the first batch's size and how many idle polls the
// source still had to go.
func (p *firstPublish) Publish(_ context.Context, b *schemas.PacketBatch) error {
	if p.n++; p.n == 1 {
		p.got <- len(b.Packets)
		p.got <- p.idleLeft()
	}
	return nil
}
func (p *firstPublish) Close() error { return nil }

// TestBatchBytesBoundsArena: a batch ends once its snapshots reach
// BatchBytes, whatever its packet count.
func TestBatchBytesBoundsArena(t *testing.T) {
	var fs []capture.Frame
	for i := range 10 {
		fs = append(fs, tcpFrame(t, "192.0.2.1", "198.51.100.1", uint16(40000+i), 443, false, bytesOf(1000, 1)))
	}
	col := &collector{}
	if _, err := Run(context.Background(), &frames{f: fs}, col, Config{BatchBytes: 2500}); err != nil {
		t.Fatal(err)
	}
	if col.batches != 4 || len(col.pkts) != 10 {
		t.Errorf("%d batches of %d packets, want 4 batches (3+3+3+1) of 10", col.batches, len(col.pkts))
	}
}

// TestTruncatedWhileMapped: a capture file that shrinks while the reader
// has it mapped faults on the next access. Run must end with
// ErrInputFault, not crash, and publish every packet read whole before the
// fault, and none of the one it faulted in.
func TestTruncatedWhileMapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shrinks.pcap")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(out)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	const n, payload = 64, 1000
	var recLen int
	for i := range n {
		// One flow per packet, so the snapshot policy keeps every payload
		// and copying it touches the bytes past the cut.
		f := tcpFrame(t, "10.0.0.1", "10.0.0.2", uint16(1000+i), 443, false, bytesOf(payload, byte(i)))
		recLen = 16 + len(f.Data)
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(i), 0), CaptureLength: len(f.Data), Length: len(f.Data)}
		if err := w.WritePacket(ci, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := pcapfile.Open(path, pcapfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const cut = 4 * 4096
	if err := os.Truncate(path, cut); err != nil {
		t.Fatal(err)
	}
	var c collector
	st, err := Run(context.Background(), src, &c, Config{})
	if !errors.Is(err, ErrInputFault) {
		t.Fatalf("Run error = %v, want ErrInputFault", err)
	}
	whole := (cut - 24) / recLen
	if len(c.pkts) != whole || st.Published != uint64(whole) {
		t.Fatalf("published %d packets (stats %d), want the %d read whole before the cut", len(c.pkts), st.Published, whole)
	}
	for i, p := range c.pkts {
		if len(p.Payload) != payload || p.Payload[0] != byte(i) || p.Payload[payload-1] != byte(i) {
			t.Fatalf("packet %d: payload %d bytes starting %v, want %d bytes of %d", i, len(p.Payload), p.Payload[:min(4, len(p.Payload))], payload, i)
		}
	}
}
