package tlshello

import "strconv"

// Extension types (IANA TLS ExtensionType registry).
const (
	extServerName          = 0x0000
	extSupportedGroups     = 0x000a
	extSignatureAlgorithms = 0x000d
	extALPN                = 0x0010
	extSupportedVersions   = 0x002b
	extQUICTransportParams = 0x0039
	extECH                 = 0xfe0d
	extESNI                = 0xffce
)

// ClientHello is what a TLS ClientHello says about the client and the name
// it wants. Lists keep the order and the GREASE values of the message.
type ClientHello struct {
	// LegacyVersion is the legacy_version field (0x0303 for TLS 1.2 and
	// 1.3 clients).
	LegacyVersion uint16
	// MaxSupportedVersion is the highest non-GREASE version in the
	// supported_versions extension, 0 without the extension.
	MaxSupportedVersion uint16
	// ServerName is the first host_name of the server_name extension,
	// empty without one. With ECH it is the outer (public) name.
	ServerName string
	// HasSNI is true when the server_name extension is present, even
	// if it holds no host_name.
	HasSNI bool
	// ALPN lists the protocols of the ALPN extension in order.
	ALPN                []string
	CipherSuites        []uint16
	Extensions          []uint16 // extension types in order
	SignatureAlgorithms []uint16
	SupportedGroups     []uint16
	// HasECH and HasESNI are set by the encrypted_client_hello (0xfe0d)
	// and encrypted_server_name (0xffce) extensions.
	HasECH  bool
	HasESNI bool
	// QUIC is true for a hello taken from a QUIC CRYPTO stream.
	QUIC bool
	// JA4 is the JA4 fingerprint of the hello.
	JA4 string
	// Len is the number of input bytes the hello occupied, record headers
	// included: the offset where the stream continues.
	Len int
}

// Version is the highest TLS version the client offers: the
// supported_versions maximum when present, else the legacy version.
func (h *ClientHello) Version() uint16 {
	if h.MaxSupportedVersion != 0 {
		return h.MaxSupportedVersion
	}
	return h.LegacyVersion
}

// ParseClientHello parses the ClientHello at the start of a client-to-server
// TLS byte stream, which may span several TLS records. It returns
// ErrNotHandshake without allocating when b does not start with a
// handshake record holding a ClientHello, an *IncompleteError (matching
// ErrIncomplete) when b ends before the message does, and an error
// matching ErrMalformed when the message is broken. When only the
// extensions block is broken, the result of a malformed hello still holds
// the fields and extensions read before the fault, without a JA4.
//
// SSLv2-compatible ClientHellos (no TLS record layer) are not parsed and
// give ErrNotHandshake.
func ParseClientHello(b []byte) (ClientHello, error) {
	if !mayStartClientHello(b) {
		return ClientHello{}, ErrNotHandshake
	}
	hdr, _, err := messagePrefix(b, handshakeHeaderLen, nil)
	if err != nil {
		return ClientHello{}, err
	}
	n := int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	if n > maxHelloLen {
		return ClientHello{}, malformed("ClientHello length " + strconv.Itoa(n))
	}
	msg, _, err := messagePrefix(b, handshakeHeaderLen+n, nil)
	if err != nil {
		return ClientHello{}, err
	}
	h, err := parseClientHelloBody(msg[handshakeHeaderLen:], false)
	if err != nil {
		return h, err
	}
	h.Len = recordBytes(b, handshakeHeaderLen+n)
	return h, nil
}

// mayStartClientHello is LooksLikeClientHello for prefixes shorter than
// its 6 bytes: it checks the bytes that are there.
func mayStartClientHello(b []byte) bool {
	if len(b) >= 6 {
		return LooksLikeClientHello(b)
	}
	return (len(b) < 1 || b[0] == recordTypeHS) &&
		(len(b) < 2 || b[1] == 3) &&
		(len(b) < 3 || b[2] <= 4)
}

// ParseClientHelloHandshake parses a ClientHello handshake message without
// the record layer, as carried by the CRYPTO frames of a QUIC Initial. b is
// the CRYPTO stream from offset 0. The result has QUIC set and a "q" JA4.
func ParseClientHelloHandshake(b []byte) (ClientHello, error) {
	if len(b) > 0 && b[0] != typeClientHello {
		return ClientHello{}, ErrNotHandshake
	}
	if len(b) < handshakeHeaderLen {
		return ClientHello{}, incomplete(handshakeHeaderLen - len(b))
	}
	n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if n > maxHelloLen {
		return ClientHello{}, malformed("ClientHello length " + strconv.Itoa(n))
	}
	if len(b) < handshakeHeaderLen+n {
		return ClientHello{}, incomplete(handshakeHeaderLen + n - len(b))
	}
	h, err := parseClientHelloBody(b[handshakeHeaderLen:handshakeHeaderLen+n], true)
	if err != nil {
		return h, err
	}
	h.Len = handshakeHeaderLen + n
	return h, nil
}

// recordBytes is the length of the record-layer prefix of b that carries
// the first hs bytes of the handshake stream; the records were validated
// by handshakePrefix.
func recordBytes(b []byte, hs int) int {
	off := 0
	for hs > 0 {
		n := int(b[off+3])<<8 | int(b[off+4])
		off += recordHeaderLen
		if n >= hs {
			return off + hs
		}
		off += n
		hs -= n
	}
	return off
}

// reader walks a byte slice; every read checks bounds so that malformed
// input surfaces as ok == false instead of a panic.
type reader struct {
	b  []byte
	ok bool
}

func (r *reader) u8() int {
	if len(r.b) < 1 {
		r.ok = false
		return 0
	}
	v := int(r.b[0])
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() int {
	if len(r.b) < 2 {
		r.ok = false
		return 0
	}
	v := int(r.b[0])<<8 | int(r.b[1])
	r.b = r.b[2:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.ok = false
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// extension bodies found in the first pass, parsed in the second.
type clientExts struct {
	sni, alpn, sigalgs, groups, versions []byte
	count                                int
}

func parseClientHelloBody(body []byte, quic bool) (ClientHello, error) {
	r := reader{b: body, ok: true}
	legacy := r.u16()
	r.bytes(32) // random
	if sid := r.u8(); sid > 32 {
		return ClientHello{}, malformed("session id length " + strconv.Itoa(sid))
	} else {
		r.bytes(sid)
	}
	suites := r.bytes(r.u16())
	comp := r.bytes(r.u8())
	if !r.ok {
		return ClientHello{}, malformed("truncated ClientHello")
	}
	if len(suites)%2 != 0 || len(comp) == 0 {
		return ClientHello{}, malformed("bad cipher suite or compression list")
	}
	// A broken extensions block still yields the extensions before the
	// fault: a censor's DPI reads the same bytes and may act on the name.
	var extErr error
	exts := r.b
	if len(r.b) > 0 {
		n := r.u16()
		if exts = r.b; len(exts) >= n {
			exts = exts[:n]
		} else {
			extErr = malformed("extensions overrun the ClientHello")
		}
	}

	var ce clientExts
	h := ClientHello{LegacyVersion: uint16(legacy), QUIC: quic}
	er := reader{b: exts, ok: true}
	for len(er.b) > 0 {
		typ := er.u16()
		data := er.bytes(er.u16())
		if !er.ok {
			extErr = malformed("truncated extension")
			break
		}
		ce.count++
		switch typ {
		case extServerName:
			ce.sni, h.HasSNI = data, true
		case extALPN:
			ce.alpn = data
		case extSignatureAlgorithms:
			ce.sigalgs = data
		case extSupportedGroups:
			ce.groups = data
		case extSupportedVersions:
			ce.versions = data
		case extECH:
			h.HasECH = true
		case extESNI:
			h.HasESNI = true
		}
	}

	sigalgs, ok := u16List(ce.sigalgs, 2)
	groups, ok2 := u16List(ce.groups, 2)
	versions, ok3 := u8List(ce.versions)
	if !ok || !ok2 || !ok3 || len(versions)%2 != 0 {
		extErr = malformed("bad list extension")
		sigalgs, groups, versions = nil, nil, nil
	}

	// One backing array for the four integer lists: one allocation per
	// hello instead of four.
	nSuites, nExts, nSig, nGrp := len(suites)/2, ce.count, len(sigalgs)/2, len(groups)/2
	all := make([]uint16, nSuites+nExts+nSig+nGrp)
	h.CipherSuites = fillU16(all[:nSuites:nSuites], suites)
	all = all[nSuites:]
	h.SignatureAlgorithms = fillU16(all[:nSig:nSig], sigalgs)
	all = all[nSig:]
	h.SupportedGroups = fillU16(all[:nGrp:nGrp], groups)
	all = all[nGrp:]
	h.Extensions = all[:nExts:nExts]
	er = reader{b: exts, ok: true}
	for i := range h.Extensions {
		h.Extensions[i] = uint16(er.u16())
		er.bytes(er.u16())
	}

	for i := 0; i+1 < len(versions); i += 2 {
		v := uint16(versions[i])<<8 | uint16(versions[i+1])
		if !isGREASE(v) && v > h.MaxSupportedVersion {
			h.MaxSupportedVersion = v
		}
	}

	if ce.sni != nil {
		name, err := serverName(ce.sni)
		if err != nil {
			extErr = err
		}
		h.ServerName = name
	}
	if ce.alpn != nil {
		alpn, err := alpnList(ce.alpn)
		if err != nil {
			extErr = err
		}
		h.ALPN = alpn
	}
	if extErr != nil {
		return h, extErr
	}
	h.JA4 = ja4(&h, ce.alpn)
	return h, nil
}

// u16List returns the body of a vector with a 2-byte length prefix whose
// elements are size bytes long.
func u16List(ext []byte, size int) ([]byte, bool) {
	if ext == nil {
		return nil, true
	}
	r := reader{b: ext, ok: true}
	l := r.bytes(r.u16())
	return l, r.ok && len(r.b) == 0 && len(l)%size == 0
}

// u8List returns the body of a vector with a 1-byte length prefix.
func u8List(ext []byte) ([]byte, bool) {
	if ext == nil {
		return nil, true
	}
	r := reader{b: ext, ok: true}
	l := r.bytes(r.u8())
	return l, r.ok && len(r.b) == 0
}

func fillU16(dst []uint16, src []byte) []uint16 {
	for i := range dst {
		dst[i] = uint16(src[2*i])<<8 | uint16(src[2*i+1])
	}
	return dst
}

// serverName returns the first host_name of a server_name extension body.
func serverName(ext []byte) (string, error) {
	if len(ext) == 0 {
		return "", nil
	}
	r := reader{b: ext, ok: true}
	list := reader{b: r.bytes(r.u16()), ok: true}
	if !r.ok {
		return "", malformed("truncated server_name")
	}
	for len(list.b) > 0 {
		typ := list.u8()
		name := list.bytes(list.u16())
		if !list.ok {
			return "", malformed("truncated server_name entry")
		}
		if typ == 0 {
			return string(name), nil
		}
	}
	return "", nil
}

func alpnList(ext []byte) ([]string, error) {
	r := reader{b: ext, ok: true}
	body := r.bytes(r.u16())
	if !r.ok {
		return nil, malformed("truncated ALPN")
	}
	n := 0
	for l := (reader{b: body, ok: true}); len(l.b) > 0; n++ {
		l.bytes(l.u8())
		if !l.ok {
			return nil, malformed("truncated ALPN protocol")
		}
	}
	out := make([]string, n)
	l := reader{b: body, ok: true}
	for i := range out {
		out[i] = protocolName(l.bytes(l.u8()))
	}
	return out, nil
}

// protocolName is string(b), without a copy for the ALPN protocol names
// nearly every hello offers.
func protocolName(b []byte) string {
	switch string(b) {
	case "h2":
		return "h2"
	case "http/1.1":
		return "http/1.1"
	case "h3":
		return "h3"
	}
	return string(b)
}

// isGREASE reports the reserved values of RFC 8701 (0x0a0a, 0x1a1a, ...,
// 0xfafa) that clients sprinkle to keep servers tolerant.
func isGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}
