package kafka

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tamperscope/tamperscope/schemas"
)

// TestClocks: a partition whose server went quiet is sent clock messages
// as the packet time of the others moves on, each after its rows, at most
// ClockEvery behind; a busy partition is sent none.
func TestClocks(t *testing.T) {
	brokers(t, func(t *testing.T, b broker) {
		const parts = 2
		busy, quiet := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
		for i := 3; partitionOf(quiet, parts) == partitionOf(busy, parts); i++ {
			quiet = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		}
		topic := b.newName("packets")
		b.create(t, topic, parts)
		b.create(t, topic+".dlq", 1)
		ctx := context.Background()
		pub, err := NewPublisher(ctx, PublisherConfig{Brokers: b.addrs, Topic: topic, Partitions: parts,
			Linger: 10 * time.Millisecond, ClockEvery: 10 * time.Second, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		const base = int64(1_700_000_000_000_000_000)
		row := func(seq uint32, srv netip.Addr, sec int) schemas.PacketMeta {
			return schemas.PacketMeta{TimestampNs: base + int64(sec)*int64(time.Second), Seq: seq, Proto: schemas.ProtoTCP,
				Src: netip.MustParseAddr("10.0.0.1"), Dst: srv, SrcPort: 40000, DstPort: 443}
		}
		// The quiet server has one packet at the start, the busy one a
		// packet every second for a minute.
		const seconds = 60
		for sec := range seconds + 1 {
			batch := &schemas.PacketBatch{Packets: []schemas.PacketMeta{row(uint32(sec), busy, sec)}}
			if sec == 0 {
				batch.Packets = append(batch.Packets, row(1000, quiet, 0))
			}
			if err := pub.Publish(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		if err := pub.Close(); err != nil {
			t.Fatal(err)
		}
		st := pub.Stats()
		if st.AckedRows != seconds+2 {
			t.Fatalf("publisher stats %+v: want %d rows acknowledged", st, seconds+2)
		}

		sub := subscribe(t, b, topic)
		var clocks []int64 // of the quiet partition, in offset order
		quietRows, rows := 0, 0
		for rows < seconds+2 || uint64(len(clocks)) < st.Clocks {
			d := nextWithin(t, sub, 30*time.Second)
			switch {
			case d.ClockNs != 0 && d.Partition != partitionOf(quiet, parts):
				t.Fatalf("clock message to the busy partition %d at %d s", d.Partition, (d.ClockNs-base)/1e9)
			case d.ClockNs != 0 && len(d.Batch.Packets) > 0:
				t.Fatalf("clock message with %d rows", len(d.Batch.Packets))
			case d.ClockNs != 0:
				if quietRows == 0 {
					t.Fatal("clock message before the quiet partition's row")
				}
				clocks = append(clocks, d.ClockNs)
			case d.Partition == partitionOf(quiet, parts):
				quietRows += len(d.Batch.Packets)
			}
			rows += len(d.Batch.Packets)
			sub.Release(d)
		}
		if uint64(len(clocks)) != st.Clocks || len(clocks) < seconds/10-1 {
			t.Fatalf("%d clock messages delivered, %d sent; want about one per 10 s of a %d s stream", len(clocks), st.Clocks, seconds)
		}
		last := base
		for _, c := range clocks {
			if c-last < int64(10*time.Second) {
				t.Errorf("clock at %d s, %d s after the previous: want at least ClockEvery apart", (c-base)/1e9, (c-last)/1e9)
			}
			last = c
		}
		if end := base + seconds*int64(time.Second); end-last >= int64(10*time.Second) {
			t.Errorf("last clock at %d s, want within 10 s of the stream's end (%d s)", (last-base)/1e9, seconds)
		}
	})
}

// TestClockCorrupt: a clock header that holds no time, or one on a message
// with a value, sends the message to the dead-letter topic.
func TestClockCorrupt(t *testing.T) {
	b := fakeBroker(t)
	topic := b.newName("packets")
	b.create(t, topic, 1)
	b.create(t, topic+".dlq", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	writeRaw(t, ctx, b, topic,
		kafkago.Message{Headers: []kafkago.Header{{Key: HeaderClock, Value: []byte("soon")}}},
		kafkago.Message{Headers: []kafkago.Header{{Key: HeaderClock, Value: []byte("1700000000000000000")}}, Value: []byte("rows?")},
		kafkago.Message{Headers: []kafkago.Header{{Key: HeaderClock, Value: []byte("1700000000000000000")}}},
	)
	sub := subscribe(t, b, topic)
	d := nextWithin(t, sub, 60*time.Second)
	if d.Offset != 2 || d.ClockNs != 1_700_000_000_000_000_000 || len(d.Batch.Packets) != 0 {
		t.Fatalf("delivered offset %d clock %d with %d rows, want offset 2, the clock, no rows", d.Offset, d.ClockNs, len(d.Batch.Packets))
	}
	if st := sub.Stats(); st.Corrupt != 2 || st.DeadLettered != 2 {
		t.Fatalf("stats %+v, want 2 corrupt, 2 dead-lettered", st)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: b.addrs, Topic: topic + ".dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for _, want := range []string{"not a packet time", "clock message with a 5-byte value"} {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var reason string
		for _, h := range m.Headers {
			if h.Key == HeaderReason {
				reason = string(h.Value)
			}
		}
		if !strings.Contains(reason, want) {
			t.Errorf("dead-letter reason %q, want %q", reason, want)
		}
	}
}
