package inproc

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/tamperscope/tamperscope/schemas"
)

func TestPipeDeliversInOrderThenEOF(t *testing.T) {
	p := New(2)
	ctx := context.Background()
	const n = 100
	go func() {
		for i := range n {
			b := p.Get()
			b.Packets = append(b.Packets, schemas.PacketMeta{TimestampNs: int64(i)})
			if err := p.Publish(ctx, b); err != nil {
				t.Error(err)
			}
		}
		p.Close()
	}()
	for i := 0; ; i++ {
		d, err := p.Next(ctx)
		if errors.Is(err, io.EOF) {
			if i != n {
				t.Fatalf("got %d batches, want %d", i, n)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Batch.Packets[0].TimestampNs; got != int64(i) || d.Offset != int64(i) {
			t.Fatalf("batch %d: ts %d offset %d", i, got, d.Offset)
		}
		p.Release(d)
	}
}

func TestPublishHonoursCancel(t *testing.T) {
	p := New(1)
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Publish(ctx, p.Get()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := p.Publish(ctx, p.Get()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish on a full pipe after cancel: %v", err)
	}
}
