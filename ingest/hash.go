package ingest

import (
	"github.com/tamperscope/tamperscope/internal/ipwords"
	"github.com/tamperscope/tamperscope/schemas"
)

// flowHash is a symmetric hash of p's 5-tuple and the direction of p
// (0 when its source is the canonically lower endpoint). It only steers
// the snapshot policy's table, so speed matters more than its spread.
func flowHash(p *schemas.PacketMeta) (uint64, int) {
	a0, a1 := ipwords.Of(p.Src)
	b0, b1 := ipwords.Of(p.Dst)
	ap, bp := uint64(p.SrcPort), uint64(p.DstPort)
	dir := 0
	if a0 > b0 || a0 == b0 && (a1 > b1 || a1 == b1 && ap > bp) {
		a0, a1, b0, b1, ap, bp = b0, b1, a0, a1, bp, ap
		dir = 1
	}
	h := a0*0x9e3779b97f4a7c15 ^ a1*0xc2b2ae3d27d4eb4f ^ b0*0x165667b19e3779f9 ^
		b1*0xd6e8feb86659fd93 ^ (ap<<24|bp<<8|uint64(p.Proto))*0xff51afd7ed558ccd
	h ^= h >> 32
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return h, dir
}
