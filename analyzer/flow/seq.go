package flow

func seqLT(a, b uint32) bool  { return int32(a-b) < 0 }
func seqLEQ(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool  { return int32(a-b) > 0 }
func seqMax(a, b uint32) uint32 {
	if seqGT(a, b) {
		return a
	}
	return b
}

type seqRange = rng[uint32]

// maxHoles bounds the ranges a seqTracker remembers above a hole; a segment
// that would need more is not remembered (its later copy then looks new).
const maxHoles = 4

// seqTracker follows one direction's sequence space to classify data
// segments as new, retransmitted or hole-filling.
type seqTracker struct {
	nxt, max uint32
	init     bool
	n        uint8
	r        [maxHoles]seqRange // received above nxt: sorted, disjoint
}

type segKind uint8

const (
	segNew     segKind = iota // extends the highest seq seen
	segRetrans                // entirely below max, every byte seen before
	segFill                   // entirely below max, fills (part of) a hole
)

// start anchors the tracker at the first byte of the stream (ISN+1).
func (t *seqTracker) start(seq uint32) {
	t.init, t.nxt, t.max, t.n = true, seq, seq, 0
}

func (t *seqTracker) add(s, e uint32) segKind {
	if !t.init {
		t.start(s)
	}
	if seqLEQ(e, t.nxt) {
		return segRetrans
	}
	if seqGT(e, t.max) {
		t.insert(s, e)
		t.max = e
		return segNew
	}
	lo := seqMax(s, t.nxt)
	for i := uint8(0); i < t.n; i++ {
		if seqLEQ(t.r[i].lo, lo) && seqLEQ(e, t.r[i].hi) {
			return segRetrans
		}
	}
	t.insert(s, e)
	return segFill
}

func (t *seqTracker) insert(s, e uint32) {
	if seqLT(s, t.nxt) {
		s = t.nxt
	}
	if s == t.nxt {
		t.nxt = e
		// Absorb ranges now reachable.
		k := uint8(0)
		for k < t.n && seqLEQ(t.r[k].lo, t.nxt) {
			t.nxt = seqMax(t.nxt, t.r[k].hi)
			k++
		}
		copy(t.r[:], t.r[k:t.n])
		t.n -= k
		return
	}
	// Merge [s,e) into the sorted range list; when it is full the segment
	// is not remembered.
	if m, ok := mergeRange(t.r[:], int(t.n), s, e, seqLT); ok {
		t.n = uint8(m)
	}
}

type span = rng[int]

const maxStreamRanges = 16

// buffer holds one direction's collected payload, a TCP stream prefix.
// Buffers are recycled through the table's free list.
type buffer struct {
	data []byte
	free *[]*buffer // the owning table's free list
	// TCP reassembly: byte ranges held, relative to base, sorted and merged.
	base  uint32
	based bool
	n     uint8
	r     [maxStreamRanges]span
}

func (b *buffer) reset() {
	b.based, b.n = false, 0
}

func (b *buffer) contiguous() []byte {
	if b.n == 0 || b.r[0].lo != 0 {
		return nil
	}
	return b.data[:b.r[0].hi]
}

// addTCP places payload at seq, keeping bytes already held (first copy
// wins). It reports false when the segment had to be dropped.
func (b *buffer) addTCP(seq uint32, payload []byte, limit int) bool {
	off := int64(int32(seq - b.base))
	if off < 0 {
		if -off >= int64(len(payload)) {
			return true
		}
		payload = payload[-off:]
		off = 0
	}
	if off >= int64(limit) || len(payload) == 0 {
		return true
	}
	lo := int(off)
	hi := min(lo+len(payload), limit)
	// Refuse before writing when the range list is full and the segment
	// touches none of them.
	if int(b.n) == maxStreamRanges && !b.touches(lo, hi) {
		return false
	}
	cur := lo
	for i := uint8(0); i < b.n && cur < hi; i++ {
		r := b.r[i]
		if r.hi <= cur || r.lo >= hi {
			if r.lo >= hi {
				break
			}
			continue
		}
		if r.lo > cur {
			copy(b.data[cur:r.lo], payload[cur-lo:])
		}
		cur = max(cur, r.hi)
	}
	if cur < hi {
		copy(b.data[cur:hi], payload[cur-lo:])
	}
	b.merge(lo, hi)
	return true
}

func (b *buffer) touches(lo, hi int) bool {
	for i := uint8(0); i < b.n; i++ {
		if b.r[i].lo <= hi && lo <= b.r[i].hi {
			return true
		}
	}
	return false
}

// merge records [lo, hi) as held; addTCP makes sure it fits.
func (b *buffer) merge(lo, hi int) {
	m, _ := mergeRange(b.r[:], int(b.n), lo, hi, less[int])
	b.n = uint8(m)
}
