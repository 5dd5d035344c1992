package tlshello

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"slices"
	"sync/atomic"
)

// ja4 computes the JA4 fingerprint of h; alpnExt is the raw ALPN extension
// body (nil without one), needed because the ALPN part looks at bytes, not
// at the decoded strings.
func ja4(h *ClientHello, alpnExt []byte) string {
	// Sized for real hellos so that sorting and hashing stay on the
	// stack; larger lists still work, they just grow.
	var scratch [256]uint16

	out := make([]byte, 0, 36)
	if h.QUIC {
		out = append(out, 'q')
	} else {
		out = append(out, 't')
	}
	out = append(out, ja4Version(h.Version())...)
	if h.HasSNI {
		out = append(out, 'd')
	} else {
		out = append(out, 'i')
	}

	ciphers := appendNonGREASE(scratch[:0], h.CipherSuites)
	nExt := 0
	for _, e := range h.Extensions {
		if !isGREASE(e) {
			nExt++
		}
	}
	out = appendCount(out, len(ciphers))
	out = appendCount(out, nExt)
	out = appendALPN(out, alpnExt)

	slices.Sort(ciphers)
	var exts []uint16
	if len(ciphers) < len(scratch) {
		exts = scratch[len(ciphers):len(ciphers)]
	}
	for _, e := range h.Extensions {
		if !isGREASE(e) && e != extServerName && e != extALPN {
			exts = append(exts, e)
		}
	}
	slices.Sort(exts)
	sigs := appendNonGREASE(exts[len(exts):len(exts)], h.SignatureAlgorithms)

	// The hashed parts are the same for every hello of one client build,
	// whatever its SNI, random and key shares, and Chrome's shuffled
	// extension order is sorted away: recent fingerprints are looked up
	// before the hex and SHA-256 work.
	var keyBuf [512]byte
	key := appendKey(appendKey(appendKey(append(keyBuf[:0], out...), ciphers), exts), sigs)
	slot := &ja4Memo[maphash.Bytes(ja4Seed, key)%uint64(len(ja4Memo))]
	if e := slot.Load(); e != nil && e.key == string(key) {
		return e.ja4
	}
	fp := ja4Hashes(out, ciphers, exts, sigs)
	slot.Store(&ja4Entry{key: string(key), ja4: fp})
	return fp
}

// ja4Hashes completes the fingerprint begun in out with the hashes of the
// sorted ciphers and of the sorted extensions and signature algorithms.
func ja4Hashes(out []byte, ciphers, exts, sigs []uint16) string {
	var text [1024]byte
	out = append(out, '_')
	out = appendHash(out, appendHexList(text[:0], ciphers), len(ciphers) == 0)
	out = append(out, '_')
	s := appendHexList(text[:0], exts)
	if len(sigs) > 0 {
		s = append(s, '_')
		s = appendHexList(s, sigs)
	}
	out = appendHash(out, s, len(exts) == 0)
	return string(out)
}

// ja4Memo holds recent fingerprints by their inputs: the fingerprint's
// first part and the sorted lists it hashes. A slot holds one entry, a
// later fingerprint of the same slot replaces it, and entries are never
// changed, so the parsers of several goroutines share it without locks.
var ja4Memo [1024]atomic.Pointer[ja4Entry]

var ja4Seed = maphash.MakeSeed()

type ja4Entry struct{ key, ja4 string }

// appendKey writes vs as a length and big-endian values.
func appendKey(dst []byte, vs []uint16) []byte {
	dst = append(dst, byte(len(vs)>>8), byte(len(vs)))
	for _, v := range vs {
		dst = append(dst, byte(v>>8), byte(v))
	}
	return dst
}

func ja4Version(v uint16) string {
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

func appendNonGREASE(dst, src []uint16) []uint16 {
	for _, v := range src {
		if !isGREASE(v) {
			dst = append(dst, v)
		}
	}
	return dst
}

// appendCount writes n as two digits, capped at 99 as the spec says.
func appendCount(dst []byte, n int) []byte {
	n = min(n, 99)
	return append(dst, byte('0'+n/10), byte('0'+n%10))
}

// appendALPN writes the first and last character of the first ALPN
// protocol, or the first and last hex digit of it when either end byte is
// not an ASCII letter or digit, or "00" when there is none.
func appendALPN(dst, ext []byte) []byte {
	var first []byte
	if len(ext) >= 3 {
		n := int(ext[2])
		if 3+n <= len(ext) {
			first = ext[3 : 3+n]
		}
	}
	if len(first) == 0 {
		return append(dst, '0', '0')
	}
	a, z := first[0], first[len(first)-1]
	if isAlnum(a) && isAlnum(z) {
		return append(dst, a, z)
	}
	const digits = "0123456789abcdef"
	return append(dst, digits[a>>4], digits[z&0x0f])
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

func appendHexList(dst []byte, vs []uint16) []byte {
	const digits = "0123456789abcdef"
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, digits[v>>12], digits[v>>8&0xf], digits[v>>4&0xf], digits[v&0xf])
	}
	return dst
}

// appendHash writes the first 12 hex digits of SHA-256(s), or twelve
// zeros when the list is empty (the spec's marker for "no values").
func appendHash(dst, s []byte, empty bool) []byte {
	if empty {
		return append(dst, "000000000000"...)
	}
	sum := sha256.Sum256(s)
	return hex.AppendEncode(dst, sum[:6])
}
