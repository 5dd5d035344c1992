package quic

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// Side is the endpoint that sent a packet; each side protects its Initials
// with its own keys.
type Side uint8

const (
	// Client Initials carry the ClientHello.
	Client Side = iota
	// Server Initials carry the ServerHello.
	Server
)

func (s Side) String() string {
	if s == Server {
		return "server"
	}
	return "client"
}

// Keys protect the Initial packets one side sends.
type Keys struct {
	Key, IV, HP []byte
	aead        cipher.AEAD
	hp          cipher.Block
}

// InitialKeys derives the Initial packet keys of side for a connection
// whose client chose dcid as Destination Connection ID (RFC 9001 section
// 5.2). Only the first salt of versions that have several is used.
func InitialKeys(v uint32, side Side, dcid []byte) (*Keys, error) {
	ver, err := lookupVersion(v)
	if err != nil {
		return nil, err
	}
	return deriveKeys(ver.salts[0], ver.labels, side, dcid)
}

func deriveKeys(salt *[20]byte, l *labels, side Side, dcid []byte) (*Keys, error) {
	initial, err := hkdf.Extract(sha256.New, dcid, salt[:])
	if err != nil {
		return nil, fmt.Errorf("extract initial secret: %w", err)
	}
	label := "client in"
	if side == Server {
		label = "server in"
	}
	secret, err := expandLabel(initial, label, sha256.Size)
	if err != nil {
		return nil, err
	}
	k := &Keys{}
	if k.Key, err = expandLabel(secret, l.key, 16); err != nil {
		return nil, err
	}
	if k.IV, err = expandLabel(secret, l.iv, 12); err != nil {
		return nil, err
	}
	if k.HP, err = expandLabel(secret, l.hp, 16); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k.Key)
	if err != nil {
		return nil, fmt.Errorf("make packet cipher: %w", err)
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("make packet AEAD: %w", err)
	}
	if k.hp, err = aes.NewCipher(k.HP); err != nil {
		return nil, fmt.Errorf("make header protection cipher: %w", err)
	}
	return k, nil
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context
// (RFC 8446 section 7.1).
func expandLabel(secret []byte, label string, length int) ([]byte, error) {
	const prefix = "tls13 "
	info := make([]byte, 0, 4+len(prefix)+len(label))
	info = append(info, byte(length>>8), byte(length), byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, 0)
	out, err := hkdf.Expand(sha256.New, secret, string(info), length)
	if err != nil {
		return nil, fmt.Errorf("expand label %q: %w", label, err)
	}
	return out, nil
}
