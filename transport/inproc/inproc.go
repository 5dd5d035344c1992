// Package inproc is the embedded transport: a bounded channel of packet
// batches between the capture and analyzer halves of one process, with a
// free list so batches are reused instead of reallocated.
package inproc

import (
	"context"
	"io"
	"sync"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport"
)

// Pipe connects one Publisher to one Subscriber.
type Pipe struct {
	ch     chan *schemas.PacketBatch
	free   chan *schemas.PacketBatch
	offset int64
	once   sync.Once
}

// New returns a pipe that holds up to depth batches in flight; depth 0
// means 8. Capture blocks when the analyzer falls that far behind: replay
// must not drop, and live sources count their own drops upstream.
func New(depth int) *Pipe {
	if depth <= 0 {
		depth = 8
	}
	return &Pipe{ch: make(chan *schemas.PacketBatch, depth), free: make(chan *schemas.PacketBatch, depth+2)}
}

var (
	_ transport.Publisher  = (*Pipe)(nil)
	_ transport.Subscriber = (*Pipe)(nil)
)

// Get returns an empty batch to fill, reusing a released one when there is.
func (p *Pipe) Get() *schemas.PacketBatch {
	select {
	case b := <-p.free:
		b.Packets = b.Packets[:0]
		b.Arena = b.Arena[:0]
		return b
	default:
		return &schemas.PacketBatch{}
	}
}

// Publish implements transport.Publisher.
func (p *Pipe) Publish(ctx context.Context, b *schemas.PacketBatch) error {
	select {
	case p.ch <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close implements transport.Publisher: the subscriber drains what is
// queued and then sees io.EOF.
func (p *Pipe) Close() error {
	p.once.Do(func() { close(p.ch) })
	return nil
}

// Next implements transport.Subscriber.
func (p *Pipe) Next(ctx context.Context) (transport.Delivery, error) {
	select {
	case b, ok := <-p.ch:
		if !ok {
			return transport.Delivery{}, io.EOF
		}
		d := transport.Delivery{Batch: b, Offset: p.offset}
		p.offset++
		return d, nil
	case <-ctx.Done():
		return transport.Delivery{}, ctx.Err()
	}
}

// Release implements transport.Subscriber.
func (p *Pipe) Release(d transport.Delivery) {
	select {
	case p.free <- d.Batch:
	default:
	}
}
