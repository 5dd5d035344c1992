package flow

import (
	"cmp"
	"math/bits"
	"net/netip"

	"github.com/tamperscope/tamperscope/internal/ipwords"
	"github.com/tamperscope/tamperscope/schemas"
)

// Key is the canonical bidirectional identity of a flow: both endpoints
// ordered so that the two directions of one flow produce the same Key.
// Addresses are held in 16-byte form (IPv4 as IPv4-mapped IPv6), as two
// big-endian words (see words).
type Key struct {
	LoAddr, HiAddr [2]uint64
	LoPort, HiPort uint16
	Proto          uint8
	// Vantage tells apart one connection seen at two vantages (two
	// vantages behind the same private address may also see the same
	// five-tuple): VantageTag of the packets' vantage, 0 without one.
	Vantage uint16
}

// KeyOf returns the flow key of p. ICMP errors (p.Quoted set) key to the
// flow they quote; IP later-fragments carry no ports and key to the address
// pair alone. ok is false when p has no usable addresses.
func KeyOf(p *schemas.PacketMeta) (k Key, ok bool) {
	_, ok = k.of(p, VantageTag(p.Vantage))
	return k, ok
}

// KeyOfRecord returns the key of the flow r records. ok is false when r's
// addresses or protocol cannot be read back.
func KeyOfRecord(r *schemas.FlowRecord) (k Key, ok bool) {
	var proto uint8
	switch r.Proto {
	case "tcp":
		proto = schemas.ProtoTCP
	case "udp":
		proto = schemas.ProtoUDP
	case "icmp":
		proto = schemas.ProtoICMP
	case "icmpv6":
		proto = schemas.ProtoICMPv6
	default:
		return Key{}, false
	}
	c, err1 := netip.ParseAddr(r.ClientIP)
	s, err2 := netip.ParseAddr(r.ServerIP)
	if err1 != nil || err2 != nil {
		return Key{}, false
	}
	_, ok = k.set(c, s, r.ClientPort, r.ServerPort, proto, VantageTag(r.Vantage))
	return k, ok
}

// VantageTag is the Key.Vantage of a vantage name: a 16-bit FNV-1a hash,
// never 0 for a name, 0 for none (which keeps the hashes and flow ids of
// captures without a vantage what they were).
func VantageTag(name string) uint16 {
	if name == "" {
		return 0
	}
	h := uint32(2166136261)
	for i := range len(name) {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return max(uint16(h^h>>16), 1)
}

// of sets k to the flow key of p, whose vantage's tag is vantage, in
// place (returning a Key by value costs the per-packet path a copy
// through the stack at every level), and returns its index hash; ok is
// false when p has no usable addresses.
func (k *Key) of(p *schemas.PacketMeta, vantage uint16) (hash uint64, ok bool) {
	if isICMPError(p) {
		q := &p.Quoted
		return k.set(q.Src, q.Dst, q.SrcPort, q.DstPort, q.Proto, vantage)
	}
	if p.Frag == schemas.FragLater {
		return k.set(p.Src, p.Dst, 0, 0, p.Proto, vantage)
	}
	return k.set(p.Src, p.Dst, p.SrcPort, p.DstPort, p.Proto, vantage)
}

// set is of for the given endpoints. It works on scalars and hashes them
// before k is stored, not from k: the compiler moves [2]uint64 values
// through the stack in halves, and reads adjacent fields back as one
// wider load, and a load that spans several recent stores waits for
// them to reach the cache, on every packet.
func (k *Key) set(src, dst netip.Addr, sp, dp uint16, proto uint8, vantage uint16) (uint64, bool) {
	if !src.IsValid() || !dst.IsValid() {
		*k = Key{Vantage: vantage}
		return indexHash(0, 0, 0, 0, 0, 0, 0, vantage), false
	}
	ah, al := ipwords.Of(src)
	bh, bl := ipwords.Of(dst)
	if c := compareWords(ah, al, bh, bl); c > 0 || (c == 0 && sp > dp) {
		ah, al, bh, bl, sp, dp = bh, bl, ah, al, dp, sp
	}
	k.LoAddr[0], k.LoAddr[1], k.HiAddr[0], k.HiAddr[1] = ah, al, bh, bl
	k.LoPort, k.HiPort, k.Proto, k.Vantage = sp, dp, proto, vantage
	return indexHash(ah, al, bh, bl, sp, dp, proto, vantage), true
}

// indexHash is the table's hash of a key, computed for every packet: two
// 128-bit multiplies (wyhash's folded multiply) where Hash, which flow
// ids are made of and which must never change, takes five. Its low bits
// pick the index slot.
func indexHash(lo0, lo1, hi0, hi1 uint64, loPort, hiPort uint16, proto uint8, vantage uint16) uint64 {
	rest := uint64(loPort) | uint64(hiPort)<<16 | uint64(proto)<<32 | uint64(vantage)<<40
	a := fold(lo1^0xa0761d6478bd642f, hi1^0xe7037ed1a0b428db)
	b := fold(lo0^hi0<<1^0x8ebc6af09c88c6e3, rest^0x589965cc75374cc3)
	return fold(a^0x1d8e4e27c47d124f, b)
}

// fold multiplies a and b and xors the halves of the product.
func fold(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// isAddr reports whether a's 16-byte form is w, two big-endian words.
func isAddr(a netip.Addr, w *[2]uint64) bool {
	h, l := ipwords.Of(a)
	return h == w[0] && l == w[1]
}

// compareWords orders two addresses, each given as its two big-endian
// words, as bytes.Compare orders their 16-byte forms.
func compareWords(ah, al, bh, bl uint64) int {
	if ah != bh {
		return cmp.Compare(ah, bh)
	}
	return cmp.Compare(al, bl)
}

// Hash is a 64-bit hash of the key. Both directions of a flow have the same
// key and therefore the same hash, so callers can shard flows across
// goroutines (hash % n) and transports can partition by it.
func (k *Key) Hash() uint64 {
	return hashKey(k.LoAddr[0], k.LoAddr[1], k.HiAddr[0], k.HiAddr[1], k.LoPort, k.HiPort, k.Proto, k.Vantage)
}

func hashKey(lo0, lo1, hi0, hi1 uint64, loPort, hiPort uint16, proto uint8, vantage uint16) uint64 {
	h := mix(le(lo0), 0x9e3779b97f4a7c15)
	h = mix(le(lo1), h)
	h = mix(le(hi0), h)
	h = mix(le(hi1), h)
	h = mix(uint64(loPort)|uint64(hiPort)<<16|uint64(proto)<<32|uint64(vantage)<<40, h)
	return fmix(h)
}

// AddrHash hashes only the address pair. Sharding by AddrHash keeps IP
// later-fragments (which have no ports) and every flow between two hosts in
// one shard, so the table can attribute fragments to their flow.
func (k *Key) AddrHash() uint64 {
	h := mix(le(k.LoAddr[0]), 0x9e3779b97f4a7c15)
	h = mix(le(k.LoAddr[1]), h)
	h = mix(le(k.HiAddr[0]), h)
	h = mix(le(k.HiAddr[1]), h)
	return fmix(h)
}

// le reads a big-endian word little-endian, as the hash has always read
// the address bytes: flow ids stay what they were.
func le(w uint64) uint64 { return bits.ReverseBytes64(w) }

func mix(v, h uint64) uint64 {
	hi, lo := bits.Mul64(v^h, 0xbf58476d1ce4e5b9)
	return hi ^ lo ^ h>>7
}

// fmix is MurmurHash3's 64-bit finaliser: every input bit affects every
// output bit, so hash%n spreads well for any n.
func fmix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// flowID renders a Zeek-style uid ("C" + base62 of 96 bits) from the
// canonical key and the start time, so one capture always yields the same
// identifiers.
func flowID(k *Key, startNs int64) string {
	h1 := mix(uint64(startNs), k.Hash())
	h1 = fmix(h1)
	h2 := fmix(mix(h1, uint64(startNs)^0x94d049bb133111eb))
	var buf [24]byte
	buf[0] = 'C'
	n := 1
	// 64 bits from h1, 32 from h2: Zeek uids carry 96 bits.
	for _, part := range [2]struct {
		v      uint64
		digits int
	}{{h1, 11}, {h2 & 0xffffffff, 6}} {
		v := part.v
		for i := 0; i < part.digits; i++ {
			buf[n] = base62[v%62]
			v /= 62
			n++
		}
	}
	return string(buf[:n])
}

// equal compares keys field by field: the generated == on Key calls
// memequal for its 38 bytes.
func (k *Key) equal(o *Key) bool {
	return k.LoAddr == o.LoAddr && k.HiAddr == o.HiAddr && k.LoPort == o.LoPort && k.HiPort == o.HiPort && k.Proto == o.Proto && k.Vantage == o.Vantage
}
