package ingest

import "github.com/tamperscope/tamperscope/schemas"

// SnapConfig is the payload snapshot policy. The zero value works.
//
// A TCP direction that starts like TLS keeps its handshake records and
// nothing after them (see tlsFraming); the budgets below bound every
// direction.
type SnapConfig struct {
	// Bytes is the payload kept per flow direction, summed over packets.
	// The default, 16 KiB, holds an 11 KB ClientHello split over a dozen
	// segments and a TLS 1.2 certificate chain's leaf.
	Bytes int
	// Packets is the number of data packets snapshotted per flow
	// direction. The default is 16.
	Packets int
	// Slots is the number of flows the policy remembers (rounded up to a
	// power of two). A flow whose slot is taken over by another starts
	// again, which can only snapshot more, never less. The default is
	// 1<<18.
	Slots int
}

type snapSlot struct {
	key     uint64
	bytes   [2]uint32
	packets [2]uint16
	tls     [2]tlsFraming
}

// tlsFraming follows the TLS record layer of one direction of a TCP flow,
// so the snapshot can stop where the handshake does: the parsers need
// the ClientHello, ServerHello and (TLS 1.2 and older) the Certificate, all
// in handshake records, and nothing from the first record of another type
// (ChangeCipherSpec, application data, alert) on, which is encrypted or
// says nothing new. It only ever stops early when it has followed every
// byte: a gap, a retransmission, a record header split over two segments
// or a stream that does not start like TLS leaves the direction to the
// byte and packet budgets.
type tlsFraming struct {
	next  uint32 // sequence number of the next byte expected
	rec   uint32 // sequence number of the next record header
	state uint8
}

const (
	framingStart    = iota // no payload seen yet
	framingTLS             // following records
	framingOff             // left to the budgets
	framingFinished        // handshake over: nothing more to keep
)

// keepTLS returns how many of the n budgeted bytes of p's payload to keep.
func (f *tlsFraming) keepTLS(p *schemas.PacketMeta, n int) int {
	b := p.Payload
	switch f.state {
	case framingOff:
		return n
	case framingFinished:
		return 0
	case framingStart:
		if len(b) < 5 || b[0] != 0x16 || b[1] != 0x03 {
			f.state = framingOff
			return n
		}
		f.state, f.next, f.rec = framingTLS, p.Seq, p.Seq
	}
	if p.Seq != f.next {
		f.state = framingOff
		return n
	}
	f.next = p.Seq + uint32(len(b))
	for {
		off := int(f.rec - p.Seq)
		if off >= len(b) {
			return n // the next record starts in a later segment
		}
		if off+5 > len(b) {
			f.state = framingOff
			return n
		}
		if b[off] != 0x16 {
			f.state = framingFinished
			return min(n, off)
		}
		f.rec += 5 + (uint32(b[off+3])<<8 | uint32(b[off+4]))
	}
}

// snapper decides, per packet, how many payload bytes to keep.
type snapper struct {
	cfg   SnapConfig
	slots []snapSlot
	mask  uint64
}

func newSnapper(cfg SnapConfig) *snapper {
	if cfg.Bytes <= 0 {
		cfg.Bytes = 16 << 10
	}
	if cfg.Packets <= 0 {
		cfg.Packets = 16
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 1 << 18
	}
	n := 1
	for n < cfg.Slots {
		n <<= 1
	}
	return &snapper{cfg: cfg, slots: make([]snapSlot, n), mask: uint64(n - 1)}
}

// keep returns how many bytes of p.Payload to snapshot. hash is the
// packet's symmetric flow hash; dir says which endpoint sent it (0 for the
// canonically lower one), as flowHash returns them.
func (s *snapper) keep(p *schemas.PacketMeta, hash uint64, dir int) int {
	key := hash | 1 // 0 marks an empty slot
	sl := &s.slots[hash&s.mask]
	if p.TCPFlags&schemas.TCPSyn != 0 {
		*sl = snapSlot{key: key} // a new connection on the 4-tuple
	}
	if len(p.Payload) == 0 {
		return 0
	}
	if sl.key != key {
		*sl = snapSlot{key: key}
	}
	if int(sl.packets[dir]) >= s.cfg.Packets || int(sl.bytes[dir]) >= s.cfg.Bytes {
		return 0
	}
	n := min(len(p.Payload), s.cfg.Bytes-int(sl.bytes[dir]))
	if p.Proto == schemas.ProtoTCP {
		if n = sl.tls[dir].keepTLS(p, n); n == 0 {
			return 0
		}
	}
	sl.packets[dir]++
	sl.bytes[dir] += uint32(n)
	return n
}
