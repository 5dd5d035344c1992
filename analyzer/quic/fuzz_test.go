package quic

import (
	"errors"
	"testing"
)

// FuzzParseInitial: any datagram yields an Initial or one of the sentinel
// errors, never a panic; CRYPTO frames stay inside the datagram's size and
// feed the Assembler without breaking its limit.
func FuzzParseInitial(f *testing.F) {
	f.Add(readHex(f, "rfc9001_client_initial.hex"))
	f.Add(readHex(f, "rfc9369_client_initial.hex"))
	sentinels := []error{ErrNotQUIC, ErrNotInitial, ErrUnsupportedVersion, ErrDecrypt, ErrTruncated}
	var d Decoder
	f.Fuzz(func(t *testing.T, datagram []byte) {
		for _, side := range []Side{Client, Server} {
			in, err := d.Decode(datagram, side, nil)
			if err != nil {
				known := false
				for _, s := range sentinels {
					known = known || errors.Is(err, s)
				}
				if !known {
					t.Fatalf("error %v matches no sentinel", err)
				}
				continue
			}
			total := 0
			for _, c := range in.Crypto {
				total += len(c.Data)
			}
			if total > len(datagram) || in.Packets == 0 {
				t.Fatalf("%d CRYPTO bytes from %d packets of a %d-byte datagram", total, in.Packets, len(datagram))
			}
			var a Assembler
			if err := a.AddInitial(&in); err != nil && !errors.Is(err, ErrCryptoLimit) {
				t.Fatalf("assembler error %v", err)
			}
			if len(a.buf) > DefaultLimit {
				t.Fatalf("assembler holds %d bytes", len(a.buf))
			}
			a.ClientHello()
		}
	})
}

// FuzzFrames reaches the frame parser directly: Initial keys are public, so
// anyone can send any plaintext, but mutations of a sealed packet would
// almost never pass authentication.
func FuzzFrames(f *testing.F) {
	f.Add(readHex(f, "rfc9001_client_payload.hex"), false)
	f.Add(readHex(f, "rfc9001_server_payload.hex"), false)
	f.Add(append(cryptoFrame(frameGQUICCrypto, 0, testHello), 0, 0, frameCloseQUIC, 1, 2, 0), true)
	f.Fuzz(func(t *testing.T, payload []byte, gquic bool) {
		var in Initial
		frames := parseFrames(payload, gquic, nil, &in)
		in.Crypto = frames
		var a Assembler
		for _, c := range frames {
			if len(c.Data) > len(payload) {
				t.Fatalf("frame of %d bytes from a %d-byte payload", len(c.Data), len(payload))
			}
		}
		if err := a.AddInitial(&in); err != nil && !errors.Is(err, ErrCryptoLimit) {
			t.Fatalf("assembler error %v", err)
		}
		if msg, ok := a.ClientHello(); ok && (len(msg) < 4 || msg[0] != handshakeClientHello) {
			t.Fatalf("ClientHello %x", msg)
		}
	})
}
