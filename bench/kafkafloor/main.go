// Command kafkafloor measures what the broker and the Kafka client cost
// alone, without tamperscope's work: it reads every message of a topic that
// `replay --kafka` filled, writes the same messages (keys, values, headers,
// partitions) to a new topic with the Publisher's producer settings, then
// reads them back per partition as the Subscriber does, and prints the wall
// and CPU seconds of both halves, the process's and, given -broker-pid, the
// broker's, as key=value pairs on one line. That is the floor under the
// end-to-end figure of make bench: no encoding, no decoding, no capture, no
// analysis. The fetch time runs to the last message, not through the
// readers' Close, which waits out a fetch in flight.
//
//	kafkafloor -brokers 127.0.0.1:29392 -topic T [-broker-pid PID]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/tamperscope/tamperscope/transport/kafka"
	"golang.org/x/sync/errgroup"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:19092", "comma-separated broker addresses")
	topic := flag.String("topic", "", "topic to copy (required)")
	brokerPID := flag.Int("broker-pid", 0, "broker process whose CPU time to report")
	flag.Parse()
	if *topic == "" {
		fmt.Fprintln(os.Stderr, "kafkafloor: -topic is required")
		os.Exit(2)
	}
	if err := run(strings.Split(*brokers, ","), *topic, *brokerPID); err != nil {
		fmt.Fprintln(os.Stderr, "kafkafloor:", err)
		os.Exit(1)
	}
}

func run(brokers []string, topic string, brokerPID int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	parts, err := partitions(ctx, brokers, topic)
	if err != nil {
		return err
	}
	var msgs []kafkago.Message
	for _, p := range parts {
		r, err := readPartition(ctx, brokers, topic, p)
		if err != nil {
			return err
		}
		msgs = append(msgs, r.msgs...)
	}
	var bytes int
	for _, m := range msgs {
		bytes += len(m.Value)
	}
	copyTopic := fmt.Sprintf("%s-floor-%d", topic, time.Now().UnixNano())
	if err := kafka.CreateTopic(ctx, brokers, kafka.Security{}, copyTopic, len(parts)); err != nil {
		return err
	}

	m0 := measure(brokerPID)
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(brokers...),
		Topic:        copyTopic,
		Balancer:     samePartition{},
		BatchSize:    256,
		BatchBytes:   1_000_000,
		BatchTimeout: time.Millisecond,
		RequiredAcks: kafkago.RequireAll,
	}
	for i := range msgs {
		msgs[i].Topic, msgs[i].Offset = "", 0
	}
	err = w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	m1 := measure(brokerPID)
	// The Subscriber reads its partitions at once, one reader each.
	reads := make([]read, len(parts))
	var g errgroup.Group
	for i, p := range parts {
		g.Go(func() (err error) {
			reads[i], err = readPartition(ctx, brokers, copyTopic, p)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// The readers' Close waits out a fetch in flight (MaxWait): the fetch
	// ends with the last message.
	m2 := measure(brokerPID)
	got, last := 0, m1.wall
	for _, r := range reads {
		got += len(r.msgs)
		if r.last.After(last) {
			last = r.last
		}
	}
	if got != len(msgs) {
		return fmt.Errorf("read back %d of %d messages", got, len(msgs))
	}
	fmt.Printf("messages=%d bytes=%d partitions=%d produce_s=%.3f produce_cpu=%.3f produce_broker_cpu=%.2f fetch_s=%.3f fetch_cpu=%.3f fetch_broker_cpu=%.2f\n",
		len(msgs), bytes, len(parts), m1.wall.Sub(m0.wall).Seconds(), m1.self-m0.self, m1.other-m0.other,
		last.Sub(m1.wall).Seconds(), m2.self-m1.self, m2.other-m1.other)
	return nil
}

// samePartition keeps each message in the partition it was read from.
type samePartition struct{}

func (samePartition) Balance(m kafkago.Message, _ ...int) int { return m.Partition }

func partitions(ctx context.Context, brokers []string, topic string) ([]int, error) {
	c, err := kafkago.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ps, err := c.ReadPartitions(topic)
	if err != nil {
		return nil, err
	}
	ids := make([]int, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids, nil
}

// read is what readPartition read, and when the last message came.
type read struct {
	msgs []kafkago.Message
	last time.Time
}

// readPartition reads partition p from its first offset to its end with a
// reader configured as the Subscriber's.
func readPartition(ctx context.Context, brokers []string, topic string, p int) (read, error) {
	c, err := kafkago.DialLeader(ctx, "tcp", brokers[0], topic, p)
	if err != nil {
		return read{}, err
	}
	end, err := c.ReadLastOffset()
	c.Close()
	if err != nil {
		return read{}, err
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:       brokers,
		Topic:         topic,
		Partition:     p,
		MinBytes:      1,
		MaxBytes:      16 << 20,
		MaxWait:       250 * time.Millisecond,
		QueueCapacity: 4,
	})
	defer r.Close()
	var rd read
	for end > 0 {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return read{}, fmt.Errorf("read %s/%d: %w", topic, p, err)
		}
		rd.msgs = append(rd.msgs, m)
		rd.last = time.Now()
		if m.Offset >= end-1 {
			break
		}
	}
	return rd, nil
}

// mark is a point in wall time with the CPU seconds used so far by this
// process and by the broker.
type mark struct {
	wall        time.Time
	self, other float64
}

func measure(pid int) mark {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	m := mark{wall: time.Now(), self: tv(ru.Utime) + tv(ru.Stime)}
	if pid > 0 {
		m.other, _ = procCPU(pid)
	}
	return m
}

// procCPU returns the user+system seconds of process pid.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // clock ticks: USER_HZ is 100 on Linux
}
