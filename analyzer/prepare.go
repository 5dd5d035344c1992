package analyzer

import (
	"sync"

	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/analyzer/tlshello"
	"github.com/tamperscope/tamperscope/schemas"
)

// prepared holds what the Prepare methods worked out, by batch, until
// Process takes it. cur, curFor and keyer belong to the producer's
// goroutine; the rest is shared with Process under mu.
type prepared struct {
	mu      sync.Mutex
	batches map[*schemas.PacketBatch]*preparedBatch
	free    []*preparedBatch

	cur    *preparedBatch // the batch being prepared packet by packet
	curFor *schemas.PacketBatch
	keyer  flow.Keyer
}

// preparedBatch is what is worked out of one batch ahead of Process: the
// flow key of every packet, and the ClientHellos that are whole in one
// packet (those without a post-quantum key share, today).
type preparedBatch struct {
	keys   []flow.KeyedPacket
	hellos []preparedHello // by packet index
}

// preparedHello is a ClientHello parsed from one packet's payload alone.
// Process uses it when that payload is all the client has sent.
type preparedHello struct {
	i      int // index of the packet in the batch
	fields helloFields
}

// maxPrepared bounds the batches prepared and not processed yet: a pipe
// holds a few.
const maxPrepared = 64

// PreparePacket is told of b.Packets[i], whose payload will be snap, as
// soon as the packet is decoded, and PrepareBatch of b once every packet
// of it was: between them they work out the packets' flow keys and the
// ClientHellos whole in one packet for a later Process(b). Like Prepare,
// and unlike every other method, they run on the producer's goroutine
// (ingest.Preparer), where each packet is still in the CPU's cache, while
// Process works on earlier batches; which takes that work off the
// engine's goroutine. One producer goroutine at a time may prepare.
func (e *Engine) PreparePacket(b *schemas.PacketBatch, i int, snap []byte) {
	p := &e.prep
	if p.curFor != b {
		p.curFor, p.cur = b, p.get()
	}
	pb := p.cur
	if pb == nil {
		return
	}
	if i != len(pb.keys) { // not told of every packet in order
		p.give(pb)
		p.cur = nil
		return
	}
	pb.keys = append(pb.keys, flow.KeyedPacket{})
	pkt := &b.Packets[i]
	p.keyer.Key(&pb.keys[i], pkt)
	if pkt.Proto != schemas.ProtoTCP || !tlshello.LooksLikeClientHello(snap) {
		return
	}
	// Incomplete or malformed: Process sees more of the stream, or the
	// error, itself.
	if ch, err := tlshello.ParseClientHello(snap); err == nil {
		pb.hellos = append(pb.hellos, preparedHello{i: i, fields: helloFieldsOf(&ch)})
	}
}

// PrepareBatch hands what PreparePacket worked out of b to Process.
func (e *Engine) PrepareBatch(b *schemas.PacketBatch) {
	p := &e.prep
	if p.curFor != b {
		return
	}
	pb := p.cur
	p.cur, p.curFor = nil, nil
	if pb == nil {
		return
	}
	if len(pb.keys) != len(b.Packets) {
		p.give(pb)
		return
	}
	p.mu.Lock()
	if p.batches == nil {
		p.batches = map[*schemas.PacketBatch]*preparedBatch{}
	}
	p.batches[b] = pb
	p.mu.Unlock()
}

// Prepare does for a whole batch what PreparePacket and PrepareBatch do
// packet by packet, for a producer that hands over batches it did not
// build (a batch already prepared is left as it is).
func (e *Engine) Prepare(b *schemas.PacketBatch) {
	p := &e.prep
	p.mu.Lock()
	_, done := p.batches[b]
	p.mu.Unlock()
	if done {
		return
	}
	for i := range b.Packets {
		e.PreparePacket(b, i, b.Packets[i].Payload)
	}
	e.PrepareBatch(b)
}

// get returns an empty preparedBatch, nil when too many wait for Process.
func (p *prepared) get() *preparedBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.batches) >= maxPrepared {
		return nil
	}
	if n := len(p.free); n > 0 {
		pb := p.free[n-1]
		p.free = p.free[:n-1]
		return pb
	}
	return &preparedBatch{}
}

// take returns what was prepared of b, nil if nothing was (or b changed
// since).
func (p *prepared) take(b *schemas.PacketBatch) *preparedBatch {
	p.mu.Lock()
	pb := p.batches[b]
	delete(p.batches, b)
	p.mu.Unlock()
	if pb != nil && len(pb.keys) != len(b.Packets) {
		p.give(pb)
		return nil
	}
	return pb
}

// give returns pb for another batch.
func (p *prepared) give(pb *preparedBatch) {
	pb.keys, pb.hellos = pb.keys[:0], pb.hellos[:0]
	p.mu.Lock()
	p.free = append(p.free, pb)
	p.mu.Unlock()
}
