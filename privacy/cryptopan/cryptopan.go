package cryptopan

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"net/netip"
)

// KeySize is the length of a Crypto-PAn key: a 16-byte AES-128 key
// followed by a 16-byte pad.
const KeySize = 32

// cacheSlots is the size of the direct-mapped cache. A vantage has few
// local addresses; 256 slots keep collisions between them rare at 24 bytes
// a slot.
const cacheSlots = 256

type cacheSlot struct {
	in, out netip.Addr
}

// Anonymizer maps addresses with one key. It is not safe for concurrent
// use.
type Anonymizer struct {
	block cipher.Block
	pad   [16]byte // the encrypted pad
	// in and out are the AES buffers: passing stack arrays through the
	// cipher.Block interface would move them to the heap on every call.
	in, out [16]byte
	cache   [cacheSlots]cacheSlot
	stats   Stats
}

// Stats counts cache use.
type Stats struct {
	Hits, Misses uint64
}

// New returns an Anonymizer for key: key[:16] is the AES-128 key and
// key[16:] the pad, as in the reference implementation.
func New(key [KeySize]byte) *Anonymizer {
	block, err := aes.NewCipher(key[:16])
	if err != nil {
		// aes.NewCipher fails only on a key length other than 16, 24 or 32.
		panic("cryptopan: " + err.Error())
	}
	a := &Anonymizer{block: block}
	block.Encrypt(a.pad[:], key[16:])
	return a
}

// Clone returns an Anonymizer with the same key and an empty cache, for
// use by another goroutine.
func (a *Anonymizer) Clone() *Anonymizer {
	return &Anonymizer{block: a.block, pad: a.pad}
}

// Stats returns the cache counts so far.
func (a *Anonymizer) Stats() Stats { return a.stats }

// Anonymize returns the pseudonym of addr. IPv4 and IPv4-mapped IPv6
// addresses map within their own form over 32 bits, other IPv6 addresses
// over 128 bits; a zone is kept as is and an invalid address is returned
// unchanged.
func (a *Anonymizer) Anonymize(addr netip.Addr) netip.Addr {
	if !addr.IsValid() {
		return addr
	}
	s := &a.cache[slot(addr)]
	if s.in == addr { // an empty slot holds the invalid address: never a hit
		a.stats.Hits++
		return s.out
	}
	a.stats.Misses++
	var out netip.Addr
	switch {
	case addr.Is4():
		out = netip.AddrFrom4(a.v4(addr.As4()))
	case addr.Is4In6():
		v4 := a.v4(addr.Unmap().As4())
		out = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]})
	default:
		out = netip.AddrFrom16(a.v6(addr.As16())).WithZone(addr.Zone())
	}
	*s = cacheSlot{in: addr, out: out}
	return out
}

func slot(addr netip.Addr) int {
	b := addr.As16()
	h := binary.BigEndian.Uint64(b[:8]) ^ binary.BigEndian.Uint64(b[8:])
	h *= 0x9e3779b97f4a7c15
	return int(h >> (64 - 8))
}

// v4 is the reference implementation's anonymize over a 32-bit address.
func (a *Anonymizer) v4(b [4]byte) [4]byte {
	orig := binary.BigEndian.Uint32(b[:])
	padHead := binary.BigEndian.Uint32(a.pad[:4])
	copy(a.in[4:], a.pad[4:])
	var otp uint32
	for pos := range 32 {
		// The first pos bits come from the address, the rest from the pad.
		head := padHead
		if pos > 0 {
			mask := ^uint32(0) << (32 - pos)
			head = orig&mask | padHead&^mask
		}
		binary.BigEndian.PutUint32(a.in[:4], head)
		a.block.Encrypt(a.out[:], a.in[:])
		otp |= uint32(a.out[0]>>7) << (31 - pos)
	}
	var r [4]byte
	binary.BigEndian.PutUint32(r[:], orig^otp)
	return r
}

// v6 is the same construction over 128 bits.
func (a *Anonymizer) v6(b [16]byte) [16]byte {
	oh, ol := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	ph, pl := binary.BigEndian.Uint64(a.pad[:8]), binary.BigEndian.Uint64(a.pad[8:])
	var oth, otl uint64
	for pos := range 128 {
		mh, ml := prefixMask(pos)
		binary.BigEndian.PutUint64(a.in[:8], oh&mh|ph&^mh)
		binary.BigEndian.PutUint64(a.in[8:], ol&ml|pl&^ml)
		a.block.Encrypt(a.out[:], a.in[:])
		bit := uint64(a.out[0] >> 7)
		if pos < 64 {
			oth |= bit << (63 - pos)
		} else {
			otl |= bit << (127 - pos)
		}
	}
	var r [16]byte
	binary.BigEndian.PutUint64(r[:8], oh^oth)
	binary.BigEndian.PutUint64(r[8:], ol^otl)
	return r
}

// prefixMask returns the 128-bit mask of the first n bits as two halves.
func prefixMask(n int) (hi, lo uint64) {
	switch {
	case n == 0:
		return 0, 0
	case n < 64:
		return ^uint64(0) << (64 - n), 0
	case n == 64:
		return ^uint64(0), 0
	default:
		return ^uint64(0), ^uint64(0) << (128 - n)
	}
}
