package quic

import (
	"bytes"
	"errors"
)

// Flow follows the client Initials of one UDP flow. Keys come from the DCID
// of the client's first Initial and stay the same for the whole Initial
// exchange, even after the client switches its DCID to the connection ID
// the server chose; only a Retry, or a new connection on the same 5-tuple,
// brings new keys and a new CRYPTO stream. The zero value is ready.
type Flow struct {
	// Assembler holds the CRYPTO stream of the current connection.
	Assembler
	keyDCID [maxCIDLen]byte
	keyLen  int
	known   bool
}

// Add decodes one client datagram of the flow with d and adds its CRYPTO
// frames. A datagram that decrypts only with its own DCID, which differs
// from the flow's, starts a new connection and resets the Assembler.
func (f *Flow) Add(d *Decoder, datagram []byte) (Initial, error) {
	key := f.keyDCID[:f.keyLen]
	if f.known {
		in, err := d.Decode(datagram, Client, key)
		if err == nil {
			return in, f.AddInitial(&in)
		}
		if !errors.Is(err, ErrDecrypt) {
			return in, err
		}
	}
	in, err := d.Decode(datagram, Client, nil)
	if err != nil {
		return in, err
	}
	if !f.known || !bytes.Equal(in.DCID, key) {
		f.Reset()
		f.keyLen = copy(f.keyDCID[:], in.DCID)
		f.known = true
	}
	return in, f.AddInitial(&in)
}

// KeyDCID is the connection ID the flow's current keys derive from; nil
// before the first Initial decrypted.
func (f *Flow) KeyDCID() []byte {
	if !f.known {
		return nil
	}
	return f.keyDCID[:f.keyLen]
}
