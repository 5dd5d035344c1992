package quic

import "fmt"

// Well-known version numbers.
const (
	Version1           uint32 = 0x00000001
	Version2           uint32 = 0x6b3343cf
	versionNegotiation uint32 = 0
)

// Initial salts, RFC 9001 section 5.2, RFC 9369 section 3.3.1 and the drafts
// that introduced them (draft-ietf-quic-tls-23, -29, -33). Google's T050 and
// T051 salts are those their implementation and Wireshark use.
var (
	saltDraft23 = [20]byte{0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65, 0xbe, 0xf9, 0xf5, 0x02}
	saltDraft29 = [20]byte{0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99}
	saltV1      = [20]byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	saltV2      = [20]byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9}
	saltT050    = [20]byte{0x7f, 0xf5, 0x79, 0xe5, 0xac, 0xd0, 0x72, 0x91, 0x55, 0x80, 0x30, 0x4c, 0x43, 0xa2, 0x36, 0x7c, 0x60, 0x48, 0x83, 0x10}
	saltT051    = [20]byte{0x7a, 0x4e, 0xde, 0xf4, 0xe7, 0xcc, 0xee, 0x5f, 0xa4, 0x50, 0x6c, 0x19, 0x12, 0x4f, 0xc8, 0xcc, 0xda, 0x6e, 0x03, 0x3d}
)

// The label sets of RFC 9001 section 5.1 and RFC 9369 section 3.3.2.
var (
	labelsV1 = labels{key: "quic key", iv: "quic iv", hp: "quic hp"}
	labelsV2 = labels{key: "quicv2 key", iv: "quicv2 iv", hp: "quicv2 hp"}
)

type labels struct{ key, iv, hp string }

// Long-header packet types as the version's wire bits give them.
const (
	typeInitial = iota
	typeZeroRTT
	typeHandshake
	typeRetry
)

// version says how to open one version's Initial packets.
type version struct {
	// salts are tried in order until one authenticates; more than one
	// only for reserved versions, which define no salt of their own.
	salts  []*[20]byte
	labels *labels
	// v2 packet types are rotated by one (RFC 9369 section 3.2).
	v2 bool
	// gquicCrypto: Google's T05x carry the handshake in frame type 0x08.
	gquicCrypto bool
}

var (
	verDraft23  = version{salts: []*[20]byte{&saltDraft23}, labels: &labelsV1}
	verDraft29  = version{salts: []*[20]byte{&saltDraft29}, labels: &labelsV1}
	verV1       = version{salts: []*[20]byte{&saltV1}, labels: &labelsV1}
	verV2       = version{salts: []*[20]byte{&saltV2}, labels: &labelsV2, v2: true}
	verT050     = version{salts: []*[20]byte{&saltT050}, labels: &labelsV1, gquicCrypto: true}
	verT051     = version{salts: []*[20]byte{&saltT051}, labels: &labelsV1, gquicCrypto: true}
	verReserved = version{salts: []*[20]byte{&saltDraft29, &saltV1, &saltDraft23}, labels: &labelsV1}
)

// lookupVersion returns how to open v's Initials, or an error wrapping
// ErrUnsupportedVersion.
func lookupVersion(v uint32) (*version, error) {
	switch {
	case v == Version1:
		return &verV1, nil
	case v == Version2:
		return &verV2, nil
	case v>>8 == 0xff0000:
		switch d := v & 0xff; {
		case d >= 23 && d <= 28:
			return &verDraft23, nil
		case d >= 29 && d <= 32:
			return &verDraft29, nil
		case d == 33 || d == 34:
			return &verV1, nil
		}
	case v == 0xfaceb002 || v == 0xfaceb00e: // mvfst, draft 27 based
		return &verDraft23, nil
	case v == 0x54303530: // "T050"
		return &verT050, nil
	case v == 0x54303531: // "T051"
		return &verT051, nil
	case v&0x0f0f0f0f == 0x0a0a0a0a:
		return &verReserved, nil
	case isGoogleQUIC(v):
		return nil, fmt.Errorf("google QUIC %q: %w", versionTag(v), ErrUnsupportedVersion)
	}
	return nil, fmt.Errorf("version %#08x: %w", v, ErrUnsupportedVersion)
}

// isGoogleQUIC matches Google's ASCII version tags, "Q046" or "T048".
func isGoogleQUIC(v uint32) bool {
	c := byte(v >> 24)
	if c != 'Q' && c != 'T' {
		return false
	}
	for i := 16; i >= 0; i -= 8 {
		if d := byte(v >> i); d < '0' || d > '9' {
			return false
		}
	}
	return true
}

func versionTag(v uint32) string {
	return string([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// packetType maps the two type bits of a long header to the version-1
// numbering.
func (ver *version) packetType(firstByte byte) int {
	t := int(firstByte>>4) & 3
	if ver.v2 {
		// v2: Retry 0b00, Initial 0b01, 0-RTT 0b10, Handshake 0b11.
		return (t + 3) & 3
	}
	return t
}
