package quic

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readHex reads a testdata file of hex digits, whitespace ignored.
func readHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return b
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

var errNoSNI = errors.New("no server_name extension")

// sniOf returns the host_name of a ClientHello handshake message (header
// included); errNoSNI when it has no server_name extension.
func sniOf(msg []byte) (string, error) {
	bad := errors.New("malformed ClientHello")
	if len(msg) < 4 || msg[0] != 1 {
		return "", bad
	}
	b := msg[4:]
	skip := func(n int) bool {
		if n > len(b) {
			return false
		}
		b = b[n:]
		return true
	}
	vec := func(lenBytes int) ([]byte, bool) {
		if len(b) < lenBytes {
			return nil, false
		}
		n := 0
		for i := 0; i < lenBytes; i++ {
			n = n<<8 | int(b[i])
		}
		b = b[lenBytes:]
		if n > len(b) {
			return nil, false
		}
		v := b[:n]
		b = b[n:]
		return v, true
	}
	if !skip(2 + 32) {
		return "", bad
	}
	for _, l := range []int{1, 2, 1} { // session id, cipher suites, compression
		if _, ok := vec(l); !ok {
			return "", bad
		}
	}
	exts, ok := vec(2)
	if !ok {
		return "", bad
	}
	for len(exts) >= 4 {
		typ := binary.BigEndian.Uint16(exts)
		n := int(binary.BigEndian.Uint16(exts[2:]))
		if 4+n > len(exts) {
			return "", bad
		}
		body := exts[4 : 4+n]
		exts = exts[4+n:]
		if typ != 0 {
			continue
		}
		if len(body) < 2+3 || body[2] != 0 {
			return "", bad
		}
		l := int(binary.BigEndian.Uint16(body[3:]))
		if 5+l > len(body) {
			return "", bad
		}
		return string(body[5 : 5+l]), nil
	}
	return "", errNoSNI
}

// seal builds a protected long-header packet: hdr is the unprotected
// header up to and including the packet number, whose length the low bits
// of hdr[0] give; payload is padded so the header protection sample exists.
func seal(t testing.TB, k *Keys, hdr []byte, pn uint64, payload []byte) []byte {
	t.Helper()
	pnLen := int(hdr[0]&3) + 1
	for len(payload)+pnLen < 4+16-k.aead.Overhead() {
		payload = append(payload, 0)
	}
	// Patch the Length field: the two bytes before the packet number,
	// written as a 2-byte varint.
	length := pnLen + len(payload) + k.aead.Overhead()
	lenOff := len(hdr) - pnLen - 2
	binary.BigEndian.PutUint16(hdr[lenOff:], uint16(length)|0x4000)
	nonce := bytes.Clone(k.IV)
	for i := 0; i < 8; i++ {
		nonce[len(nonce)-1-i] ^= byte(pn >> (8 * i))
	}
	pkt := k.aead.Seal(bytes.Clone(hdr), nonce, payload, hdr)
	pnOff := len(hdr) - pnLen
	var mask [16]byte
	k.hp.Encrypt(mask[:], pkt[pnOff+4:pnOff+20])
	pkt[0] ^= mask[0] & 0x0f
	for i := 0; i < pnLen; i++ {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt
}

// initialHeader is an unprotected Initial header with a 2-byte packet
// number and a placeholder 2-byte Length that seal fills in.
func initialHeader(typeBits byte, v uint32, dcid, scid, token []byte, pn uint16) []byte {
	h := []byte{0xc0 | typeBits<<4 | 0x01}
	h = binary.BigEndian.AppendUint32(h, v)
	h = append(h, byte(len(dcid)))
	h = append(h, dcid...)
	h = append(h, byte(len(scid)))
	h = append(h, scid...)
	if typeBits == 0 || v == Version2 && typeBits == 1 {
		h = append(h, byte(len(token))) // tests keep tokens under 64 bytes
		h = append(h, token...)
	}
	h = append(h, 0x40, 0)
	return binary.BigEndian.AppendUint16(h, pn)
}

// cryptoFrame encodes a CRYPTO frame with 2-byte varints (values < 16384).
func cryptoFrame(typ byte, off int, data []byte) []byte {
	f := []byte{typ}
	f = binary.BigEndian.AppendUint16(f, uint16(off)|0x4000)
	f = binary.BigEndian.AppendUint16(f, uint16(len(data))|0x4000)
	return append(f, data...)
}
