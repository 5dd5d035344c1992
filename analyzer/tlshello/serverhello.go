package tlshello

import (
	"bytes"
	"errors"
	"strconv"
)

const (
	recordTypeAlert = 0x15
	alertRecordLen  = recordHeaderLen + 2
	alertWarning    = 1
)

// helloRetryRandom is the ServerHello.random of a TLS 1.3
// HelloRetryRequest (RFC 8446 section 4.1.3).
var helloRetryRandom = []byte{
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
}

// ServerHello is what the server's first flight says: the version and
// cipher suite it chose and, for TLS 1.2 and older, who its leaf
// certificate names.
type ServerHello struct {
	LegacyVersion uint16
	// SelectedVersion is the supported_versions extension's value (TLS
	// 1.3 servers), 0 without the extension.
	SelectedVersion uint16
	CipherSuite     uint16
	// HelloRetryRequest marks a TLS 1.3 HelloRetryRequest, after which
	// the real ServerHello follows the client's second ClientHello.
	HelloRetryRequest bool
	// HasCertificate is true when the leaf certificate was read; false
	// for TLS 1.3 (encrypted), resumed sessions and anonymous suites.
	HasCertificate bool
	// LeafSubject and LeafIssuer are the leaf certificate's names in
	// RFC 4514 form ("CN=example.com,O=Example,C=US").
	LeafSubject string
	LeafIssuer  string
	// LeafParsed is false when crypto/x509 rejected the certificate and
	// the names come from a plain DER walk of its TBSCertificate.
	LeafParsed bool
}

// Version is the TLS version the server chose.
func (s *ServerHello) Version() uint16 {
	if s.SelectedVersion != 0 {
		return s.SelectedVersion
	}
	return s.LegacyVersion
}

// ParseServerHello parses the start of a server-to-client TLS byte stream:
// warning alerts, then the ServerHello and, when the server chose TLS 1.2 or older, the leaf
// certificate of the Certificate message that follows in the same flight,
// across records and segments. Errors are those of ParseClientHello. On an
// error matching ErrIncomplete the result still carries the ServerHello's
// own fields when that message was complete (CipherSuite != 0 or
// HelloRetryRequest), so a caller that stops waiting can keep them.
func ParseServerHello(b []byte) (ServerHello, error) {
	// Servers whose certificate does not match the SNI may send a warning
	// alert (unrecognized_name) before the ServerHello.
	for len(b) > 0 && b[0] == recordTypeAlert {
		if len(b) < alertRecordLen {
			return ServerHello{}, incomplete(alertRecordLen - len(b))
		}
		if b[1] != 3 || b[3] != 0 || b[4] != 2 || b[5] != alertWarning {
			return ServerHello{}, ErrNotHandshake
		}
		b = b[alertRecordLen:]
	}
	if len(b) >= 6 && (!plausibleRecord(b) || b[5] != typeServerHello) {
		return ServerHello{}, ErrNotHandshake
	}
	var buf []byte
	hs, buf, err := messagePrefix(b, handshakeHeaderLen, buf)
	if err != nil {
		return ServerHello{}, err
	}
	n := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	if n > maxHelloLen {
		return ServerHello{}, malformed("ServerHello length " + strconv.Itoa(n))
	}
	off := handshakeHeaderLen + n
	if hs, buf, err = messagePrefix(b, off, buf); err != nil {
		return ServerHello{}, err
	}
	s, err := parseServerHelloBody(hs[handshakeHeaderLen:off])
	if err != nil {
		return ServerHello{}, err
	}
	if s.HelloRetryRequest || s.Version() > 0x0303 || s.Version() < 0x0300 {
		return s, nil
	}

	// Skip to the Certificate message; anything else first means the
	// flight has none.
	for {
		hs, buf, err = handshakePrefix(b, off+handshakeHeaderLen, buf)
		if errors.Is(err, errInterrupted) {
			return s, nil
		}
		if err != nil {
			return s, err
		}
		typ := hs[off]
		m := int(hs[off+1])<<16 | int(hs[off+2])<<8 | int(hs[off+3])
		switch typ {
		case typeCertificate:
			return s, leafCertificate(&s, b, off, m, buf)
		case typeServerKeyExch, typeCertRequest, typeServerHelloDone:
			return s, nil
		case typeCertStatus:
			// Stapled OCSP comes after the certificate, never before; a
			// server that sends it first is skipped over.
		default:
			return s, malformed("handshake message " + strconv.Itoa(int(typ)) + " after ServerHello")
		}
		if m > maxHelloLen {
			return s, malformed("handshake message length " + strconv.Itoa(m))
		}
		off += handshakeHeaderLen + m
	}
}

// leafCertificate reads the first certificate of the Certificate message
// at handshake offset off (body length m), waiting only for the leaf's
// bytes, not for the whole chain.
func leafCertificate(s *ServerHello, b []byte, off, m int, buf []byte) error {
	body := off + handshakeHeaderLen
	hs, buf, err := messagePrefix(b, body+6, buf)
	if err != nil {
		if m < 6 && !errors.Is(err, ErrIncomplete) {
			return malformed("short Certificate message")
		}
		return err
	}
	list := int(hs[body])<<16 | int(hs[body+1])<<8 | int(hs[body+2])
	if list == 0 {
		return nil // server sent no certificate
	}
	leaf := int(hs[body+3])<<16 | int(hs[body+4])<<8 | int(hs[body+5])
	if list+3 > m || leaf+3 > list || leaf > maxHelloLen {
		return malformed("bad certificate list length")
	}
	hs, _, err = messagePrefix(b, body+6+leaf, buf)
	if err != nil {
		return err
	}
	subject, issuer, parsed, ok := certNames(hs[body+6 : body+6+leaf])
	if !ok {
		return malformed("undecodable leaf certificate")
	}
	s.HasCertificate, s.LeafSubject, s.LeafIssuer, s.LeafParsed = true, subject, issuer, parsed
	return nil
}

func parseServerHelloBody(body []byte) (ServerHello, error) {
	r := reader{b: body, ok: true}
	s := ServerHello{LegacyVersion: uint16(r.u16())}
	random := r.bytes(32)
	r.bytes(r.u8()) // session id
	s.CipherSuite = uint16(r.u16())
	r.u8() // compression method
	var exts []byte
	if len(r.b) > 0 {
		exts = r.bytes(r.u16())
	}
	if !r.ok {
		return ServerHello{}, malformed("truncated ServerHello")
	}
	s.HelloRetryRequest = bytes.Equal(random, helloRetryRandom)
	er := reader{b: exts, ok: true}
	for len(er.b) > 0 {
		typ := er.u16()
		data := er.bytes(er.u16())
		if !er.ok {
			return ServerHello{}, malformed("truncated ServerHello extension")
		}
		if typ == extSupportedVersions && len(data) == 2 {
			s.SelectedVersion = uint16(data[0])<<8 | uint16(data[1])
		}
	}
	return s, nil
}
