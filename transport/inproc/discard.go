package inproc

import (
	"context"

	"github.com/tamperscope/tamperscope/schemas"
)

// Discard is a Publisher that drops what it is given and hands the last
// batch back through Get, as a Pipe recycles them: it measures a packet
// source alone, with nothing downstream. The zero value works.
type Discard struct{ last *schemas.PacketBatch }

// Publish implements transport.Publisher.
func (d *Discard) Publish(_ context.Context, b *schemas.PacketBatch) error {
	d.last = b
	return nil
}

// Close implements transport.Publisher.
func (d *Discard) Close() error { return nil }

// Get returns an empty batch, reusing the last one published.
func (d *Discard) Get() *schemas.PacketBatch {
	b := d.last
	if b == nil {
		return &schemas.PacketBatch{}
	}
	d.last = nil
	b.Packets, b.Arena = b.Packets[:0], b.Arena[:0]
	return b
}
