package quic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

var (
	testDCID = mustHex("0102030405060708")
	testSCID = mustHex("a1a2a3a4")
	// A ClientHello stand-in: the Assembler only reads the handshake header.
	testHello = append([]byte{1, 0, 0, 6}, "abcdef"...)
)

func sealInitial(t *testing.T, v uint32, keyDCID, dcid []byte, pn uint16, frames ...[]byte) []byte {
	t.Helper()
	ver, err := lookupVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	k, err := deriveKeys(ver.salts[0], ver.labels, Client, keyDCID)
	if err != nil {
		t.Fatal(err)
	}
	typeBits := byte(0)
	if ver.v2 {
		typeBits = 1
	}
	return seal(t, k, initialHeader(typeBits, v, dcid, testSCID, nil, pn), uint64(pn), bytes.Join(frames, nil))
}

// Every version family decrypts with its own salt and labels, and Google's
// T05x carry CRYPTO in frame type 0x08.
func TestDecodeVersions(t *testing.T) {
	tests := []struct {
		name      string
		v         uint32
		frameType byte
	}{
		{"v1", Version1, frameCrypto},
		{"v2", Version2, frameCrypto},
		{"draft-23", 0xff000017, frameCrypto},
		{"draft-28", 0xff00001c, frameCrypto},
		{"draft-29", 0xff00001d, frameCrypto},
		{"draft-32", 0xff000020, frameCrypto},
		{"draft-34", 0xff000022, frameCrypto},
		{"mvfst-27", 0xfaceb002, frameCrypto},
		{"T051", 0x54303531, frameGQUICCrypto},
		{"T050", 0x54303530, frameGQUICCrypto},
		{"reserved", 0x1a2a3a4a, frameCrypto},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := sealInitial(t, tt.v, testDCID, testDCID, 7, cryptoFrame(tt.frameType, 0, testHello))
			in, err := ParseInitial(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if in.Version != tt.v || in.PacketNumber != 7 || !bytes.Equal(in.SCID, testSCID) {
				t.Errorf("version %#x pn %d scid %x", in.Version, in.PacketNumber, in.SCID)
			}
			if len(in.Crypto) != 1 || !bytes.Equal(in.Crypto[0].Data, testHello) {
				t.Errorf("crypto %+v", in.Crypto)
			}
		})
	}
}

// A reserved version has no salt; every known one is tried.
func TestDecodeReservedVersionTriesSalts(t *testing.T) {
	k, err := deriveKeys(&saltV1, &labelsV1, Client, testDCID)
	if err != nil {
		t.Fatal(err)
	}
	pkt := seal(t, k, initialHeader(0, 0x0a0a0a0a, testDCID, nil, nil, 1), 1, cryptoFrame(frameCrypto, 0, testHello))
	if in, err := ParseInitial(pkt); err != nil || len(in.Crypto) != 1 {
		t.Fatalf("ParseInitial: %+v, %v", in, err)
	}
}

func TestDecodeFrames(t *testing.T) {
	ack := []byte{frameAck, 5, 0, 1, 0, 1, 1}                    // largest 5, 1 extra range
	ackECN := []byte{frameAckECN, 5, 0, 0, 0, 1, 2, 3}           // ECN counts 1 2 3
	closeQUIC := []byte{frameCloseQUIC, 0x0a, 0x06, 2, 'h', 'i'} // PROTOCOL_VIOLATION
	tests := []struct {
		name       string
		frames     [][]byte
		wantFrames int
		wantClosed bool
	}{
		{"ping ack padding crypto", [][]byte{{framePing}, ack, ackECN, {0, 0, 0}, cryptoFrame(frameCrypto, 0, testHello)}, 1, false},
		{"two crypto", [][]byte{cryptoFrame(frameCrypto, 5, testHello[5:]), cryptoFrame(frameCrypto, 0, testHello[:5])}, 2, false},
		{"close", [][]byte{closeQUIC}, 0, true},
		{"unknown frame stops", [][]byte{cryptoFrame(frameCrypto, 0, testHello), {0x07, 1, 2}, cryptoFrame(frameCrypto, 10, testHello)}, 1, false},
		{"0x08 is not CRYPTO in v1", [][]byte{cryptoFrame(frameGQUICCrypto, 0, testHello)}, 0, false},
		{"crypto length past payload", [][]byte{{frameCrypto, 0, 0x40, 0xff, 1, 2}}, 0, false},
		{"ack range count past payload", [][]byte{{frameAck, 1, 0, 0x3f, 0}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ParseInitial(sealInitial(t, Version1, testDCID, testDCID, 1, tt.frames...))
			if err != nil {
				t.Fatal(err)
			}
			if len(in.Crypto) != tt.wantFrames || in.Closed != tt.wantClosed {
				t.Errorf("frames %d closed %v, want %d %v", len(in.Crypto), in.Closed, tt.wantFrames, tt.wantClosed)
			}
			if tt.wantClosed && in.CloseCode != 0x0a {
				t.Errorf("close code %#x", in.CloseCode)
			}
		})
	}
}

// Coalesced packets: Handshake packets are skipped by length, further
// Initials with the same DCID are decrypted, Initials with another DCID
// are ignored, and trailing padding is not an error.
func TestDecodeCoalesced(t *testing.T) {
	first := sealInitial(t, Version1, testDCID, testDCID, 1, cryptoFrame(frameCrypto, 0, testHello[:4]))
	second := sealInitial(t, Version1, testDCID, testDCID, 2, cryptoFrame(frameCrypto, 4, testHello[4:]))
	otherDCID := sealInitial(t, Version1, testSCID, testSCID, 3, cryptoFrame(frameCrypto, 0, testHello))
	handshake := []byte{0xe0}
	handshake = binary.BigEndian.AppendUint32(handshake, Version1)
	handshake = append(handshake, 0, 0, 0x40, 20)
	handshake = append(handshake, make([]byte, 20)...)

	datagram := bytes.Join([][]byte{first, handshake, otherDCID, second, make([]byte, 30)}, nil)
	in, err := ParseInitial(datagram)
	if err != nil {
		t.Fatal(err)
	}
	if in.Packets != 2 || len(in.Crypto) != 2 || in.PacketNumber != 1 {
		t.Fatalf("packets %d frames %d pn %d, want 2 2 1", in.Packets, len(in.Crypto), in.PacketNumber)
	}
	var a Assembler
	if err := a.AddInitial(&in); err != nil {
		t.Fatal(err)
	}
	if hello, ok := a.ClientHello(); !ok || !bytes.Equal(hello, testHello) {
		t.Errorf("ClientHello %x, %v", hello, ok)
	}

	// A Handshake packet alone is QUIC but no Initial.
	if _, err := ParseInitial(handshake); !errors.Is(err, ErrNotInitial) {
		t.Errorf("Handshake only: %v, want ErrNotInitial", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := readHex(t, "rfc9001_client_initial.hex")
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-40] ^= 1
	vn := append([]byte{0x80, 0, 0, 0, 0, 0, 0}, 0, 0, 0, 1)
	retry := bytes.Clone(good[:60])
	retry[0] = 0xf0
	gquic := bytes.Clone(good)
	copy(gquic[1:5], "Q046")
	unknown := bytes.Clone(good)
	copy(unknown[1:5], []byte{0x12, 0x34, 0x56, 0x78})
	longCID := bytes.Clone(good)
	longCID[5] = 21
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrNotInitial},
		{"short header", []byte{0x40, 1, 2, 3, 4, 5, 6, 7, 8}, ErrNotQUIC},
		{"dns-like", []byte{0x12, 0x34, 0x01, 0x00}, ErrNotQUIC},
		{"too short", good[:6], ErrTruncated},
		{"cut in header", good[:20], ErrTruncated},
		{"cut in payload", good[:500], ErrTruncated},
		{"corrupt payload", corrupt, ErrDecrypt},
		{"version negotiation", vn, ErrNotInitial},
		{"retry", retry, ErrNotInitial},
		{"google QUIC", gquic, ErrUnsupportedVersion},
		{"unknown version", unknown, ErrUnsupportedVersion},
		{"connection ID too long", longCID, ErrNotQUIC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseInitial(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// Repeated Initials of one connection reuse the cached keys: decoding
// allocates nothing.
func TestDecodeCachedKeysAllocateNothing(t *testing.T) {
	pkt := readHex(t, "rfc9001_client_initial.hex")
	var d Decoder
	if _, err := d.Decode(pkt, Client, nil); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := d.Decode(pkt, Client, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per cached Decode, want 0", allocs)
	}
}

func BenchmarkParseInitial(b *testing.B) {
	pkt := readHex(b, "rfc9001_client_initial.hex")
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, err := ParseInitial(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeCachedKeys(b *testing.B) {
	pkt := readHex(b, "rfc9001_client_initial.hex")
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, err := d.Decode(pkt, Client, nil); err != nil {
			b.Fatal(err)
		}
	}
}
