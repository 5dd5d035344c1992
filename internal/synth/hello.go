package synth

import "math/rand/v2"

// client is a TLS client's ClientHello shape: what JA4 tells clients apart
// by (ciphers, extensions, ALPN, signature algorithms) and whether it
// sends GREASE and a post-quantum key share.
type client struct {
	name    string
	share   float64 // of TLS flows
	grease  bool
	pq      bool // may send X25519MLKEM768 (Config.PQShare of its flows)
	ciphers []int
	exts    []int // in order; greaseExt marks GREASE extensions
	alpn    []string
	sigalgs []int
	groups  []int
}

const greaseExt = -1

// clients are the shapes of current browsers and tools, after their
// published ClientHellos: Chrome, Firefox, Safari, curl with OpenSSL 3.
var clients = []client{
	{name: "chrome", share: 0.55, grease: true, pq: true,
		ciphers: []int{0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035},
		exts:    []int{greaseExt, 0x0000, 0x0017, 0xff01, 0x000a, 0x000b, 0x0023, 0x0010, 0x0005, 0x000d, 0x0012, 0x0033, 0x002d, 0x002b, 0x001b, greaseExt},
		alpn:    []string{"h2", "http/1.1"},
		sigalgs: []int{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601},
		groups:  []int{0x001d, 0x0017, 0x0018}},
	{name: "firefox", share: 0.2, pq: true,
		ciphers: []int{0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035},
		exts:    []int{0x0000, 0x0017, 0xff01, 0x000a, 0x000b, 0x0023, 0x0010, 0x0005, 0x0022, 0x0033, 0x002b, 0x000d, 0x002d, 0x001c},
		alpn:    []string{"h2", "http/1.1"},
		sigalgs: []int{0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201},
		groups:  []int{0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101}},
	{name: "safari", share: 0.15, grease: true,
		ciphers: []int{0x1301, 0x1302, 0x1303, 0xc02c, 0xc02b, 0xcca9, 0xc030, 0xc02f, 0xcca8, 0xc00a, 0xc009, 0xc014, 0xc013, 0x009d, 0x009c, 0x0035, 0x002f, 0xc008, 0xc012, 0x000a},
		exts:    []int{greaseExt, 0x0000, 0x0017, 0xff01, 0x000a, 0x000b, 0x0010, 0x0005, 0x000d, 0x0012, 0x0033, 0x002d, 0x002b, 0x001b, greaseExt},
		alpn:    []string{"h2", "http/1.1"},
		sigalgs: []int{0x0403, 0x0804, 0x0401, 0x0503, 0x0203, 0x0805, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201},
		groups:  []int{0x001d, 0x0017, 0x0018, 0x0019}},
	{name: "curl", share: 0.1,
		ciphers: []int{0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f, 0xcca9, 0xcca8, 0xccaa, 0xc02b, 0xc02f, 0x009e, 0xc024, 0xc028, 0x006b, 0xc023, 0xc027, 0x0067, 0xc00a, 0xc014, 0x0039, 0xc009, 0xc013, 0x0033, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x00ff},
		exts:    []int{0x0000, 0x000b, 0x000a, 0x0023, 0x0010, 0x0016, 0x0017, 0x000d, 0x002b, 0x002d, 0x0033},
		alpn:    []string{"h2", "http/1.1"},
		sigalgs: []int{0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0402, 0x0502, 0x0602},
		groups:  []int{0x001d, 0x0017, 0x001e, 0x0019, 0x0018, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104}},
}

// pickClient draws a client by the shares of clients.
func pickClient(r *rand.Rand) int {
	x := r.Float64()
	for i, c := range clients {
		if x < c.share {
			return i
		}
		x -= c.share
	}
	return len(clients) - 1
}

// clientHello builds client c's TLS 1.3 ClientHello record for sni. With
// pq set it carries an X25519MLKEM768 key share (1216 bytes), which makes
// the record ~1.7 KB and splits it over two TCP segments, as with current
// browsers and Go clients. Random fields come from r, so output is
// deterministic for a seeded r.
func clientHello(r *rand.Rand, c *client, sni string, pq bool) []byte {
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
	list16 := func(vs []int) {
		l := lenAt()
		for _, v := range vs {
			u16(v)
		}
		l()
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
	ciphers := c.ciphers
	if c.grease {
		ciphers = append([]int{grease}, ciphers...)
	}
	list16(ciphers)
	u8(1)
	u8(0)
	extDone := lenAt()
	greases := 0
	for _, typ := range c.exts {
		if typ == greaseExt {
			u16(grease ^ 0x1010*greases)
			if greases++; greases == 1 {
				u16(0)
			} else {
				u16(1)
				u8(0)
			}
			continue
		}
		u16(typ)
		done := lenAt()
		switch typ {
		case 0x0000: // server_name
			l := lenAt()
			u8(0)
			u16(len(sni))
			b = append(b, sni...)
			l()
		case 0xff01: // renegotiation_info
			u8(0)
		case 0x000a: // supported_groups
			groups := c.groups
			if pq {
				groups = append([]int{0x11ec}, groups...)
			}
			if c.grease {
				groups = append([]int{grease}, groups...)
			}
			list16(groups)
		case 0x000b: // ec_point_formats
			u8(1)
			u8(0)
		case 0x0010: // ALPN
			l := lenAt()
			for _, p := range c.alpn {
				u8(len(p))
				b = append(b, p...)
			}
			l()
		case 0x0005: // status_request
			u8(1)
			u16(0)
			u16(0)
		case 0x000d: // signature_algorithms
			list16(c.sigalgs)
		case 0x0022: // delegated_credentials
			list16([]int{0x0403, 0x0503, 0x0603, 0x0203})
		case 0x0033: // key_share
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
		case 0x002d: // psk_key_exchange_modes
			u8(1)
			u8(1)
		case 0x002b: // supported_versions
			if c.grease {
				u8(6)
				u16(grease)
			} else {
				u8(4)
			}
			u16(0x0304)
			u16(0x0303)
		case 0x001b: // compress_certificate: brotli
			u8(2)
			u16(2)
		case 0x001c: // record_size_limit
			u16(0x4001)
		}
		// Others (extended_master_secret, session_ticket, SCT,
		// encrypt_then_mac) are empty.
		done()
	}
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
