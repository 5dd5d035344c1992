package quic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors; every error this package returns matches one of them
// with errors.Is.
var (
	// ErrNotQUIC: the datagram does not start with a QUIC long header, or
	// its header breaks the invariants (RFC 8999). Short-header packets
	// carry no version and cannot be told from other UDP payloads, so
	// they land here too.
	ErrNotQUIC = errors.New("not a QUIC long-header packet")
	// ErrNotInitial: QUIC, but no Initial packet in the datagram
	// (Handshake, 0-RTT, Retry, version negotiation).
	ErrNotInitial = errors.New("no QUIC Initial packet")
	// ErrUnsupportedVersion: an Initial of a version whose keys are unknown,
	// Google QUIC included.
	ErrUnsupportedVersion = errors.New("unsupported QUIC version")
	// ErrDecrypt: the packet failed AEAD authentication; a corrupt or forged
	// packet, or keys derived from the wrong connection ID.
	ErrDecrypt = errors.New("authenticate QUIC Initial packet")
	// ErrTruncated: a length field points past the end of the datagram.
	ErrTruncated = errors.New("truncated QUIC packet")
)

// CryptoFrame is one CRYPTO frame: Data sits at Offset in the sender's
// Initial-level handshake stream.
type CryptoFrame struct {
	Offset uint64
	Data   []byte
}

// Initial is what the Initial packets of one datagram say.
type Initial struct {
	Version uint32
	// DCID, SCID and Token are those of the first Initial packet.
	DCID, SCID, Token []byte
	// PacketNumber of the first Initial packet, as sent: the truncated
	// number, which equals the full one for the small numbers Initials
	// use.
	PacketNumber uint64
	// Packets counts the Initial packets decrypted from the datagram.
	Packets int
	// Crypto lists the CRYPTO frames in the order they appear.
	Crypto []CryptoFrame
	// Closed reports a CONNECTION_CLOSE frame, with its error code.
	Closed    bool
	CloseCode uint64
}

// maxCIDLen is the longest connection ID QUIC v1 allows (RFC 9000 17.2).
const maxCIDLen = 20

// Decoder decodes Initial packets, reusing its buffers and the keys of the
// last connection per side: repeated Initials of one connection cost no
// key derivation and no allocation. The slices of an Initial it returns
// point into the datagram and into the Decoder, and stay valid until the
// next call to Decode. A Decoder is not safe for concurrent use; its zero
// value is ready.
type Decoder struct {
	buf    []byte
	frames []CryptoFrame
	cache  [2]cachedKeys
	mask   [16]byte
	nonce  [12]byte
}

type cachedKeys struct {
	version uint32
	salt    *[20]byte
	dcid    [maxCIDLen]byte
	dcidLen int
	keys    *Keys
}

// ParseInitial decodes the client Initial packets of one UDP datagram,
// with keys derived from the datagram's own Destination Connection ID.
func ParseInitial(datagram []byte) (Initial, error) {
	var d Decoder
	return d.Decode(datagram, Client, nil)
}

// Decode reads the Initial packets of one datagram sent by side. keyDCID is
// the Destination Connection ID the client put in its first Initial (or the
// one a Retry told it to use), from which both sides' keys derive; nil means
// the datagram's own DCID, which is right for client Initials. Coalesced
// Handshake and 0-RTT packets are skipped, and so are Initials with another
// DCID than the first (RFC 9000 section 12.2). Bytes after the last packet
// that cannot be read are ignored once an Initial was decoded: padding
// after an Initial need not be a packet.
func (d *Decoder) Decode(datagram []byte, side Side, keyDCID []byte) (Initial, error) {
	var in Initial
	d.frames = d.frames[:0]
	if cap(d.buf) < len(datagram) {
		d.buf = make([]byte, len(datagram))
	}
	d.buf = d.buf[:len(datagram)]
	rest := datagram
	used := 0 // d.buf bytes already holding plaintext
	var firstErr error
	for len(rest) > 0 {
		n, err := d.packet(rest, d.buf[used:used+len(rest)], side, keyDCID, &in)
		if err != nil {
			if in.Packets == 0 && firstErr == nil {
				firstErr = err
			}
			if n == 0 {
				break
			}
		}
		rest = rest[n:]
		used += n
	}
	if in.Packets == 0 {
		if firstErr == nil {
			firstErr = ErrNotInitial
		}
		return Initial{}, firstErr
	}
	in.Crypto = d.frames
	return in, nil
}

// packet reads the packet at the start of p, decrypting it into scratch if
// it is an Initial. It returns the packet's length, 0 when the rest of the
// datagram cannot be walked.
func (d *Decoder) packet(p, scratch []byte, side Side, keyDCID []byte, in *Initial) (int, error) {
	if p[0]&0x80 == 0 {
		return 0, ErrNotQUIC
	}
	if len(p) < 7 {
		return 0, ErrTruncated
	}
	v := binary.BigEndian.Uint32(p[1:5])
	if v == versionNegotiation {
		return 0, fmt.Errorf("version negotiation packet: %w", ErrNotInitial)
	}
	ver, err := lookupVersion(v)
	if err != nil {
		return 0, err
	}
	off := 5
	dcidLen := int(p[off])
	if dcidLen > maxCIDLen {
		return 0, ErrNotQUIC
	}
	off++
	if off+dcidLen+1 > len(p) {
		return 0, ErrTruncated
	}
	dcid := p[off : off+dcidLen]
	off += dcidLen
	scidLen := int(p[off])
	if scidLen > maxCIDLen {
		return 0, ErrNotQUIC
	}
	off++
	if off+scidLen > len(p) {
		return 0, ErrTruncated
	}
	scid := p[off : off+scidLen]
	off += scidLen

	typ := ver.packetType(p[0])
	if typ == typeRetry {
		return 0, fmt.Errorf("retry packet: %w", ErrNotInitial)
	}
	var token []byte
	if typ == typeInitial {
		tokLen, n := readVarint(p[off:])
		if n == 0 || tokLen > uint64(len(p)-off-n) {
			return 0, ErrTruncated
		}
		off += n
		token = p[off : off+int(tokLen)]
		off += int(tokLen)
	}
	length, n := readVarint(p[off:])
	if n == 0 || length > uint64(len(p)-off-n) {
		return 0, ErrTruncated
	}
	pnOffset := off + n
	end := pnOffset + int(length)
	if typ != typeInitial {
		return end, fmt.Errorf("packet type %d: %w", typ, ErrNotInitial)
	}
	if in.Packets > 0 && (in.Version != v || !bytes.Equal(in.DCID, dcid)) {
		return end, nil
	}
	if keyDCID == nil {
		keyDCID = dcid
	}
	if len(keyDCID) > maxCIDLen {
		return 0, fmt.Errorf("key connection ID of %d bytes: %w", len(keyDCID), ErrNotQUIC)
	}
	if end < pnOffset+4+16 {
		return 0, ErrTruncated
	}
	var pn uint64
	var plain []byte
	err = ErrDecrypt
	for _, salt := range ver.salts {
		keys, kerr := d.keys(v, ver, salt, side, keyDCID)
		if kerr != nil {
			return 0, kerr
		}
		pn, plain, err = d.open(p[:end], scratch[:end], pnOffset, keys)
		if err == nil {
			break
		}
	}
	if err != nil {
		return end, err
	}
	if in.Packets == 0 {
		in.Version = v
		in.DCID, in.SCID, in.Token = dcid, scid, token
		in.PacketNumber = pn
	}
	in.Packets++
	d.frames = parseFrames(plain, ver.gquicCrypto, d.frames, in)
	return end, nil
}

// keys returns the keys for one (version, salt, side, dcid), from the
// Decoder's cache when the previous packet of that side had the same.
func (d *Decoder) keys(v uint32, ver *version, salt *[20]byte, side Side, dcid []byte) (*Keys, error) {
	c := &d.cache[side&1]
	if c.keys != nil && c.version == v && c.salt == salt && bytes.Equal(c.dcid[:c.dcidLen], dcid) {
		return c.keys, nil
	}
	k, err := deriveKeys(salt, ver.labels, side, dcid)
	if err != nil {
		return nil, err
	}
	*c = cachedKeys{version: v, salt: salt, keys: k}
	c.dcidLen = copy(c.dcid[:], dcid)
	return k, nil
}

// open removes header protection from a copy of pkt in scratch and
// decrypts the payload in place (RFC 9001 sections 5.3 and 5.4). It
// returns the packet number and the plaintext, a slice of scratch.
func (d *Decoder) open(pkt, scratch []byte, pnOffset int, k *Keys) (uint64, []byte, error) {
	copy(scratch, pkt)
	sample := scratch[pnOffset+4 : pnOffset+4+16]
	k.hp.Encrypt(d.mask[:], sample)
	first := scratch[0] ^ d.mask[0]&0x0f
	pnLen := int(first&0x03) + 1
	scratch[0] = first
	var pn uint64
	for i := 0; i < pnLen; i++ {
		b := scratch[pnOffset+i] ^ d.mask[1+i]
		scratch[pnOffset+i] = b
		pn = pn<<8 | uint64(b)
	}
	hdrLen := pnOffset + pnLen
	if len(scratch)-hdrLen < k.aead.Overhead() {
		return 0, nil, ErrTruncated
	}
	copy(d.nonce[:], k.IV)
	for i := 0; i < 8; i++ {
		d.nonce[len(d.nonce)-1-i] ^= byte(pn >> (8 * i))
	}
	plain, err := k.aead.Open(scratch[hdrLen:hdrLen], d.nonce[:], scratch[hdrLen:], scratch[:hdrLen])
	if err != nil {
		return 0, nil, fmt.Errorf("packet number %d: %w", pn, ErrDecrypt)
	}
	return pn, plain, nil
}

// Frame types that may appear in Initial packets (RFC 9000 section 12.4).
const (
	framePadding     = 0x00
	framePing        = 0x01
	frameAck         = 0x02
	frameAckECN      = 0x03
	frameCrypto      = 0x06
	frameGQUICCrypto = 0x08
	frameCloseQUIC   = 0x1c
	frameCloseApp    = 0x1d
)

// parseFrames appends the CRYPTO frames of one decrypted payload to frames.
// It stops at the first frame it cannot read: an unknown type has no
// length, so nothing after it can be found.
func parseFrames(b []byte, gquicCrypto bool, frames []CryptoFrame, in *Initial) []CryptoFrame {
	for len(b) > 0 {
		t := b[0]
		b = b[1:]
		switch {
		case t == framePadding:
			i := 0
			for i < len(b) && b[i] == 0 {
				i++
			}
			b = b[i:]
		case t == framePing:
		case t == frameAck || t == frameAckECN:
			var ok bool
			if b, ok = skipAck(b, t == frameAckECN); !ok {
				return frames
			}
		case t == frameCrypto || t == frameGQUICCrypto && gquicCrypto:
			off, n := readVarint(b)
			if n == 0 {
				return frames
			}
			b = b[n:]
			length, n := readVarint(b)
			if n == 0 || length > uint64(len(b)-n) || off+length > maxVarint {
				return frames
			}
			b = b[n:]
			frames = append(frames, CryptoFrame{Offset: off, Data: b[:length]})
			b = b[length:]
		case t == frameCloseQUIC || t == frameCloseApp:
			code, n := readVarint(b)
			if n == 0 {
				return frames
			}
			b = b[n:]
			if t == frameCloseQUIC {
				if _, n = readVarint(b); n == 0 {
					return frames
				}
				b = b[n:]
			}
			reason, n := readVarint(b)
			if n == 0 || reason > uint64(len(b)-n) {
				return frames
			}
			b = b[n+int(reason):]
			in.Closed, in.CloseCode = true, code
		default:
			return frames
		}
	}
	return frames
}

// skipAck steps over the body of an ACK frame (RFC 9000 section 19.3).
func skipAck(b []byte, ecn bool) ([]byte, bool) {
	var fields [4]uint64
	for i := range fields {
		v, n := readVarint(b)
		if n == 0 {
			return nil, false
		}
		fields[i] = v
		b = b[n:]
	}
	// Each range takes at least two bytes, so a count larger than the rest
	// of the payload fails below without a long loop.
	ranges := fields[2]
	if ranges > uint64(len(b)) {
		return nil, false
	}
	extra := 2 * int(ranges)
	if ecn {
		extra += 3
	}
	for i := 0; i < extra; i++ {
		_, n := readVarint(b)
		if n == 0 {
			return nil, false
		}
		b = b[n:]
	}
	return b, true
}

const maxVarint = 1<<62 - 1

// readVarint reads a QUIC variable-length integer (RFC 9000 section 16);
// n is 0 when b is too short.
func readVarint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v, n
}
