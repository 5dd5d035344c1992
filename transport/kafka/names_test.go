package kafka

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tamperscope/tamperscope/schemas"
)

// TestDNSCopies: a DNS response goes to its resolver's partition as a
// packet and to every other partition as a marked copy, so each
// partition's analyzer learns the name; other rows are not copied.
func TestDNSCopies(t *testing.T) {
	b := fakeBroker(t)
	const parts = 4
	topic := b.newName("packets")
	b.create(t, topic, parts)
	b.create(t, topic+".dlq", 1)
	ctx := context.Background()
	resolver := netip.MustParseAddr("192.0.2.53")
	client := netip.MustParseAddr("10.0.0.2")
	answer := []byte("dns answer bytes")
	batch := &schemas.PacketBatch{Packets: []schemas.PacketMeta{
		{Seq: 1, Proto: schemas.ProtoUDP, Src: resolver, Dst: client, SrcPort: 53, DstPort: 40000, Payload: answer},
		{Seq: 2, Proto: schemas.ProtoUDP, Src: client, Dst: resolver, SrcPort: 40000, DstPort: 53, Payload: []byte("query")},
		{Seq: 3, Proto: schemas.ProtoTCP, Src: client, Dst: netip.MustParseAddr("198.51.100.1"), SrcPort: 40001, DstPort: 443},
	}}
	pub, err := NewPublisher(ctx, PublisherConfig{Brokers: b.addrs, Topic: topic, Linger: 10 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if st := pub.Stats(); st.Rows != 3 || st.AckedRows != 3 || st.CopiedRows != parts-1 || st.LostCopies != 0 {
		t.Errorf("publisher stats %+v: want 3 rows acknowledged and %d copies", st, parts-1)
	}

	sub := subscribe(t, b, topic)
	packets := map[uint32]int{} // seq -> partition
	var copies []int            // partitions that got the answer as a copy
	for len(packets) < 3 || len(copies) < parts-1 {
		d := nextWithin(t, sub, 30*time.Second)
		for _, p := range d.Batch.Packets {
			switch {
			case !d.Names:
				if _, dup := packets[p.Seq]; dup {
					t.Fatalf("row %d delivered twice as a packet", p.Seq)
				}
				packets[p.Seq] = d.Partition
			case p.Seq != 1 || string(p.Payload) != string(answer):
				t.Fatalf("row %d (payload %q) copied; only the DNS answer should be", p.Seq, p.Payload)
			default:
				copies = append(copies, d.Partition)
			}
		}
		sub.Release(d)
	}
	own := partitionOf(resolver, parts)
	slices.Sort(copies)
	var want []int
	for p := range parts {
		if p != own {
			want = append(want, p)
		}
	}
	if packets[1] != own || !slices.Equal(copies, want) {
		t.Errorf("answer delivered as a packet to %d and as copies to %v; want %d and %v", packets[1], copies, own, want)
	}
}
