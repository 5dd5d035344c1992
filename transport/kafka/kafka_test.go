package kafka

import (
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/wire"
	"github.com/twmb/franz-go/pkg/kfake"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestPartitionBalancer(t *testing.T) {
	for _, tt := range []struct {
		key, parts, want int
	}{{0, 4, 0}, {3, 4, 3}, {5, 4, 1}, {7, 2, 1}} {
		key := []byte{0, 0, 0, byte(tt.key)}
		parts := make([]int, tt.parts)
		for i := range parts {
			parts[i] = i
		}
		if got := (partitionBalancer{}).Balance(kafkago.Message{Key: key}, parts...); got != tt.want {
			t.Errorf("key %d of %d partitions: got %d, want %d", tt.key, tt.parts, got, tt.want)
		}
	}
}

func TestSecurityPassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TS_TEST_KAFKA_PW", "from-env")
	tests := []struct {
		name    string
		sec     Security
		want    string
		wantErr bool
	}{
		{"file", Security{PasswordFile: file}, "s3cret", false},
		{"env", Security{PasswordEnv: "TS_TEST_KAFKA_PW"}, "from-env", false},
		{"both", Security{PasswordFile: file, PasswordEnv: "TS_TEST_KAFKA_PW"}, "", true},
		{"neither", Security{}, "", true},
		{"unset env", Security{PasswordEnv: "TS_TEST_KAFKA_UNSET"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sec.password()
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("password() = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		if _, err := (Security{SASL: mech, Username: "u", PasswordFile: file}).conn("test"); err != nil {
			t.Errorf("%s: %v", mech, err)
		}
	}
	if _, err := (Security{SASL: "GSSAPI", PasswordFile: file}).conn("test"); err == nil {
		t.Error("unknown SASL mechanism accepted")
	}
	if _, err := (Security{TLS: true, CAFile: file}).conn("test"); err == nil {
		t.Error("CA file without a certificate accepted")
	}
}

// TestPublishConsumeRestart: every row published arrives exactly once, in
// the partition of its server; after a commit and a restart of the
// consumer, only rows published since arrive.
func TestPublishConsumeRestart(t *testing.T) {
	brokers(t, func(t *testing.T, b broker) {
		const parts = 4
		topic := b.newName("packets")
		b.create(t, topic, parts)
		b.create(t, topic+".dlq", 1)
		group := b.newName("analyzer")
		rng := rand.New(rand.NewPCG(1, 2))
		ctx := context.Background()

		publish := func(first uint32, batches, rows int) map[uint32]schemas.PacketMeta {
			pub, err := NewPublisher(ctx, PublisherConfig{
				Brokers: b.addrs, Topic: topic, MaxRows: 500, Linger: 20 * time.Millisecond, Logger: quietLogger(),
			})
			if err != nil {
				t.Fatal(err)
			}
			want := map[uint32]schemas.PacketMeta{}
			for i := range batches {
				batch := makeBatch(rng, first+uint32(i*rows), rows)
				for _, p := range batch.Packets {
					p.Payload = append([]byte(nil), p.Payload...)
					want[p.Seq] = p
				}
				if err := pub.Publish(ctx, batch); err != nil {
					t.Fatal(err)
				}
				clear(batch.Arena) // the publisher must have copied it
			}
			if err := pub.Close(); err != nil {
				t.Fatal(err)
			}
			st := pub.Stats()
			if st.Rows != uint64(batches*rows) || st.AckedRows != st.Rows || st.Buffered != 0 {
				t.Fatalf("publisher stats %+v, want %d rows all acked", st, batches*rows)
			}
			return want
		}
		consume := func(want map[uint32]schemas.PacketMeta) {
			var assigned []int
			sub, err := NewSubscriber(SubscriberConfig{
				Brokers: b.addrs, Topic: topic, Group: group, Logger: quietLogger(),
				OnAssigned: func(p []int) { assigned = p },
			})
			if err != nil {
				t.Fatal(err)
			}
			got := newSeen()
			last := map[int]int64{}
			for len(got.rows) < len(want) {
				d := nextWithin(t, sub, 60*time.Second)
				if err := got.add(d); err != nil {
					t.Fatal(err)
				}
				last[d.Partition] = d.Offset
				sub.Release(d)
			}
			if len(assigned) != parts {
				t.Errorf("assigned %v, want all %d partitions", assigned, parts)
			}
			if len(last) != parts {
				t.Errorf("rows arrived in partitions %v, want all %d", last, parts)
			}
			if diff := cmp.Diff(want, got.rows, addrCmp); diff != "" {
				t.Fatalf("rows (-published +delivered):\n%s", diff)
			}
			for p, off := range last {
				if err := sub.Commit(p, off); err != nil {
					t.Fatal(err)
				}
			}
			if err := sub.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := sub.Next(ctx); err == nil {
				t.Fatal("Next after Close returned no error")
			}
		}

		consume(publish(0, 20, 300))
		// Every partition has new rows, and a redelivered old row would
		// come before them, so reading all new rows proves none came back.
		consume(publish(100_000, 10, 300))
	})
}

// TestDeadLetter: a message that does not decode goes to the dead-letter
// topic with its reason; the batches around it are delivered.
func TestDeadLetter(t *testing.T) {
	brokers(t, func(t *testing.T, b broker) {
		topic := b.newName("packets")
		b.create(t, topic, 1)
		b.create(t, topic+".dlq", 1)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()

		enc, _ := wire.NewEncoder(wire.EncoderOptions{})
		rng := rand.New(rand.NewPCG(3, 4))
		before, _ := enc.Encode(nil, makeBatch(rng, 0, 10))
		after, _ := enc.Encode(nil, makeBatch(rng, 10, 10))
		corrupt := append([]byte(nil), before[:len(before)/2]...)
		writeRaw(t, ctx, b, topic,
			kafkago.Message{Value: before}, kafkago.Message{Value: corrupt}, kafkago.Message{Value: after})

		sub := subscribe(t, b, topic)
		var offsets []int64
		for range 2 {
			d := nextWithin(t, sub, 60*time.Second)
			offsets = append(offsets, d.Offset)
			sub.Release(d)
		}
		if !cmp.Equal(offsets, []int64{0, 2}) {
			t.Fatalf("delivered offsets %v, want [0 2]", offsets)
		}
		if st := sub.Stats(); st.Corrupt != 1 || st.DeadLettered != 1 {
			t.Fatalf("stats %+v, want 1 corrupt, 1 dead-lettered", st)
		}

		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: b.addrs, Topic: topic + ".dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
		defer r.Close()
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Value, corrupt) {
			t.Fatal("dead-letter value differs from the corrupt message")
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if !strings.Contains(h[HeaderReason], wire.ErrCorrupt.Error()) || h[HeaderTopic] != topic ||
			h[HeaderPartition] != "0" || h[HeaderOffset] != "1" {
			t.Fatalf("dead-letter headers %v", h)
		}
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPublisherBrokerDown: with no broker, the buffer stays within its
// limit, overflow is counted as dropped, and Close reports the loss; every
// row is accounted for.
func TestPublisherBrokerDown(t *testing.T) {
	const limit = 256 << 10
	pub, err := NewPublisher(context.Background(), PublisherConfig{
		Brokers: []string{"127.0.0.1:" + strconv.Itoa(freePort(t))}, Topic: "packets", Partitions: 4,
		MaxRows: 200, Linger: 10 * time.Millisecond, MaxBufferBytes: limit,
		CloseTimeout: 500 * time.Millisecond, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 100 {
		if err := pub.Publish(context.Background(), makeBatch(rng, uint32(i*500), 500)); err != nil {
			t.Fatal(err)
		}
		if st := pub.Stats(); st.Buffered > limit {
			t.Fatalf("buffered %d bytes, limit %d", st.Buffered, limit)
		}
	}
	err = pub.Close()
	st := pub.Stats()
	if err == nil {
		t.Fatalf("Close reported no loss; stats %+v", st)
	}
	if st.DroppedRows == 0 || st.AckedRows != 0 || st.Buffered != 0 {
		t.Fatalf("stats %+v: want drops, nothing acked, nothing left buffered", st)
	}
	if st.Rows != st.AckedRows+st.FailedRows+st.DroppedRows {
		t.Fatalf("stats %+v: rows not accounted for", st)
	}
	if err := pub.Publish(context.Background(), makeBatch(rng, 0, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
}

// TestPublisherBuffersUntilBrokerReturns: rows published while the broker
// is down are delivered, in order per partition, once it comes up.
func TestPublisherBuffersUntilBrokerReturns(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	const topic = "packets"
	pub, err := NewPublisher(context.Background(), PublisherConfig{
		Brokers: []string{addr}, Topic: topic, Partitions: 2,
		MaxRows: 100, Linger: 10 * time.Millisecond, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	const rows = 2000
	for i := range 10 {
		if err := pub.Publish(context.Background(), makeBatch(rng, uint32(i*rows/10), rows/10)); err != nil {
			t.Fatal(err)
		}
	}
	// The sender has met the closed port at least once before the broker
	// starts, so what follows is a retry, not a first attempt.
	deadline := time.Now().Add(30 * time.Second)
	for pub.Stats().Retries == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no failed write while the broker was down; stats %+v", pub.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(2, topic), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if st := pub.Stats(); st.AckedRows != rows {
		t.Fatalf("stats %+v, want %d rows acked", st, rows)
	}

	sub, err := NewSubscriber(SubscriberConfig{Brokers: []string{addr}, Topic: topic, Group: "g", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := newSeen()
	lastSeq := map[int]int64{}
	for len(got.rows) < rows {
		d := nextWithin(t, sub, 60*time.Second)
		if err := got.add(d); err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Batch.Packets {
			// Ids grow with publish order, so within a partition they must
			// grow with offsets.
			if int64(p.Seq) < lastSeq[d.Partition] {
				t.Fatalf("partition %d: row %d after row %d", d.Partition, p.Seq, lastSeq[d.Partition])
			}
			lastSeq[d.Partition] = int64(p.Seq)
		}
		sub.Release(d)
	}
}

// TestPublisherBlock: with Block, a publisher faster than the broker waits
// for room instead of dropping, and its buffer stays near its limit.
func TestPublisherBlock(t *testing.T) {
	b := fakeBroker(t)
	b.create(t, "packets", 4)
	const limit = 256 << 10
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, err := NewPublisher(ctx, PublisherConfig{
		Brokers: b.addrs, Topic: "packets", Block: true, MaxRows: 512, MaxBufferBytes: limit, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	batch := makeBatch(rand.New(rand.NewPCG(9, 10)), 0, 1024)
	peak := 0
	for range 300 {
		if err := pub.Publish(ctx, batch); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, pub.Stats().Buffered)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats()
	if st.AckedRows != 300*1024 || st.DroppedRows != 0 {
		t.Fatalf("stats %+v: want every row acked, none dropped", st)
	}
	// One Publish call can push over the limit at most the rows it
	// completes: its own and those pending in each of the 4 partitions.
	perRow := float64(st.Bytes) / float64(st.AckedRows)
	if over := peak - limit; float64(over) > perRow*(1024+4*511) {
		t.Fatalf("buffer peaked at %d bytes, limit %d", peak, limit)
	}
}

func TestPartitionOfIsFNV1a(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"} {
		a := netip.MustParseAddr(s)
		h := fnv.New32a()
		b := a.As16()
		h.Write(b[:])
		if got, want := partitionOf(a, 1000), int(h.Sum32()%1000); got != want {
			t.Errorf("%s: partition %d, want %d", s, got, want)
		}
	}
	if partitionOf(netip.Addr{}, 7) != partitionOf(netip.IPv6Unspecified(), 7) {
		t.Error("the zero Addr does not hash as 16 zero bytes")
	}
}

// TestPublishAllocs: adding rows to pending messages that have room
// allocates nothing per row. (Messages never fill here: encoding one
// allocates, in arrow-go, a few hundred times.)
func TestPublishAllocs(t *testing.T) {
	pub, err := NewPublisher(context.Background(), PublisherConfig{
		Brokers: []string{"127.0.0.1:" + strconv.Itoa(freePort(t))}, Topic: "packets", Partitions: 8,
		MaxRows: 1 << 30, MaxMessageBytes: 1 << 40, Linger: time.Hour, CloseTimeout: time.Millisecond, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	batch := makeBatch(rand.New(rand.NewPCG(11, 12)), 0, 1024)
	// Room for what follows: the columns double as they grow, so after
	// 200 batches they hold the 50 more that are measured.
	for range 200 {
		if err := pub.Publish(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(50, func() {
		if err := pub.Publish(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 10 {
		t.Fatalf("Publish of 1024 rows: %v allocations", allocs)
	}
}

// TestGetRecyclesPublishedBatches: a batch from Get comes back, empty,
// from a later Get once published; a caller's own batch is left alone, so
// it can be published again.
func TestGetRecyclesPublishedBatches(t *testing.T) {
	pub, err := NewPublisher(context.Background(), PublisherConfig{
		Brokers: []string{"127.0.0.1:" + strconv.Itoa(freePort(t))}, Topic: "packets", Partitions: 2,
		Linger: time.Hour, CloseTimeout: time.Millisecond, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	rng := rand.New(rand.NewPCG(13, 14))
	b := pub.Get()
	*b = *makeBatch(rng, 0, 100)
	if err := pub.Publish(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if len(b.Packets) != 0 || len(b.Arena) != 0 {
		t.Fatalf("published batch from Get still holds %d rows, %d arena bytes", len(b.Packets), len(b.Arena))
	}
	if again := pub.Get(); again != b {
		t.Error("Get after Publish did not hand the published batch back")
	}
	own := makeBatch(rng, 100, 100)
	for range 2 {
		if err := pub.Publish(context.Background(), own); err != nil {
			t.Fatal(err)
		}
		if len(own.Packets) != 100 {
			t.Fatalf("the caller's own batch was emptied: %d rows", len(own.Packets))
		}
	}
	if other := pub.Get(); other == own {
		t.Error("Get handed out a batch the caller still owns")
	}
	if st := pub.Stats(); st.Rows != 300 {
		t.Errorf("rows %d, want 300", st.Rows)
	}
}

// TestDeadLetteringUntilStored: while the dead-letter topic cannot take a
// corrupt message (here it does not exist yet), the Subscriber keeps
// retrying and says so (DeadLettering), so an idle check does not take
// the partition for drained; once the topic exists the message is stored
// and the message after it delivered.
func TestDeadLetteringUntilStored(t *testing.T) {
	b := fakeBroker(t)
	topic := b.newName("packets")
	b.create(t, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	enc, _ := wire.NewEncoder(wire.EncoderOptions{})
	good, _ := enc.Encode(nil, makeBatch(rand.New(rand.NewPCG(5, 6)), 0, 10))
	writeRaw(t, ctx, b, topic, kafkago.Message{Value: []byte("not a packet batch")}, kafkago.Message{Value: good})
	sub := subscribe(t, b, topic)
	for !sub.DeadLettering() {
		if ctx.Err() != nil {
			t.Fatal("the corrupt message never went to the dead-letter topic")
		}
		time.Sleep(10 * time.Millisecond)
	}
	nctx, ncancel := context.WithTimeout(ctx, 2*time.Second)
	if d, err := sub.Next(nctx); err == nil {
		t.Fatalf("delivered offset %d past a message not yet dead-lettered", d.Offset)
	}
	ncancel()
	if !sub.DeadLettering() || sub.Stats().DeadLettered != 0 {
		t.Fatalf("DeadLettering %v, stats %+v: want still retrying", sub.DeadLettering(), sub.Stats())
	}
	b.create(t, topic+".dlq", 1)
	d := nextWithin(t, sub, 30*time.Second)
	if d.Offset != 1 || len(d.Batch.Packets) != 10 {
		t.Fatalf("delivered offset %d with %d rows, want offset 1 with 10", d.Offset, len(d.Batch.Packets))
	}
	if sub.DeadLettering() || sub.Stats().DeadLettered != 1 {
		t.Fatalf("DeadLettering %v, stats %+v: want the dead letter stored", sub.DeadLettering(), sub.Stats())
	}
}
