package ingest

import "github.com/tamperscope/tamperscope/schemas"

// SnapConfig is the payload snapshot policy. The zero value works.
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
// canonically lower one).
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
	sl.packets[dir]++
	sl.bytes[dir] += uint32(n)
	return n
}
