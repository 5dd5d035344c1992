package partitioned

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/internal/synth"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
	"github.com/tamperscope/tamperscope/transport"
)

// offsets records the commits of a Consumer.
type offsets map[int]int64

func (o offsets) Commit(partition int, offset int64) error {
	o[partition] = offset
	return nil
}

// longFlowStream is one partition's messages: two hours of a TCP
// connection open from the first second to the last, with data every ten
// seconds, among DNS exchanges that each last a moment. Each message holds
// 100 seconds.
func longFlowStream() (msgs []*schemas.PacketBatch, longPkts uint64) {
	const base = int64(1_700_000_000_000_000_000)
	cli, srv := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.1")
	resolver := netip.MustParseAddr("192.0.2.53")
	tcp := func(ts int64, fromClient bool, flags uint8, seq, ack uint32, n int) schemas.PacketMeta {
		p := schemas.PacketMeta{TimestampNs: ts, IPVersion: 4, Proto: schemas.ProtoTCP, TTL: 64, TCPFlags: flags,
			Seq: seq, Ack: ack, Window: 65535, PayloadLen: uint32(n), IPLen: uint16(40 + n),
			Src: cli, Dst: srv, SrcPort: 40000, DstPort: 443}
		if !fromClient {
			p.Src, p.Dst, p.SrcPort, p.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
		}
		return p
	}
	udp := func(ts int64, port uint16, query bool) schemas.PacketMeta {
		p := schemas.PacketMeta{TimestampNs: ts, IPVersion: 4, Proto: schemas.ProtoUDP, TTL: 64, IPLen: 28,
			Src: cli, Dst: resolver, SrcPort: port, DstPort: 53}
		if !query {
			p.Src, p.Dst, p.SrcPort, p.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
		}
		return p
	}
	const syn, ack, fin = schemas.TCPSyn, schemas.TCPAck, schemas.TCPFin
	const steps = 720 // of ten seconds
	var b *schemas.PacketBatch
	cseq, sseq := uint32(1000), uint32(5000)
	for i := range steps {
		if i%10 == 0 {
			b = &schemas.PacketBatch{}
			msgs = append(msgs, b)
		}
		ts := base + int64(i)*10*int64(time.Second)
		switch i {
		case 0:
			b.Packets = append(b.Packets, tcp(ts, true, syn, cseq, 0, 0), tcp(ts+1e6, false, syn|ack, sseq, cseq+1, 0), tcp(ts+2e6, true, ack, cseq+1, sseq+1, 0))
			cseq, sseq = cseq+1, sseq+1
			longPkts += 3
		case steps - 1:
			b.Packets = append(b.Packets, tcp(ts, true, fin|ack, cseq, sseq, 0), tcp(ts+1e6, false, fin|ack, sseq, cseq+1, 0), tcp(ts+2e6, true, ack, cseq+1, sseq+1, 0))
			longPkts += 3
		default:
			b.Packets = append(b.Packets, tcp(ts, false, ack, sseq, cseq, 1000), tcp(ts+1e6, true, ack, cseq, sseq+1000, 0))
			sseq += 1000
			longPkts += 2
		}
		b.Packets = append(b.Packets, udp(ts+3e6, uint16(50000+i), true), udp(ts+4e6, uint16(50000+i), false))
	}
	return msgs, longPkts
}

// consume runs msgs[from:to] through a Consumer of partition 0 writing
// under root; close ends the stream, otherwise the Consumer is dropped as
// a killed process would drop it.
func consume(t *testing.T, root string, msgs []*schemas.PacketBatch, from, to int, commits offsets, close bool) *Consumer {
	t.Helper()
	c, err := New(Config{Topic: "t", Root: root, Commit: commits, CheckpointMessages: 1, MaxOpen: 5 * time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for off := from; off < to; off++ {
		if err := c.Process(transport.Delivery{Batch: msgs[off], Offset: int64(off)}); err != nil {
			t.Fatal(err)
		}
	}
	if close {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func flowRows(t *testing.T, root string) []schemas.FlowRecord {
	t.Helper()
	var rs []schemas.FlowRecord
	if err := sink.ReadRecords(root, "flows", nil, func(r *schemas.FlowRecord) error {
		rs = append(rs, *r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rs, func(a, b schemas.FlowRecord) int { return cmp.Compare(a.FlowID, b.FlowID) })
	return rs
}

// TestLongFlowSplit: a connection open for the whole stream does not hold
// the committed offset at its start. Checkpoints split it (MaxOpen), the
// offset moves on, and an analyzer killed and resumed from that offset
// writes the same flow rows as one that was never stopped: every packet of
// the long connection in exactly one of its pieces. Once the resumed
// analyzer is past what it replayed, it lets go of the rows it read back.
func TestLongFlowSplit(t *testing.T) {
	msgs, longPkts := longFlowStream()

	whole := t.TempDir()
	consume(t, whole, msgs, 0, len(msgs), offsets{}, true)
	want := flowRows(t, whole)
	var pieces, pkts uint64
	for _, r := range want {
		if r.Proto == "tcp" {
			pieces++
			pkts += r.ClientPkts + r.ServerPkts
		}
	}
	if pieces < 16 || pkts != longPkts {
		t.Fatalf("the two-hour connection is %d pieces holding %d packets; want one per 5 to 7 min, holding all %d", pieces, pkts, longPkts)
	}

	resumed := t.TempDir()
	commits := offsets{}
	consume(t, resumed, msgs, 0, 30, commits, false)
	off, ok := commits[0]
	if !ok || off < 10 {
		t.Fatalf("committed offset %d (committed: %v) after 30 of %d messages (50 min): the long flow holds it back", off, ok, len(msgs))
	}
	c := consume(t, resumed, msgs, int(off)+1, len(msgs), commits, false)
	if n := len(c.parts[0].prior.ids); n > 0 {
		t.Errorf("an hour and more after the resumption, %d ids of rows written before it still held", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got := flowRows(t, resumed)
	if len(got) != len(want) {
		t.Fatalf("resumed run wrote %d flows, the whole run %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("flow %d differs:\nresumed %+v\nwhole   %+v", i, got[i], want[i])
		}
	}
}

// synthStream is an hour of synthetic traffic (internal/synth) with
// resets concentrated on a few names, in messages of 500 packets.
func synthStream(t *testing.T) []*schemas.PacketBatch {
	t.Helper()
	var pcap bytes.Buffer
	if _, err := synth.Write(&pcap, synth.Config{Flows: 3000, DurationSec: 3600, Names: 40, ResetShare: 0.05, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	src, err := pcapfile.NewReader(&pcap, "synth", pcapfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var c batches
	if _, err := ingest.Run(context.Background(), src, &c, ingest.Config{BatchSize: 500}); err != nil {
		t.Fatal(err)
	}
	return c
}

// batches collects what ingest.Run publishes.
type batches []*schemas.PacketBatch

func (c *batches) Publish(_ context.Context, b *schemas.PacketBatch) error {
	*c = append(*c, b)
	return nil
}

func (c *batches) Close() error { return nil }

// TestResumedDetectors: an analyzer killed in the middle of an hour of
// traffic and resumed from its committed offset writes the same flows,
// findings and window digests as one that was never stopped: the flows of
// the detection windows still open at the kill are all judged again.
func TestResumedDetectors(t *testing.T) {
	msgs := synthStream(t)
	whole := t.TempDir()
	consume(t, whole, msgs, 0, len(msgs), offsets{}, true)
	want := readAll(t, whole)
	if len(want.findings) < 5 {
		t.Fatalf("the whole run has %d findings; the stream should make more", len(want.findings))
	}

	resumed := t.TempDir()
	commits := offsets{}
	kill := len(msgs) * 6 / 10
	consume(t, resumed, msgs, 0, kill, commits, false)
	off, ok := commits[0]
	if !ok {
		t.Fatalf("nothing committed after %d of %d messages (an hour of traffic)", kill, len(msgs))
	}
	consume(t, resumed, msgs, int(off)+1, len(msgs), commits, true)
	got := readAll(t, resumed)
	if diff := gocmp.Diff(want, got, gocmp.AllowUnexported(rows{})); diff != "" {
		t.Errorf("resumed at offset %d of %d, killed at %d: rows differ from the whole run (-whole +resumed):\n%s", off, len(msgs), kill, diff)
	}
}

// rows are a dataset's rows, sorted by id.
type rows struct {
	flows    []schemas.FlowRecord
	findings []schemas.Finding
	digests  []schemas.WindowDigest
}

func readAll(t *testing.T, root string) rows {
	t.Helper()
	r := rows{flows: flowRows(t, root)}
	err := sink.ReadRecords(root, "findings", nil, func(f *schemas.Finding) error {
		r.findings = append(r.findings, *f)
		return nil
	})
	if err == nil {
		err = sink.ReadRecords(root, "digests", nil, func(d *schemas.WindowDigest) error {
			r.digests = append(r.digests, *d)
			return nil
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(r.findings, func(a, b schemas.Finding) int { return cmp.Compare(a.FindingID, b.FindingID) })
	slices.SortFunc(r.digests, func(a, b schemas.WindowDigest) int { return cmp.Compare(a.DigestID, b.DigestID) })
	return r
}

// TestProgressAcrossGap: a partition whose traffic stops for most of an
// hour has no flow in the windows of the gap, so nothing there is judged;
// once its traffic comes back, a digest (empty if need be) still shows
// aggregate that every window up to 28 minutes back is judged.
func TestProgressAcrossGap(t *testing.T) {
	msgs, _ := longFlowStream()
	var keep []*schemas.PacketBatch
	var dns []schemas.PacketMeta
	for _, m := range msgs[:6] { // the first 10 minutes
		keep = append(keep, &schemas.PacketBatch{Packets: udpOnly(m.Packets)})
	}
	for _, m := range msgs[36:39] { // an hour later
		p := udpOnly(m.Packets)
		dns = append(dns, p...)
		keep = append(keep, &schemas.PacketBatch{Packets: p})
	}
	root := t.TempDir()
	consume(t, root, keep, 0, len(keep), offsets{}, false)
	through, first := int64(math.MinInt64), keep[0].Packets[0].TimestampNs
	if err := sink.ReadRecords(root, "digests", nil, func(d *schemas.WindowDigest) error {
		through = max(through, d.WindowStartNs)
		if d.WindowStartNs < first-int64(10*time.Minute) {
			t.Errorf("digest %s of a window before the partition's first packet", d.DigestID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	last := dns[len(dns)-1].TimestampNs
	if want := last - int64(38*time.Minute); through < want {
		t.Errorf("digests reach the window of %s, want at least %s (38 minutes before the last packet)",
			time.Unix(0, through).UTC(), time.Unix(0, want).UTC())
	}
}

// udpOnly keeps the UDP packets of ps.
func udpOnly(ps []schemas.PacketMeta) []schemas.PacketMeta {
	var out []schemas.PacketMeta
	for _, p := range ps {
		if p.Proto == schemas.ProtoUDP {
			out = append(out, p)
		}
	}
	return out
}

// TestClockMovesQuietPartition: a partition whose traffic stops is moved
// on by clock messages alone: its flows expire and are written, its
// windows are judged and its offset is committed past its last packet,
// all before the stream ends. Without the clocks they all wait.
func TestClockMovesQuietPartition(t *testing.T) {
	msgs, _ := longFlowStream()
	var data []*schemas.PacketBatch
	flows := map[uint16]bool{}   // the DNS exchanges, one flow each
	for _, m := range msgs[:6] { // 10 minutes, then silence
		p := udpOnly(m.Packets)
		for _, q := range p {
			flows[max(q.SrcPort, q.DstPort)] = true
		}
		data = append(data, &schemas.PacketBatch{Packets: p})
	}
	last := data[len(data)-1].Packets[len(data[len(data)-1].Packets)-1].TimestampNs
	run := func(clocks bool) (rows []schemas.FlowRecord, committed int64, through int64) {
		root := t.TempDir()
		commits := offsets{}
		c, err := New(Config{Topic: "t", Root: root, Commit: commits, CheckpointMessages: 1,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		off := int64(0)
		for _, b := range data {
			if err := c.Process(transport.Delivery{Batch: b, Offset: off}); err != nil {
				t.Fatal(err)
			}
			off++
		}
		for ns := last + int64(10*time.Second); clocks && ns <= last+int64(time.Hour); ns += int64(10 * time.Second) {
			if err := c.Process(transport.Delivery{Batch: &schemas.PacketBatch{}, Offset: off, ClockNs: ns}); err != nil {
				t.Fatal(err)
			}
			off++
		}
		through = math.MinInt64
		if err := sink.ReadRecords(root, "digests", nil, func(d *schemas.WindowDigest) error {
			through = max(through, d.WindowStartNs)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		committed = -1
		if o, ok := commits[0]; ok {
			committed = o
		}
		return flowRows(t, root), committed, through
	}

	rows, committed, through := run(true)
	if len(rows) != len(flows) {
		t.Errorf("%d of %d flows written before the stream ended", len(rows), len(flows))
	}
	for _, r := range rows {
		if r.EndReason != "idle" {
			t.Errorf("flow %s ended %q, want idle", r.FlowID, r.EndReason)
		}
	}
	if committed < int64(len(data)-1) {
		t.Errorf("offset committed through %d, want past the last packet's message (%d)", committed, len(data)-1)
	}
	if want := last + int64(time.Hour) - int64(38*time.Minute); through < want {
		t.Errorf("digests reach the window of %s, want at least %s", time.Unix(0, through).UTC(), time.Unix(0, want).UTC())
	}

	rows, committed, through = run(false)
	if len(rows) == len(flows) || committed >= int64(len(data)-1) || through >= last-int64(10*time.Minute) {
		t.Errorf("without clocks: %d of %d flows written, offset %d committed, digests through %s: the clocks made no difference",
			len(rows), len(flows), committed, time.Unix(0, through).UTC())
	}
}
