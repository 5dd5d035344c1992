package ingest

import (
	"github.com/tamperscope/tamperscope/schemas"
)

// flowHash is a symmetric hash of p's 5-tuple and the direction of p
// (0 when its source is the canonically lower endpoint).
func flowHash(p *schemas.PacketMeta) (uint64, int) {
	a, b := p.Src.As16(), p.Dst.As16()
	ap, bp := p.SrcPort, p.DstPort
	dir := 0
	if c := compare16(a, b); c > 0 || (c == 0 && ap > bp) {
		a, b, ap, bp = b, a, bp, ap
		dir = 1
	}
	h := uint64(14695981039346656037)
	mix := func(v uint64) { h = (h ^ v) * 1099511628211 }
	for i := 0; i < 16; i += 8 {
		mix(le64(a[i:]))
		mix(le64(b[i:]))
	}
	mix(uint64(ap)<<24 | uint64(bp)<<8 | uint64(p.Proto))
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return h, dir
}

func compare16(a, b [16]byte) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
