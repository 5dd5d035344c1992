package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tamperscope/tamperscope/internal/testenv"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport"
	"github.com/twmb/franz-go/pkg/kfake"
)

// broker is a Kafka to test against: franz-go's in-process kfake, or the
// real broker of scripts/kafka.sh named by TAMPERSCOPE_KAFKA.
type broker struct {
	name    string
	addrs   []string
	newName func(string) string
	create  func(t *testing.T, topic string, partitions int)
}

var topicSeq atomic.Int64

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), topicSeq.Add(1))
}

func fakeBroker(t *testing.T) broker {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return brokerAt("kfake", c.ListenAddrs())
}

// realBroker skips, or fails under TAMPERSCOPE_REQUIRE_ALL=1, without a
// broker address.
func realBroker(t *testing.T) broker {
	t.Helper()
	return brokerAt("real", []string{realBrokerAddr(t)})
}

func realBrokerAddr(t testing.TB) string { return testenv.KafkaBroker(t) }

func brokerAt(name string, addrs []string) broker {
	b := broker{name: name, addrs: addrs, newName: uniqueName}
	b.create = func(t *testing.T, topic string, partitions int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := CreateTopic(ctx, addrs, Security{}, topic, partitions); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// brokers runs a test against kfake and, when there is one, the real broker.
func brokers(t *testing.T, fn func(t *testing.T, b broker)) {
	t.Run("kfake", func(t *testing.T) { fn(t, fakeBroker(t)) })
	t.Run("real", func(t *testing.T) { fn(t, realBroker(t)) })
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// servers are the remote addresses rows go to; each row's Seq is its
// unique id across a test.
var servers = func() []netip.Addr {
	var s []netip.Addr
	for i := range 40 {
		s = append(s, netip.AddrFrom4([4]byte{93, 184, 216, byte(i)}))
		s = append(s, netip.AddrFrom16([16]byte{0x26, 0x06, 0x28, 0, 15: byte(i)}))
	}
	return s
}()

// makeBatch returns n rows with ids first..first+n-1 in Seq, both
// directions of flows to random servers, payloads on some.
func makeBatch(rng *rand.Rand, first uint32, n int) *schemas.PacketBatch {
	b := &schemas.PacketBatch{}
	for i := range n {
		srv := servers[rng.IntN(len(servers))]
		cli := netip.AddrFrom4([4]byte{10, 1, 2, byte(rng.IntN(250))})
		if srv.Is6() {
			cli = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(rng.IntN(250))})
		}
		p := schemas.PacketMeta{
			TimestampNs: int64(first+uint32(i)) * 1000, Vantage: "test",
			Src: cli, Dst: srv, SrcPort: 40000 + uint16(rng.IntN(2000)), DstPort: 443,
			Proto: schemas.ProtoTCP, TCPFlags: schemas.TCPAck, Seq: first + uint32(i),
			PayloadLen: uint32(rng.IntN(1400)),
		}
		if rng.IntN(2) == 0 {
			p.Src, p.Dst, p.SrcPort, p.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
		}
		if rng.IntN(10) == 0 {
			lo := len(b.Arena)
			for range 1 + rng.IntN(300) {
				b.Arena = append(b.Arena, byte(rng.Uint32()))
			}
			p.Payload = b.Arena[lo:len(b.Arena):len(b.Arena)]
		}
		b.Packets = append(b.Packets, p)
	}
	// Re-point payloads at the arena's final storage.
	off := 0
	for i := range b.Packets {
		if n := len(b.Packets[i].Payload); n > 0 {
			b.Packets[i].Payload = b.Arena[off : off+n : off+n]
			off += n
		}
	}
	return b
}

type schemasBatch = schemas.PacketBatch

// seen collects delivered rows by id.
type seen struct {
	rows      map[uint32]schemas.PacketMeta
	partition map[netip.Addr]int // server address -> partition
}

func newSeen() *seen {
	return &seen{rows: map[uint32]schemas.PacketMeta{}, partition: map[netip.Addr]int{}}
}

// add records a delivery's rows; an error for a row seen before or a
// server address seen in two partitions.
func (s *seen) add(d transport.Delivery) error {
	for _, p := range d.Batch.Packets {
		if _, dup := s.rows[p.Seq]; dup {
			return fmt.Errorf("row %d delivered twice (partition %d offset %d)", p.Seq, d.Partition, d.Offset)
		}
		p.Payload = append([]byte(nil), p.Payload...)
		s.rows[p.Seq] = p
		srv := ServerSide(&p)
		if prev, ok := s.partition[srv]; ok && prev != d.Partition {
			return fmt.Errorf("server %v in partitions %d and %d", srv, prev, d.Partition)
		}
		s.partition[srv] = d.Partition
	}
	return nil
}

// subscribe returns a Subscriber of topic in a group of its own, closed
// when the test ends.
func subscribe(t *testing.T, b broker, topic string) *Subscriber {
	t.Helper()
	sub, err := NewSubscriber(SubscriberConfig{Brokers: b.addrs, Topic: topic, Group: b.newName("g"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// writeRaw writes msgs to topic as they are, past the Publisher: for
// messages it would never write. Its transport is its own: kafka-go's
// default one keeps the brokers' metadata for 6 s, which need not list a
// topic created since.
func writeRaw(t *testing.T, ctx context.Context, b broker, topic string, msgs ...kafkago.Message) {
	t.Helper()
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafkago.Writer{Addr: kafkago.TCP(b.addrs...), Topic: topic, BatchTimeout: time.Millisecond, Transport: tr}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func nextWithin(t testing.TB, s *Subscriber, d time.Duration) transport.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	dv, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v (stats %+v)", err, s.Stats())
	}
	return dv
}
