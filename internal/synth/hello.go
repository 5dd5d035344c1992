package synth

import "math/rand/v2"

// clientHello builds a Chrome-like TLS 1.3 ClientHello record for sni. With
// pq set it carries an X25519MLKEM768 key share (1216 bytes), which makes
// the record ~1.7 KB and splits it over two TCP segments, as with current
// browsers and Go clients. Random fields come from r, so output is
// deterministic for a seeded r.
func clientHello(r *rand.Rand, sni string, pq bool) []byte {
	var b []byte
	u8 := func(v int) { b = append(b, byte(v)) }
	u16 := func(v int) { b = append(b, byte(v>>8), byte(v)) }
	rnd := func(n int) {
		for range n {
			b = append(b, byte(r.Uint32()))
		}
	}
	// lenAt reserves a 2-byte length and returns a func that fills it.
	lenAt := func() func() {
		at := len(b)
		u16(0)
		return func() { n := len(b) - at - 2; b[at], b[at+1] = byte(n>>8), byte(n) }
	}
	ext := func(typ int, body func()) {
		u16(typ)
		done := lenAt()
		body()
		done()
	}
	grease := 0x0a0a + 0x1010*int(r.IntN(15))

	b = append(b, 0x16, 0x03, 0x01)
	recDone := lenAt()
	u8(1) // client_hello
	hsAt := len(b)
	b = append(b, 0, 0, 0)
	u16(0x0303)
	rnd(32)
	u8(32)
	rnd(32)
	ciphers := []int{grease, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035}
	u16(2 * len(ciphers))
	for _, c := range ciphers {
		u16(c)
	}
	u8(1)
	u8(0)
	extDone := lenAt()
	ext(grease, func() {})
	ext(0x0000, func() { // server_name
		l := lenAt()
		u8(0)
		u16(len(sni))
		b = append(b, sni...)
		l()
	})
	ext(0x0017, func() {})        // extended_master_secret
	ext(0xff01, func() { u8(0) }) // renegotiation_info
	ext(0x000a, func() {          // supported_groups
		l := lenAt()
		if pq {
			u16(0x11ec)
		}
		for _, g := range []int{0x001d, 0x0017, 0x0018} {
			u16(g)
		}
		l()
	})
	ext(0x000b, func() { u8(1); u8(0) }) // ec_point_formats
	ext(0x0023, func() {})               // session_ticket
	ext(0x0010, func() {                 // ALPN
		l := lenAt()
		for _, p := range []string{"h2", "http/1.1"} {
			u8(len(p))
			b = append(b, p...)
		}
		l()
	})
	ext(0x0005, func() { u8(1); u16(0); u16(0) }) // status_request
	ext(0x000d, func() {                          // signature_algorithms
		l := lenAt()
		for _, s := range []int{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601} {
			u16(s)
		}
		l()
	})
	ext(0x0012, func() {}) // signed_certificate_timestamp
	ext(0x0033, func() {   // key_share
		l := lenAt()
		if pq {
			u16(0x11ec)
			u16(1216)
			rnd(1216)
		}
		u16(0x001d)
		u16(32)
		rnd(32)
		l()
	})
	ext(0x002d, func() { u8(1); u8(1) })                                 // psk_key_exchange_modes
	ext(0x002b, func() { u8(6); u16(grease); u16(0x0304); u16(0x0303) }) // supported_versions
	ext(0x001b, func() { u8(2); u16(2) })                                // compress_certificate: brotli
	ext(grease^0x1010, func() { u8(0) })
	extDone()
	hs := len(b) - hsAt - 3
	b[hsAt], b[hsAt+1], b[hsAt+2] = byte(hs>>16), byte(hs>>8), byte(hs)
	recDone()
	return b
}

// serverHello is a minimal TLS 1.3 ServerHello record (supported_versions
// 1.3, an X25519 key share), enough for parsers to read version and cipher.
func serverHello(r *rand.Rand) []byte {
	body := []byte{0x03, 0x03}
	for range 32 {
		body = append(body, byte(r.Uint32()))
	}
	body = append(body, 0)          // session id
	body = append(body, 0x13, 0x01) // TLS_AES_128_GCM_SHA256
	body = append(body, 0)          // compression
	ext := []byte{0x00, 0x2b, 0x00, 0x02, 0x03, 0x04, 0x00, 0x33, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20}
	for range 32 {
		ext = append(ext, byte(r.Uint32()))
	}
	body = append(body, byte(len(ext)>>8), byte(len(ext)))
	body = append(body, ext...)
	hs := append([]byte{2, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{0x16, 0x03, 0x03, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}
