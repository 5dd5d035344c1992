package wire

import "errors"

// errTooLarge is the panic value of a slab that would exceed its limit; the
// decoder recovers it, so a message claiming a huge decompressed size costs
// an error, not the process's memory.
var errTooLarge = errors.New("decoded size over limit")

// slab is an arrow memory.Allocator that carves buffers out of one reusable
// block, so decoding a message allocates nothing once the block is big
// enough. Buffers live until reset; Free is a no-op.
type slab struct {
	block []byte
	used  int
	// total counts bytes handed out since reset, to enforce limit.
	total int
	limit int
}

const slabAlign = 64

func (s *slab) reset() {
	s.used, s.total = 0, 0
}

func (s *slab) Allocate(size int) []byte {
	if size < 0 || size > s.limit-s.total {
		panic(errTooLarge)
	}
	s.total += size
	start := (s.used + slabAlign - 1) &^ (slabAlign - 1)
	if start+size > len(s.block) {
		// Buffers already carved keep the old block alive until they are
		// dropped; later messages fit in the new one.
		s.block = make([]byte, max(2*len(s.block), size+slabAlign, 64<<10))
		start = 0
	}
	s.used = start + size
	b := s.block[start : start+size : start+size]
	clear(b)
	return b
}

func (s *slab) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		return b[:size]
	}
	nb := s.Allocate(size)
	copy(nb, b)
	return nb
}

func (s *slab) Free([]byte) {}
