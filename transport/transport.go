package transport

import (
	"context"

	"github.com/tamperscope/tamperscope/schemas"
)

// Publisher is the capture half's end of a transport.
type Publisher interface {
	// Publish hands b to the transport, which owns it from then on.
	Publish(ctx context.Context, b *schemas.PacketBatch) error
	// Close flushes everything published and releases the transport.
	Close() error
}

// Delivery is one batch as the analyzer half receives it.
type Delivery struct {
	Batch *schemas.PacketBatch
	// Partition and Offset locate the batch in its stream (Kafka partition
	// and message offset; 0 and a running count in process).
	Partition int
	Offset    int64
	// Names marks a batch of copies of DNS responses whose flows belong
	// to other partitions: use them for the names they answer, not as
	// packets (transport/kafka sends them to every partition).
	Names bool
	// ClockNs, when not 0, marks a clock message: no packets, only word
	// that the producer's packet time has reached ClockNs, for a partition
	// that had no packet of its own for a while. It moves the partition's
	// packet time as a packet of that time would, so a quiet partition
	// still expires its flows, judges its windows and commits its offsets
	// (transport/kafka sends them, PublisherConfig.ClockEvery).
	ClockNs int64
}

// Subscriber is the analyzer half's end of a transport.
type Subscriber interface {
	// Next blocks for the next delivery; io.EOF when the stream has ended.
	Next(ctx context.Context) (Delivery, error)
	// Release returns a handled delivery's batch for reuse.
	Release(d Delivery)
	Close() error
}
