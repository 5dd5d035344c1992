package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/wire"
	"github.com/tamperscope/tamperscope/transport"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("kafka transport closed")

// KeyFunc returns the address a packet is partitioned by: the remote
// (server-side) address, so every packet of a flow and every flow to one
// server meet in one partition.
type KeyFunc func(p *schemas.PacketMeta) netip.Addr

// ServerSide is the default KeyFunc: PacketMeta.ServerAddr, the endpoint
// with the lower port (for an ICMP error, of the packet it quotes).
func ServerSide(p *schemas.PacketMeta) netip.Addr { return p.ServerAddr() }

// PublisherConfig configures a Publisher. Brokers and Topic are required;
// every other zero value picks the default its comment names.
type PublisherConfig struct {
	Brokers  []string
	Topic    string
	Security Security
	// Key partitions rows. The default is ServerSide.
	Key KeyFunc
	// Partitions is the topic's partition count; 0 asks the brokers when
	// the Publisher is made.
	Partitions int
	// Codec compresses message bodies. The default is wire.LZ4.
	Codec wire.Codec
	// MaxRows caps the rows of one message. The default is 4096.
	MaxRows int
	// MaxMessageBytes caps one produce batch, and with it one message; keep
	// it at or under the broker's message.max.bytes. A message is closed
	// before its rows could encode to more. The default is 1000000.
	MaxMessageBytes int
	// Linger is how long rows wait for more rows of their partition before
	// they are sent in a partly filled message. The default is 200 ms.
	Linger time.Duration
	// MaxBufferBytes bounds the encoded messages waiting for the broker or
	// in flight. Past it new messages are dropped and counted, unless
	// Block is set. The default is 64 MiB.
	MaxBufferBytes int
	// Block makes Publish wait for room in a full buffer instead of
	// dropping: for reading capture files, which can wait; never for a live
	// capture, which cannot. The buffer may then exceed MaxBufferBytes by
	// the rows of one Publish call.
	Block bool
	// CloseTimeout is how long Close waits for the broker to take what is
	// buffered; what is left then is counted as failed. The default is 30 s.
	CloseTimeout time.Duration
	// Logger receives delivery problems. The default is slog.Default().
	Logger *slog.Logger
	// NoDNSCopies turns off the copies of DNS responses. By default every
	// DNS response (UDP from port 53 or 5353, with payload) also goes to
	// every other partition, in messages marked HeaderNames, so that each
	// partition's analyzer learns every name-to-address answer, not only
	// those of the resolvers that hash to it.
	NoDNSCopies bool
	// ClockEvery is how far, in packet time, the rows published may run
	// ahead of the newest row of a partition before that partition is sent
	// a clock message (HeaderClock): its analyzer's packet time then moves
	// on although no packet of its own came, so that its flows expire, its
	// windows are judged and its offsets are committed as in a busy
	// partition. The default is 10 s; a negative value sends none.
	ClockEvery time.Duration
}

// HeaderNames marks a message of copies of DNS responses whose flows
// belong to another partition; the Subscriber sets Delivery.Names.
const HeaderNames = "tamperscope-names"

func namesMessage(hs []kafkago.Header) bool {
	for _, h := range hs {
		if h.Key == HeaderNames {
			return true
		}
	}
	return false
}

// HeaderClock marks a clock message: an empty value, and as the header's
// value the producer's packet time in decimal nanoseconds since the epoch;
// the Subscriber sets Delivery.ClockNs.
const HeaderClock = "tamperscope-clock"

// clockMessage returns the time of a clock message, 0 for another message,
// and an error for a clock header that does not hold a positive time or
// comes with a value.
func clockMessage(m *kafkago.Message) (int64, error) {
	for _, h := range m.Headers {
		if h.Key != HeaderClock {
			continue
		}
		ns, err := strconv.ParseInt(string(h.Value), 10, 64)
		switch {
		case err != nil || ns <= 0:
			return 0, fmt.Errorf("%w: header %s is %q, not a packet time", wire.ErrCorrupt, HeaderClock, h.Value)
		case len(m.Value) > 0:
			return 0, fmt.Errorf("%w: a clock message with a %d-byte value", wire.ErrCorrupt, len(m.Value))
		}
		return ns, nil
	}
	return 0, nil
}

// PublisherStats counts rows through a Publisher. After Close, Rows equals
// AckedRows + FailedRows + DroppedRows: every row is accounted for.
type PublisherStats struct {
	Rows        uint64 // handed to Publish
	Messages    uint64 // messages encoded
	Bytes       uint64 // encoded bytes
	AckedRows   uint64 // acknowledged by the broker
	AckedMsgs   uint64
	FailedRows  uint64 // given up: rejected by the broker, or still buffered when Close timed out
	FailedMsgs  uint64
	DroppedRows uint64 // not buffered: the buffer was full (broker slow or unreachable)
	DroppedMsgs uint64
	Retries     uint64 // writes that failed and were retried (broker unreachable, leader moving)
	// CopiedRows counts the copies of DNS responses made for other
	// partitions (PublisherConfig.NoDNSCopies), apart from Rows and the
	// counts above; LostCopies those of them dropped or failed.
	CopiedRows uint64
	LostCopies uint64
	Clocks     uint64 // clock messages queued (PublisherConfig.ClockEvery)
	Buffered   int    // encoded bytes waiting or in flight now
}

// Publisher is the capture half's Kafka transport. Publish copies rows into
// one pending message per partition, straight into the message's columns
// (wire.Rows); a full or lingering message goes to
// an encoder goroutine, which encodes and queues it, and one sender
// goroutine writes the queue in order, retrying while the broker is
// unreachable. Encoding beside the caller keeps the capture loop free for
// reading and decoding. Memory is bounded by MaxBufferBytes plus one
// pending message per partition and maxEncodeJobs messages waiting for the
// encoder (a Publish call that would pass that waits).
type Publisher struct {
	cfg    PublisherConfig
	log    *slog.Logger
	writer *kafkago.Writer

	mu        sync.Mutex
	closed    bool
	enc       *wire.Encoder // the encoder goroutine's alone, as is lastValue
	lastValue int
	pending   []pendingMsg  // one per partition
	names     []pendingMsg  // copies of DNS responses, one per partition
	toEncode  []encodeJob   // full messages for the encoder, in order
	encWake   chan struct{} // capacity 1: toEncode grew or closing
	encRoom   chan struct{} // closed and replaced when the encoder takes a job
	encDone   bool          // the encoder has ended: nothing more will be queued
	spare     []*wire.Rows
	lent      []*schemas.PacketBatch // handed out by Get, not yet published
	free      []*schemas.PacketBatch // published batches of Get's, for Get again
	queue     []queued
	stats     PublisherStats
	lastDrop  time.Time
	wake      chan struct{} // capacity 1: queue changed or closing
	room      chan struct{} // closed and replaced when the buffer shrinks
	// chunkBytes and chunkMsgs size the next write per partition (chunkLocked).
	chunkBytes, chunkMsgs []int
	// newestNs is the newest packet time published, lastNs per partition
	// the newest time it was sent (a row or a clock), and clockAt the
	// packet time at which partitions left behind are next sent a clock.
	newestNs, clockAt int64
	lastNs            []int64

	stopLinger chan struct{}
	senderCtx  context.Context
	stopSender context.CancelFunc
	done       sync.WaitGroup
}

// pendingMsg accumulates rows of one partition, as the columns of its
// message.
type pendingMsg struct {
	names bool // copies of DNS responses (HeaderNames)
	rows  *wire.Rows
	first time.Time
}

// encodeJob is a full pending message on its way to the encoder, or a
// clock message (clockNs set, rows nil).
type encodeJob struct {
	part    int
	names   bool
	rows    *wire.Rows
	clockNs int64
}

// maxEncodeJobs is how many full messages may wait for the encoder before
// Publish waits for it.
const maxEncodeJobs = 2

type queued struct {
	msg    kafkago.Message
	rows   int
	copies int // rows of a names message: counted apart from Rows
}

var _ transport.Publisher = (*Publisher)(nil)

// NewPublisher connects nothing yet except, when cfg.Partitions is 0, one
// metadata request for the partition count.
func NewPublisher(ctx context.Context, cfg PublisherConfig) (*Publisher, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return nil, errors.New("new publisher: Brokers and Topic are required")
	}
	if cfg.Key == nil {
		cfg.Key = ServerSide
	}
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = 4096
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 1_000_000
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 200 * time.Millisecond
	}
	if cfg.MaxBufferBytes <= 0 {
		cfg.MaxBufferBytes = 64 << 20
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ClockEvery == 0 {
		cfg.ClockEvery = 10 * time.Second
	}
	c, err := cfg.Security.conn("tamperscope-capture")
	if err != nil {
		return nil, fmt.Errorf("new publisher: %w", err)
	}
	if cfg.Partitions <= 0 {
		if cfg.Partitions, err = partitionCount(ctx, cfg.Brokers, c, cfg.Topic); err != nil {
			return nil, fmt.Errorf("new publisher: %w", err)
		}
	}
	enc, err := wire.NewEncoder(wire.EncoderOptions{Codec: cfg.Codec})
	if err != nil {
		return nil, fmt.Errorf("new publisher: %w", err)
	}
	log := cfg.Logger.With("topic", cfg.Topic)
	p := &Publisher{
		cfg: cfg,
		log: log,
		writer: &kafkago.Writer{
			Addr:      kafkago.TCP(cfg.Brokers...),
			Topic:     cfg.Topic,
			Balancer:  partitionBalancer{},
			Transport: c.transport,
			// The sender retries on its own, keeping order; kafka-go's
			// retries only smooth over a leader change.
			MaxAttempts: 3,
			// kafka-go preallocates BatchSize messages per batch; BatchBytes
			// is the bound that matters.
			BatchSize:    sendChunk,
			BatchBytes:   int64(cfg.MaxMessageBytes),
			BatchTimeout: time.Millisecond,
			RequiredAcks: kafkago.RequireAll,
			ErrorLogger:  kafkaLogger(log),
		},
		enc:        enc,
		pending:    make([]pendingMsg, cfg.Partitions),
		names:      make([]pendingMsg, cfg.Partitions),
		wake:       make(chan struct{}, 1),
		room:       make(chan struct{}),
		encWake:    make(chan struct{}, 1),
		encRoom:    make(chan struct{}),
		stopLinger: make(chan struct{}),
		lastNs:     make([]int64, cfg.Partitions),
	}
	for i := range p.pending {
		p.pending[i].rows = &wire.Rows{}
		p.names[i].rows = &wire.Rows{}
		p.names[i].names = true
	}
	p.senderCtx, p.stopSender = context.WithCancel(context.Background())
	p.done.Add(3)
	go p.encode()
	go p.send()
	go p.linger()
	return p, nil
}

// partitionBalancer sends a message to the partition its key names; the
// Publisher already grouped its rows by partition. Should the topic have
// gained or lost partitions since, the key is reduced modulo the count,
// which keeps one server's rows together.
type partitionBalancer struct{}

func (partitionBalancer) Balance(m kafkago.Message, partitions ...int) int {
	k := int(binary.BigEndian.Uint32(m.Key))
	if k < len(partitions) && partitions[k] == k {
		return k
	}
	return partitions[k%len(partitions)]
}

// partitionOf hashes the key address with FNV-1a: stable across processes
// and versions, so a server keeps its partition across restarts.
func partitionOf(a netip.Addr, n int) int {
	var b [16]byte
	if a.IsValid() {
		b = a.As16()
	}
	h := v4Prefix
	if !a.Is4() {
		h = fnv1a(fnvOffset, b[:12])
	}
	return int(fnv1a(h, b[12:]) % uint32(n))
}

const fnvOffset, fnvPrime = 2166136261, 16777619

func fnv1a(h uint32, b []byte) uint32 {
	for _, c := range b {
		h = (h ^ uint32(c)) * fnvPrime
	}
	return h
}

// v4Prefix is FNV-1a over the 12 bytes every IPv4 address starts with in
// 16-byte form: most addresses then cost 4 steps of the hash, not 16.
var v4Prefix = fnv1a(fnvOffset, []byte{10: 0xff, 11: 0xff})

// Get returns an empty batch to fill for Publish (ingest.BatchGetter).
// Publish copies the rows of a batch from Get out and keeps the batch for
// a later Get, which spares a capture loop a new batch per Publish.
func (p *Publisher) Get() *schemas.PacketBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := &schemas.PacketBatch{}
	if n := len(p.free); n > 0 {
		b = p.free[n-1]
		p.free = p.free[:n-1]
	}
	if len(p.lent) < maxLent {
		p.lent = append(p.lent, b)
	}
	return b
}

// maxLent bounds the batches Get tracks for reuse: a capture loop fills
// one at a time.
const maxLent = 2

// Publish copies b's rows into the pending messages of their partitions;
// b may be reused as soon as it returns, and a batch from Get is taken
// back for the next Get. It does not wait for the broker, except for room
// in a full buffer when Block is set.
func (p *Publisher) Publish(ctx context.Context, b *schemas.PacketBatch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.cfg.Block && !p.closed && p.stats.Buffered >= p.cfg.MaxBufferBytes {
		room := p.room
		p.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			p.mu.Lock()
			return fmt.Errorf("publish: wait for buffer room: %w", ctx.Err())
		}
		p.mu.Lock()
	}
	for !p.closed && len(p.toEncode) >= maxEncodeJobs {
		room := p.encRoom
		p.mu.Unlock()
		<-room // the encoder always gets to it: no need to watch ctx
		p.mu.Lock()
	}
	if p.closed {
		return fmt.Errorf("publish: %w", ErrClosed)
	}
	n := len(p.pending)
	newest := p.newestNs
	for i := range b.Packets {
		row := &b.Packets[i]
		part := partitionOf(p.cfg.Key(row), n)
		p.addLocked(&p.pending[part], part, row)
		p.stats.Rows++
		p.lastNs[part] = max(p.lastNs[part], row.TimestampNs)
		newest = max(newest, row.TimestampNs)
		if !p.cfg.NoDNSCopies && n > 1 && row.IsDNSAnswer() {
			for q := range p.names {
				if q != part {
					p.addLocked(&p.names[q], q, row)
				}
			}
		}
	}
	if len(b.Packets) > 0 {
		p.clocksLocked(newest)
	}
	if i := slices.Index(p.lent, b); i >= 0 {
		p.lent = slices.Delete(p.lent, i, i+1)
		b.Packets, b.Arena = b.Packets[:0], b.Arena[:0]
		p.free = append(p.free, b)
	}
	return nil
}

// clocksLocked takes newest, the newest packet time published so far, and
// sends a clock message to every partition whose newest row is ClockEvery
// or more behind it, after the rows it has pending. It looks once per
// ClockEvery of packet time.
func (p *Publisher) clocksLocked(newest int64) {
	every := int64(p.cfg.ClockEvery)
	if every < 0 {
		return
	}
	if p.newestNs == 0 { // the first rows: every partition starts here
		p.clockAt = newest + every
		for part := range p.lastNs {
			p.lastNs[part] = max(p.lastNs[part], newest)
		}
	}
	p.newestNs = newest
	if newest < p.clockAt {
		return
	}
	p.clockAt = newest + every
	for part, last := range p.lastNs {
		if newest-last < every {
			continue
		}
		p.flushLocked(&p.pending[part], part)
		p.toEncode = append(p.toEncode, encodeJob{part: part, clockNs: newest})
		p.lastNs[part] = newest
	}
	select {
	case p.encWake <- struct{}{}:
	default:
	}
}

// addLocked adds row to pm, the pending message of partition part, and
// queues pm once full: at MaxRows rows, or when one more row could take
// its encoding past MaxMessageBytes.
func (p *Publisher) addLocked(pm *pendingMsg, part int, row *schemas.PacketMeta) {
	if pm.rows.Len() == 0 {
		pm.first = time.Now()
	} else if pm.rows.Size()+rowBound(row) > p.maxRowsSize() {
		p.flushLocked(pm, part)
		pm.first = time.Now()
	}
	pm.rows.Append(row)
	if pm.rows.Len() >= p.cfg.MaxRows {
		p.flushLocked(pm, part)
	}
}

// maxRowsSize is the largest Rows.Size whose message fits MaxMessageBytes
// with kafka-go's framing.
func (p *Publisher) maxRowsSize() int {
	return p.cfg.MaxMessageBytes - maxOverhead - wire.MaxOverhead
}

// rowBound bounds what one row adds to a Rows.Size: its fixed columns,
// offsets and validity bits (256 bytes is more than all of them and four
// 16-byte addresses), and its variable-length values.
func rowBound(r *schemas.PacketMeta) int {
	return 256 + len(r.Vantage) + len(r.Payload) +
		len(r.Src.Zone()) + len(r.Dst.Zone()) + len(r.Quoted.Src.Zone()) + len(r.Quoted.Dst.Zone())
}

// flushLocked hands pm, a pending message of partition part, to the
// encoder, and gives pm empty rows to fill.
func (p *Publisher) flushLocked(pm *pendingMsg, part int) {
	if pm.rows.Len() == 0 {
		return
	}
	p.toEncode = append(p.toEncode, encodeJob{part: part, names: pm.names, rows: pm.rows})
	pm.rows = &wire.Rows{}
	if n := len(p.spare); n > 0 {
		pm.rows, p.spare = p.spare[n-1], p.spare[:n-1]
	}
	select {
	case p.encWake <- struct{}{}:
	default:
	}
}

// encode is the encoder goroutine: it encodes the jobs flushLocked hands
// over, in order, and queues the messages for the sender. It ends once the
// Publisher is closed and every job is done.
func (p *Publisher) encode() {
	defer p.done.Done()
	p.mu.Lock()
	for {
		if len(p.toEncode) == 0 {
			if p.closed {
				p.encDone = true
				p.wakeSenderLocked()
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			<-p.encWake
			p.mu.Lock()
			continue
		}
		j := p.toEncode[0]
		p.toEncode = append(p.toEncode[:0], p.toEncode[1:]...)
		close(p.encRoom)
		p.encRoom = make(chan struct{})
		p.mu.Unlock()
		if j.rows == nil { // a clock: its header says it all
			p.mu.Lock()
			p.queueLocked(j, encoded{})
			continue
		}
		m := p.encodeRows(j.rows)
		j.rows.Reset()
		p.mu.Lock()
		p.queueLocked(j, m)
		p.spare = append(p.spare, j.rows)
	}
}

// encoded is a message, or the rows that could not be encoded into one.
type encoded struct {
	value []byte
	rows  int
	err   error
}

// maxOverhead is room for the record framing kafka-go adds to a value.
const maxOverhead = 1024

// encodeRows encodes rows as one message. addLocked closes a message
// before it could pass MaxMessageBytes; only a single row that does by
// itself fails.
func (p *Publisher) encodeRows(rows *wire.Rows) encoded {
	// Messages of one capture are much alike: room for a little more than
	// the last one spares the value its growth by doubling.
	value, err := p.enc.EncodeRows(make([]byte, 0, p.lastValue+p.lastValue/4), rows)
	p.lastValue = len(value)
	if err == nil && len(value) > p.cfg.MaxMessageBytes-maxOverhead {
		err = fmt.Errorf("%d row(s) encode to %d bytes, over MaxMessageBytes %d", rows.Len(), len(value), p.cfg.MaxMessageBytes)
	}
	return encoded{value: value, rows: rows.Len(), err: err}
}

// queueLocked counts m, the message of job j, and queues it for the
// sender, or counts its rows as lost when it has none or finds no room.
func (p *Publisher) queueLocked(j encodeJob, m encoded) {
	part, names := j.part, j.names
	value, rows, err := m.value, m.rows, m.err
	if names {
		p.stats.CopiedRows += uint64(rows)
	}
	if err != nil {
		p.lostLocked(names, rows, &p.stats.FailedRows)
		p.stats.FailedMsgs++
		p.log.Error("kafka publisher: cannot encode rows; counted as failed", "rows", rows, "err", err)
		return
	}
	p.stats.Messages++
	p.stats.Bytes += uint64(len(value))
	if !p.cfg.Block && p.stats.Buffered+len(value) > p.cfg.MaxBufferBytes {
		p.lostLocked(names, rows, &p.stats.DroppedRows)
		p.stats.DroppedMsgs++
		if now := time.Now(); now.Sub(p.lastDrop) >= 10*time.Second {
			p.lastDrop = now
			p.log.Warn("kafka publisher: buffer full, dropping rows (broker slow or unreachable)",
				"buffered_bytes", p.stats.Buffered, "dropped_rows_total", p.stats.DroppedRows)
		}
		return
	}
	key := make([]byte, 4)
	binary.BigEndian.PutUint32(key, uint32(part))
	q := queued{msg: kafkago.Message{Key: key, Value: value}, rows: rows}
	if names {
		q.msg.Headers = []kafkago.Header{{Key: HeaderNames, Value: []byte{'1'}}}
		q.rows, q.copies = 0, rows
	}
	if j.clockNs != 0 {
		q.msg.Headers = []kafkago.Header{{Key: HeaderClock, Value: strconv.AppendInt(nil, j.clockNs, 10)}}
		p.stats.Clocks++
	}
	p.queue = append(p.queue, q)
	p.stats.Buffered += len(value)
	p.wakeSenderLocked()
}

func (p *Publisher) wakeSenderLocked() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// lostLocked counts n rows that did not make it into counter, or into
// LostCopies when they were copies.
func (p *Publisher) lostLocked(names bool, n int, counter *uint64) {
	if names {
		p.stats.LostCopies += uint64(n)
		return
	}
	*counter += uint64(n)
}

// linger flushes pending messages whose first row is older than Linger.
func (p *Publisher) linger() {
	defer p.done.Done()
	t := time.NewTicker(p.cfg.Linger / 4)
	defer t.Stop()
	for {
		select {
		case <-p.stopLinger:
			return
		case now := <-t.C:
			p.mu.Lock()
			for part := range p.pending {
				for _, pm := range []*pendingMsg{&p.pending[part], &p.names[part]} {
					if pm.rows.Len() > 0 && now.Sub(pm.first) >= p.cfg.Linger {
						p.flushLocked(pm, part)
					}
				}
			}
			p.mu.Unlock()
		}
	}
}

// sendChunk bounds the messages one WriteMessages call carries.
const sendChunk = 256

// send writes the queue head to the broker in order. A message that fails
// with a retriable error stays at the head and is retried after a backoff;
// one the broker rejects for good is counted as failed.
func (p *Publisher) send() {
	defer p.done.Done()
	backoff := time.Duration(0)
	for {
		p.mu.Lock()
		chunk := p.queue[:p.chunkLocked()]
		msgs := make([]kafkago.Message, len(chunk))
		for i, q := range chunk {
			msgs[i] = q.msg
		}
		closing := p.encDone
		p.mu.Unlock()
		if len(msgs) == 0 {
			if closing {
				return
			}
			select {
			case <-p.wake:
			case <-p.senderCtx.Done():
				return
			}
			continue
		}
		err := p.writer.WriteMessages(p.senderCtx, msgs...)
		if p.senderCtx.Err() != nil {
			return
		}
		retry := p.settle(len(msgs), err)
		if !retry {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
		select {
		case <-time.After(backoff):
		case <-p.senderCtx.Done():
			return
		}
	}
}

// chunkLocked returns how many messages from the head of the queue the
// next write takes. The messages of one partition in a write must fit in
// one kafka-go batch, which is one produce request that the broker takes
// or refuses whole: kafka-go writes a partition's batches one after the
// other, each with its own attempts, so with two batches the second could
// be acknowledged after the first failed (the broker went away between
// them), and the retried first would land behind it — rows out of order
// in the partition, a flow cut in two.
func (p *Publisher) chunkLocked() int {
	if p.chunkBytes == nil {
		p.chunkBytes = make([]int, len(p.pending))
		p.chunkMsgs = make([]int, len(p.pending))
	}
	clear(p.chunkBytes)
	clear(p.chunkMsgs)
	n := 0
	for n < len(p.queue) && n < sendChunk {
		part := int(binary.BigEndian.Uint32(p.queue[n].msg.Key)) % len(p.pending)
		size := len(p.queue[n].msg.Value) + maxOverhead
		if p.chunkMsgs[part] > 0 && (p.chunkBytes[part]+size >= p.cfg.MaxMessageBytes || p.chunkMsgs[part]+1 >= sendChunk) {
			break
		}
		p.chunkBytes[part] += size
		p.chunkMsgs[part]++
		n++
	}
	return n
}

// settle accounts for the first n queued messages after a write and
// removes those that are done; it reports whether any must be retried.
func (p *Publisher) settle(n int, err error) (retry bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var werrs kafkago.WriteErrors
	perMessage := errors.As(err, &werrs) && len(werrs) == n
	keep := p.queue[:0]
	for i, q := range p.queue[:n] {
		e := err
		if perMessage {
			e = werrs[i]
		}
		switch {
		case e == nil:
			p.stats.AckedRows += uint64(q.rows)
			p.stats.AckedMsgs++
			p.stats.Buffered -= len(q.msg.Value)
		case permanent(e):
			p.stats.FailedRows += uint64(q.rows)
			p.stats.LostCopies += uint64(q.copies)
			p.stats.FailedMsgs++
			p.stats.Buffered -= len(q.msg.Value)
			p.log.Error("kafka publisher: broker rejected a message; counted as failed", "rows", q.rows, "err", e)
		default:
			keep = append(keep, q)
		}
	}
	if len(keep) > 0 {
		retry = true
		p.stats.Retries++
		p.log.Warn("kafka publisher: write failed, will retry", "messages", len(keep), "buffered_bytes", p.stats.Buffered, "err", err)
	}
	rest := p.queue[n:]
	p.queue = append(keep, rest...)
	clear(p.queue[len(p.queue) : n+len(rest)])
	if len(keep) < n {
		close(p.room)
		p.room = make(chan struct{})
	}
	return retry
}

// permanent tells errors that retrying cannot fix (message too large,
// authorization, unknown topic after retries) from transient ones.
func permanent(err error) bool {
	var ke kafkago.Error
	if errors.As(err, &ke) {
		return !ke.Temporary()
	}
	var tooLarge kafkago.MessageTooLargeError
	return errors.As(err, &tooLarge)
}

// Stats returns the counters so far.
func (p *Publisher) Stats() PublisherStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close encodes what is pending, waits up to CloseTimeout for the broker to
// acknowledge everything buffered, and counts what is left as failed. It
// returns an error when any row was dropped or failed over the Publisher's
// life, so a lossy run never ends silently.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("close publisher: %w", ErrClosed)
	}
	p.closed = true
	for part := range p.pending {
		p.flushLocked(&p.pending[part], part)
		p.flushLocked(&p.names[part], part)
	}
	close(p.encRoom) // a Publish waiting for the encoder sees closed
	p.encRoom = make(chan struct{})
	select {
	case p.encWake <- struct{}{}:
	default:
	}
	p.mu.Unlock()
	close(p.stopLinger)

	drained := make(chan struct{})
	go func() {
		p.done.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(p.cfg.CloseTimeout):
		p.stopSender()
		<-drained
	}
	p.stopSender()
	werr := p.writer.Close()

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range p.queue {
		p.stats.FailedRows += uint64(q.rows)
		p.stats.LostCopies += uint64(q.copies)
		p.stats.FailedMsgs++
		p.stats.Buffered -= len(q.msg.Value)
	}
	p.queue = nil
	s := p.stats
	if s.FailedRows > 0 || s.DroppedRows > 0 {
		return fmt.Errorf("close publisher: %d of %d rows not delivered (%d dropped on a full buffer, %d failed)",
			s.FailedRows+s.DroppedRows, s.Rows, s.DroppedRows, s.FailedRows)
	}
	if werr != nil {
		return fmt.Errorf("close publisher: %w", werr)
	}
	return nil
}

// kafkaLogger routes kafka-go's error log to slog.
func kafkaLogger(l *slog.Logger) kafkago.Logger {
	return kafkago.LoggerFunc(func(msg string, args ...any) {
		l.Warn("kafka-go: " + fmt.Sprintf(msg, args...))
	})
}

// kafkaLoggerUntil is kafkaLogger that falls silent once ctx ends: a
// reader stopped by a rebalance reports its cut connection as an error.
func kafkaLoggerUntil(ctx context.Context, l *slog.Logger) kafkago.Logger {
	return kafkago.LoggerFunc(func(msg string, args ...any) {
		if ctx.Err() == nil {
			l.Warn("kafka-go: " + fmt.Sprintf(msg, args...))
		}
	})
}
