package quicsni

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors for packets that carry no readable server name.
var (
	ErrNotInitial = errors.New("not a QUIC v1 Initial packet")
	ErrTruncated  = errors.New("truncated")
	ErrNoSNI      = errors.New("no server_name in ClientHello")
)

var initialSaltV1 = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}

// ServerName decrypts the first packet of a UDP datagram, which must be a
// client Initial, and returns the ClientHello's server_name. A ClientHello
// spread over several Initials needs an Assembler.
func ServerName(datagram []byte) (string, error) {
	var a Assembler
	return a.Add("", datagram)
}

// Assembler gathers the crypto stream of a client's Initials per UDP flow,
// for clients whose ClientHello spans several packets or whose CRYPTO
// frames come out of order. Initial keys come from the client's first
// destination connection ID; once the server has answered, the client
// addresses the server's chosen ID but keeps those keys, so the Assembler
// remembers the first ID of each flow. The zero value is ready to use.
type Assembler struct {
	flows map[string]*flowState
}

type flowState struct {
	dcid   []byte
	chunks []chunk
}

type chunk struct {
	off  uint64
	data []byte
}

// maxChunks and maxFlows bound the state kept for unfinished ClientHellos.
const (
	maxChunks = 64
	maxFlows  = 1024
)

// Add decrypts one datagram's Initial, sent on the UDP flow the caller
// names by flow (the 4-tuple, say), and returns the server name once the
// ClientHello up to server_name has arrived; until then it returns an
// error wrapping ErrTruncated.
func (a *Assembler) Add(flow string, datagram []byte) (string, error) {
	if a.flows == nil || len(a.flows) >= maxFlows {
		a.flows = map[string]*flowState{}
	}
	st := a.flows[flow]
	var keyID []byte
	if st != nil {
		keyID = st.dcid
	}
	dcid, payload, err := openInitial(datagram, keyID)
	if err != nil && keyID != nil {
		// Perhaps a new connection attempt on the same flow.
		dcid, payload, err = openInitial(datagram, nil)
		st = nil
	}
	if err != nil {
		return "", err
	}
	chunks, err := cryptoFrames(payload)
	if err != nil {
		return "", err
	}
	if st == nil {
		st = &flowState{dcid: append([]byte(nil), dcid...)}
	}
	st.chunks = append(st.chunks, chunks...)
	if len(st.chunks) > maxChunks {
		delete(a.flows, flow)
		return "", fmt.Errorf("assemble crypto stream: more than %d CRYPTO frames", maxChunks)
	}
	name, err := helloSNI(contiguous(st.chunks))
	if errors.Is(err, ErrTruncated) {
		a.flows[flow] = st
		return "", err
	}
	delete(a.flows, flow)
	return name, err
}

func expandLabel(secret []byte, label string, n int) ([]byte, error) {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0)
	return hkdf.Expand(sha256.New, secret, string(info), n)
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, ErrTruncated
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v, nil
}

func (r *reader) u8() (int, error) {
	b, err := r.bytes(1)
	if err != nil {
		return 0, err
	}
	return int(b[0]), nil
}

func (r *reader) u16() (int, error) {
	b, err := r.bytes(2)
	if err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(b)), nil
}

func (r *reader) u24() (int, error) {
	b, err := r.bytes(3)
	if err != nil {
		return 0, err
	}
	return int(b[0])<<16 | int(b[1])<<8 | int(b[2]), nil
}

// varint reads a QUIC variable-length integer (RFC 9000, section 16).
func (r *reader) varint() (uint64, error) {
	first, err := r.u8()
	if err != nil {
		return 0, err
	}
	n := 1 << (first >> 6)
	v := uint64(first & 0x3f)
	rest, err := r.bytes(n - 1)
	if err != nil {
		return 0, err
	}
	for _, c := range rest {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// openInitial removes the protection of a client Initial with keys derived
// from keyID, or from the packet's own destination connection ID when
// keyID is nil.
func openInitial(pkt []byte, keyID []byte) (dcid, plain []byte, err error) {
	r := &reader{b: pkt}
	first, err := r.u8()
	if err != nil {
		return nil, nil, err
	}
	if first&0xc0 != 0xc0 || (first>>4)&3 != 0 {
		return nil, nil, ErrNotInitial
	}
	ver, err := r.bytes(4)
	if err != nil {
		return nil, nil, err
	}
	if binary.BigEndian.Uint32(ver) != 1 {
		return nil, nil, ErrNotInitial
	}
	dcidLen, err := r.u8()
	if err != nil {
		return nil, nil, err
	}
	if dcidLen > 20 {
		return nil, nil, fmt.Errorf("open initial: dcid length %d: %w", dcidLen, ErrNotInitial)
	}
	dcid, err = r.bytes(dcidLen)
	if err != nil {
		return nil, nil, err
	}
	scidLen, err := r.u8()
	if err != nil {
		return nil, nil, err
	}
	if _, err := r.bytes(scidLen); err != nil {
		return nil, nil, err
	}
	tokLen, err := r.varint()
	if err != nil {
		return nil, nil, err
	}
	if tokLen > uint64(len(pkt)) {
		return nil, nil, ErrTruncated
	}
	if _, err := r.bytes(int(tokLen)); err != nil {
		return nil, nil, err
	}
	length, err := r.varint()
	if err != nil {
		return nil, nil, err
	}
	pnOff := r.off
	if length > uint64(len(pkt)-pnOff) || length < 20 {
		return nil, nil, ErrTruncated
	}
	end := pnOff + int(length)

	if keyID == nil {
		keyID = dcid
	}
	initial, err := hkdf.Extract(sha256.New, keyID, initialSaltV1)
	if err != nil {
		return nil, nil, fmt.Errorf("derive initial secret: %w", err)
	}
	secret, err := expandLabel(initial, "client in", 32)
	if err != nil {
		return nil, nil, fmt.Errorf("derive client secret: %w", err)
	}
	key, err := expandLabel(secret, "quic key", 16)
	if err != nil {
		return nil, nil, err
	}
	iv, err := expandLabel(secret, "quic iv", 12)
	if err != nil {
		return nil, nil, err
	}
	hp, err := expandLabel(secret, "quic hp", 16)
	if err != nil {
		return nil, nil, err
	}

	hpBlock, err := aes.NewCipher(hp)
	if err != nil {
		return nil, nil, fmt.Errorf("set up header protection: %w", err)
	}
	var mask [16]byte
	hpBlock.Encrypt(mask[:], pkt[pnOff+4:pnOff+20])
	// Work on a copy: the caller's buffer may be a reused capture buffer.
	hdr := make([]byte, pnOff+4)
	copy(hdr, pkt[:pnOff+4])
	hdr[0] ^= mask[0] & 0x0f
	pnLen := int(hdr[0]&0x03) + 1
	var pn uint64
	for i := 0; i < pnLen; i++ {
		hdr[pnOff+i] ^= mask[1+i]
		pn = pn<<8 | uint64(hdr[pnOff+i])
	}
	hdr = hdr[:pnOff+pnLen]

	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, fmt.Errorf("set up packet protection: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, fmt.Errorf("set up packet protection: %w", err)
	}
	nonce := make([]byte, 12)
	copy(nonce, iv)
	for i := 0; i < 8; i++ {
		nonce[11-i] ^= byte(pn >> (8 * i))
	}
	plain, err = aead.Open(nil, nonce, pkt[pnOff+pnLen:end], hdr)
	if err != nil {
		return nil, nil, fmt.Errorf("open initial: %w", err)
	}
	return dcid, plain, nil
}

// cryptoFrames returns the CRYPTO frames of one Initial payload.
func cryptoFrames(payload []byte) ([]chunk, error) {
	var chunks []chunk
	r := &reader{b: payload}
	for r.off < len(r.b) {
		typ, err := r.varint()
		if err != nil {
			return nil, err
		}
		switch typ {
		case 0x00, 0x01: // PADDING, PING
		case 0x02, 0x03: // ACK
			if err := skipACK(r, typ == 0x03); err != nil {
				return nil, err
			}
		case 0x06:
			off, err := r.varint()
			if err != nil {
				return nil, err
			}
			n, err := r.varint()
			if err != nil {
				return nil, err
			}
			if n > uint64(len(payload)) || off > 1<<16 {
				return nil, fmt.Errorf("read CRYPTO frame: offset %d length %d: %w", off, n, ErrNotInitial)
			}
			data, err := r.bytes(int(n))
			if err != nil {
				return nil, err
			}
			chunks = append(chunks, chunk{off, data})
		case 0x1c: // CONNECTION_CLOSE
			return nil, ErrNoSNI
		default:
			return nil, fmt.Errorf("read initial frames: unexpected frame type %#x", typ)
		}
	}
	return chunks, nil
}

// contiguous returns the start of the crypto stream that chunks cover
// without a gap.
func contiguous(chunks []chunk) []byte {
	var stream []byte
	for progress := true; progress; {
		progress = false
		for _, c := range chunks {
			end := c.off + uint64(len(c.data))
			if c.off <= uint64(len(stream)) && end > uint64(len(stream)) {
				stream = append(stream, c.data[uint64(len(stream))-c.off:]...)
				progress = true
			}
		}
	}
	return stream
}

func skipACK(r *reader, ecn bool) error {
	n := 4 // largest, delay, range count, first range
	vals := make([]uint64, 0, 4)
	for i := 0; i < n; i++ {
		v, err := r.varint()
		if err != nil {
			return err
		}
		vals = append(vals, v)
	}
	if vals[2] > uint64(len(r.b)) {
		return ErrTruncated
	}
	extra := int(vals[2]) * 2
	if ecn {
		extra += 3
	}
	for i := 0; i < extra; i++ {
		if _, err := r.varint(); err != nil {
			return err
		}
	}
	return nil
}

// helloSNI reads server_name from a TLS handshake message that may be cut
// short after the extension.
func helloSNI(b []byte) (string, error) {
	r := &reader{b: b}
	typ, err := r.u8()
	if err != nil {
		return "", err
	}
	if typ != 1 {
		return "", fmt.Errorf("read client hello: handshake type %d: %w", typ, ErrNoSNI)
	}
	if _, err := r.u24(); err != nil {
		return "", err
	}
	if _, err := r.bytes(2 + 32); err != nil {
		return "", err
	}
	for _, lenBytes := range []int{1, 2, 1} { // session id, cipher suites, compression
		var n int
		if lenBytes == 1 {
			n, err = r.u8()
		} else {
			n, err = r.u16()
		}
		if err != nil {
			return "", err
		}
		if _, err := r.bytes(n); err != nil {
			return "", err
		}
	}
	extLen, err := r.u16()
	if err != nil {
		return "", err
	}
	for end := r.off + extLen; r.off < end; {
		et, err := r.u16()
		if err != nil {
			return "", err
		}
		el, err := r.u16()
		if err != nil {
			return "", err
		}
		body, err := r.bytes(el)
		if err != nil {
			return "", err
		}
		if et != 0 {
			continue
		}
		er := &reader{b: body}
		if _, err := er.u16(); err != nil {
			return "", ErrNoSNI
		}
		for er.off < len(body) {
			nt, err := er.u8()
			if err != nil {
				return "", ErrNoSNI
			}
			nl, err := er.u16()
			if err != nil {
				return "", ErrNoSNI
			}
			name, err := er.bytes(nl)
			if err != nil {
				return "", ErrNoSNI
			}
			if nt == 0 {
				return string(name), nil
			}
		}
		return "", ErrNoSNI
	}
	return "", ErrNoSNI
}
