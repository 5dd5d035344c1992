package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/wire"
	"github.com/tamperscope/tamperscope/transport"
)

// ErrNotAssigned is returned by Commit for a partition this member does not
// own (any more): its rows will be delivered again to the new owner.
var ErrNotAssigned = errors.New("partition not assigned to this consumer")

// Dead-letter headers: why a message was set aside, and where it came from.
const (
	HeaderReason    = "tamperscope-dlq-reason"
	HeaderTopic     = "tamperscope-dlq-topic"
	HeaderPartition = "tamperscope-dlq-partition"
	HeaderOffset    = "tamperscope-dlq-offset"
)

// SubscriberConfig configures a Subscriber. Brokers, Topic and Group are
// required; every other zero value picks the default its comment names.
type SubscriberConfig struct {
	Brokers  []string
	Topic    string
	Group    string
	Security Security
	// DeadLetterTopic receives messages that do not decode, with a
	// HeaderReason header. It must exist. The default is Topic + ".dlq".
	DeadLetterTopic string
	// OnAssigned is called with the partitions of a new generation before
	// any of their batches is delivered.
	OnAssigned func(partitions []int)
	// OnRevoked is called when a generation ends (another member joined or
	// left), after every batch of those partitions has been returned by
	// Next: flush the state kept for them and Commit what is durable. The
	// group waits for it, up to RebalanceTimeout.
	//
	// Both callbacks run inside Next, on the caller's goroutine.
	OnRevoked func(partitions []int)
	// StartOffset is where a partition without a committed offset starts:
	// kafka-go's FirstOffset (the default) or LastOffset.
	StartOffset int64
	// HeartbeatInterval defaults to 1 s (kafka-go's 3 s makes rebalances
	// slow); SessionTimeout to 10 s; RebalanceTimeout to 30 s.
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	// Decoder limits what one message may decode to.
	Decoder wire.DecoderOptions
	// Prefetch is how many decoded batches wait for Next. The default is 8.
	Prefetch int
	// Logger receives consumer problems. The default is slog.Default().
	Logger *slog.Logger
}

// SubscriberStats counts what a Subscriber has done.
type SubscriberStats struct {
	Deliveries   uint64
	Rows         uint64
	Corrupt      uint64 // messages that did not decode
	DeadLettered uint64 // of those, written to the dead-letter topic
	Commits      uint64
}

// Subscriber is the analyzer half's Kafka transport: a member of a consumer
// group that runs one reader goroutine per assigned partition (kafka-go's
// ConsumerGroup and Generation API, which, unlike its Reader, exposes
// assignments). Offsets are committed only by Commit, when the caller
// says the rows are durable, so a restart resumes after the last commit and
// nothing is lost: delivery is at least once.
type Subscriber struct {
	lagMu sync.Mutex
	lag   map[int]int64 // by partition, see Lag
	cfg   SubscriberConfig
	log   *slog.Logger
	conn  conn
	group *kafkago.ConsumerGroup
	dlq   *kafkago.Writer

	items chan item
	ctx   context.Context
	stop  context.CancelFunc
	done  sync.WaitGroup

	mu    sync.Mutex
	gen   *kafkago.Generation
	owned map[int]bool

	batches sync.Pool

	deliveries, rows, corrupt, deadLettered, commits atomic.Uint64
	deadLettering                                    atomic.Int32 // partitions writing a dead letter now
}

type itemKind uint8

const (
	itemDelivery itemKind = iota
	itemAssigned
	itemRevoked
)

// item is what partition goroutines hand to Next: a batch, or a change of
// assignment that Next turns into a callback in stream order.
type item struct {
	kind       itemKind
	delivery   transport.Delivery
	partitions []int
	handled    chan struct{} // itemRevoked: closed once OnRevoked returned
}

var _ transport.Subscriber = (*Subscriber)(nil)

// NewSubscriber joins the group in the background; problems joining are
// logged and retried.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" || cfg.Group == "" {
		return nil, errors.New("new subscriber: Brokers, Topic and Group are required")
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = cfg.Topic + ".dlq"
	}
	if cfg.StartOffset == 0 {
		cfg.StartOffset = kafkago.FirstOffset
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.RebalanceTimeout <= 0 {
		cfg.RebalanceTimeout = 30 * time.Second
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c, err := cfg.Security.conn("tamperscope-analyze")
	if err != nil {
		return nil, fmt.Errorf("new subscriber: %w", err)
	}
	log := cfg.Logger.With("topic", cfg.Topic, "group", cfg.Group)
	group, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                cfg.Group,
		Brokers:           cfg.Brokers,
		Dialer:            c.dialer,
		Topics:            []string{cfg.Topic},
		HeartbeatInterval: cfg.HeartbeatInterval,
		SessionTimeout:    cfg.SessionTimeout,
		RebalanceTimeout:  cfg.RebalanceTimeout,
		JoinGroupBackoff:  time.Second,
		StartOffset:       cfg.StartOffset,
		ErrorLogger:       kafkaLogger(log),
	})
	if err != nil {
		return nil, fmt.Errorf("new subscriber: %w", err)
	}
	s := &Subscriber{
		cfg:   cfg,
		log:   log,
		conn:  c,
		group: group,
		dlq: &kafkago.Writer{
			Addr:         kafkago.TCP(cfg.Brokers...),
			Topic:        cfg.DeadLetterTopic,
			Transport:    c.transport,
			BatchTimeout: time.Millisecond,
			RequiredAcks: kafkago.RequireAll,
			ErrorLogger:  kafkaLogger(log),
		},
		items: make(chan item, cfg.Prefetch),
	}
	s.batches.New = func() any { return new(schemas.PacketBatch) }
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.done.Add(1)
	go s.run()
	return s, nil
}

// run takes one generation after another.
func (s *Subscriber) run() {
	defer s.done.Done()
	for {
		gen, err := s.group.Next(s.ctx)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				return
			}
			s.log.Warn("kafka subscriber: join group", "err", err)
			continue
		}
		parts := slices.Clone(gen.Assignments[s.cfg.Topic])
		slices.SortFunc(parts, func(a, b kafkago.PartitionAssignment) int { return a.ID - b.ID })
		gen.Start(func(ctx context.Context) { s.runGeneration(ctx, gen, parts) })
	}
}

// runGeneration reads the generation's partitions until it ends, then hands
// the revocation to Next and waits until the caller has handled it, so
// commits made in OnRevoked still count for this generation.
func (s *Subscriber) runGeneration(ctx context.Context, gen *kafkago.Generation, parts []kafkago.PartitionAssignment) {
	ids := make([]int, len(parts))
	owned := make(map[int]bool, len(parts))
	for i, a := range parts {
		ids[i] = a.ID
		owned[a.ID] = true
	}
	s.mu.Lock()
	s.gen, s.owned = gen, owned
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.gen == gen {
			s.gen, s.owned = nil, nil
		}
		s.mu.Unlock()
	}()
	s.log.Info("kafka subscriber: assigned", "generation", gen.ID, "partitions", ids)
	if !s.put(item{kind: itemAssigned, partitions: ids}) {
		return
	}

	readCtx, cancel := context.WithCancel(ctx)
	var readers sync.WaitGroup
	for _, a := range parts {
		readers.Go(func() { s.readPartition(readCtx, a) })
	}
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	cancel()
	readers.Wait()

	handled := make(chan struct{})
	if !s.put(item{kind: itemRevoked, partitions: ids, handled: handled}) {
		return
	}
	select {
	case <-handled:
	case <-s.ctx.Done():
	}
}

// setLag records how far partition p's reader is behind its high
// watermark, as of the message it just fetched.
func (s *Subscriber) setLag(p int, lag int64) {
	s.lagMu.Lock()
	if s.lag == nil {
		s.lag = map[int]int64{}
	}
	s.lag[p] = max(lag, 0)
	s.lagMu.Unlock()
}

// Lag returns, per partition this member reads, how many messages its
// reader is behind the partition's high watermark (as of its last fetch).
// Safe from any goroutine.
func (s *Subscriber) Lag() map[int]int64 {
	s.lagMu.Lock()
	defer s.lagMu.Unlock()
	out := make(map[int]int64, len(s.lag))
	for p, l := range s.lag {
		out[p] = l
	}
	return out
}

// DeadLettering reports whether a partition is writing a message to the
// dead-letter topic (retrying until the broker stores it): its stream is
// not idle then, although Next delivers nothing from it.
func (s *Subscriber) DeadLettering() bool { return s.deadLettering.Load() > 0 }

// put queues it for Next; false when the Subscriber is closing.
func (s *Subscriber) put(it item) bool {
	select {
	case s.items <- it:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// readPartition decodes one partition's messages in order until ctx ends.
func (s *Subscriber) readPartition(ctx context.Context, a kafkago.PartitionAssignment) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:       s.cfg.Brokers,
		Topic:         s.cfg.Topic,
		Partition:     a.ID,
		Dialer:        s.conn.dialer,
		MinBytes:      1,
		MaxBytes:      16 << 20,
		MaxWait:       250 * time.Millisecond,
		QueueCapacity: 4,
		ErrorLogger:   kafkaLoggerUntil(ctx, s.log),
	})
	defer r.Close()
	offset := a.Offset
	if offset < 0 {
		offset = s.cfg.StartOffset
	}
	if err := r.SetOffset(offset); err != nil {
		s.log.Error("kafka subscriber: set offset", "partition", a.ID, "offset", offset, "err", err)
		return
	}
	dec := wire.NewDecoder(s.cfg.Decoder)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("kafka subscriber: fetch", "partition", a.ID, "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		b := s.batches.Get().(*schemas.PacketBatch)
		clock, err := clockMessage(&m)
		if err == nil && clock != 0 {
			b.Packets, b.Arena = b.Packets[:0], b.Arena[:0]
		} else if err == nil {
			err = dec.Decode(m.Value, b)
		}
		if err != nil {
			s.batches.Put(b)
			s.corrupt.Add(1)
			if !s.deadLetter(ctx, m, err) {
				return
			}
			continue
		}
		s.setLag(m.Partition, m.HighWaterMark-m.Offset-1)
		d := transport.Delivery{Batch: b, Partition: m.Partition, Offset: m.Offset, Names: namesMessage(m.Headers), ClockNs: clock}
		if !s.putCtx(ctx, item{kind: itemDelivery, delivery: d}) {
			s.batches.Put(b)
			return
		}
	}
}

func (s *Subscriber) putCtx(ctx context.Context, it item) bool {
	select {
	case s.items <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// deadLetter writes a message that did not decode to the dead-letter topic,
// retrying until it is stored: skipping it unrecorded would lose it once a
// later offset is committed. False when ctx ended first.
func (s *Subscriber) deadLetter(ctx context.Context, m kafkago.Message, reason error) bool {
	s.deadLettering.Add(1)
	defer s.deadLettering.Add(-1)
	s.log.Warn("kafka subscriber: corrupt message to dead-letter topic",
		"partition", m.Partition, "offset", m.Offset, "dlq", s.cfg.DeadLetterTopic, "err", reason)
	dm := kafkago.Message{
		Key:   m.Key,
		Value: m.Value,
		Headers: append(slices.Clone(m.Headers),
			kafkago.Header{Key: HeaderReason, Value: []byte(reason.Error())},
			kafkago.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
			kafkago.Header{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
			kafkago.Header{Key: HeaderOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
		),
	}
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := s.dlq.WriteMessages(ctx, dm)
		if err == nil {
			s.deadLettered.Add(1)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.log.Error("kafka subscriber: write dead-letter message, retrying", "dlq", s.cfg.DeadLetterTopic, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return false
		}
	}
}

// Next returns the next batch of any assigned partition, in offset order
// within a partition. OnAssigned and OnRevoked run inside it. After Close
// it returns io.EOF.
func (s *Subscriber) Next(ctx context.Context) (transport.Delivery, error) {
	for {
		select {
		case <-ctx.Done():
			return transport.Delivery{}, ctx.Err()
		case <-s.ctx.Done():
			return transport.Delivery{}, io.EOF
		case it := <-s.items:
			switch it.kind {
			case itemAssigned:
				if s.cfg.OnAssigned != nil {
					s.cfg.OnAssigned(it.partitions)
				}
			case itemRevoked:
				if s.cfg.OnRevoked != nil {
					s.cfg.OnRevoked(it.partitions)
				}
				close(it.handled)
			case itemDelivery:
				s.deliveries.Add(1)
				s.rows.Add(uint64(len(it.delivery.Batch.Packets)))
				return it.delivery, nil
			}
		}
	}
}

// Release returns a delivery's batch for reuse; its rows and payloads must
// not be used afterwards.
func (s *Subscriber) Release(d transport.Delivery) {
	if d.Batch != nil {
		s.batches.Put(d.Batch)
	}
}

// Commit records that every row of partition up to and including the
// batch at offset is durable, so a restarted group resumes after it. It
// returns ErrNotAssigned when the partition has moved to another member.
func (s *Subscriber) Commit(partition int, offset int64) error {
	s.mu.Lock()
	gen, ok := s.gen, s.owned[partition]
	s.mu.Unlock()
	if gen == nil || !ok {
		return fmt.Errorf("commit partition %d offset %d: %w", partition, offset, ErrNotAssigned)
	}
	// Kafka stores the next offset to read.
	err := gen.CommitOffsets(map[string]map[int]int64{s.cfg.Topic: {partition: offset + 1}})
	if err != nil {
		return fmt.Errorf("commit partition %d offset %d: %w", partition, offset, err)
	}
	s.commits.Add(1)
	return nil
}

// Stats returns the counters so far.
func (s *Subscriber) Stats() SubscriberStats {
	return SubscriberStats{
		Deliveries:   s.deliveries.Load(),
		Rows:         s.rows.Load(),
		Corrupt:      s.corrupt.Load(),
		DeadLettered: s.deadLettered.Load(),
		Commits:      s.commits.Load(),
	}
}

// Close leaves the group. Commit what is durable before: after Close the
// generation is gone. Batches not yet returned by Next are dropped; they
// were never committed, so the group delivers them again.
func (s *Subscriber) Close() error {
	s.stop()
	err := s.group.Close()
	s.done.Wait()
	if derr := s.dlq.Close(); err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("close subscriber: %w", err)
	}
	return nil
}
