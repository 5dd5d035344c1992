package tlshello

import (
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
)

// specHello is the example ClientHello of the JA4 specification
// (FoxIO-LLC/ja4 technical_details/JA4.md): its ciphers, extension order
// and signature algorithms.
func specHello(sigalgs []uint16) []byte {
	suites := []uint16{0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035}
	order := []uint16{0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015}
	var exts []ext
	exts = append(exts, ext{0x2a2a, nil}) // GREASE, must not count
	for _, typ := range order {
		switch typ {
		case extServerName:
			exts = append(exts, sniExt("example.com"))
		case extALPN:
			exts = append(exts, alpnExt("h2", "http/1.1"))
		case extSignatureAlgorithms:
			exts = append(exts, ext{typ, vec16(u16s(sigalgs...))})
		case extSupportedVersions:
			exts = append(exts, ext{typ, vec8(u16s(0x3a3a, 0x0304, 0x0303))})
		case extSupportedGroups:
			exts = append(exts, ext{typ, vec16(u16s(0x4a4a, 0x001d, 0x0017))})
		default:
			exts = append(exts, ext{typ, nil})
		}
	}
	return records(buildHandshake(0x0303, append([]uint16{0x0a0a}, suites...), exts), 1<<14)
}

func TestJA4SpecExample(t *testing.T) {
	sigs := []uint16{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601}
	tests := []struct {
		name    string
		sigalgs []uint16
		want    string
	}{
		// Both values are the spec's own worked examples.
		{"with signature algorithms", sigs, "t13d1516h2_8daaf6152771_e5627efa2ab1"},
		{"without signature algorithms", nil, "t13d1516h2_8daaf6152771_6d807ffa2a79"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseClientHello(specHello(tc.sigalgs))
			if err != nil {
				t.Fatal(err)
			}
			if h.JA4 != tc.want {
				t.Errorf("JA4 = %s, want %s", h.JA4, tc.want)
			}
			if h.ServerName != "example.com" || !slices.Equal(h.ALPN, []string{"h2", "http/1.1"}) {
				t.Errorf("SNI %q ALPN %q", h.ServerName, h.ALPN)
			}
			if h.MaxSupportedVersion != 0x0304 || h.Version() != 0x0304 {
				t.Errorf("MaxSupportedVersion = %#x, want 0x0304 (GREASE ignored)", h.MaxSupportedVersion)
			}
			if !slices.Equal(h.SupportedGroups, []uint16{0x4a4a, 0x001d, 0x0017}) {
				t.Errorf("SupportedGroups = %x", h.SupportedGroups)
			}
			if len(h.Extensions) != 17 || h.Extensions[0] != 0x2a2a || len(h.CipherSuites) != 16 {
				t.Errorf("lists must keep GREASE and order: %x / %x", h.Extensions, h.CipherSuites)
			}
		})
	}
}

func TestJA4ALPN(t *testing.T) {
	// The byte strings and results are the examples of the JA4 spec's
	// "ALPN Extension Value" section.
	tests := []struct {
		proto []byte
		want  string
	}{
		{nil, "00"},
		{[]byte("h2"), "h2"},
		{[]byte("http/1.1"), "h1"},
		{[]byte("x"), "xx"},
		{[]byte{0xab}, "ab"},
		{[]byte{0xab, 0xcd}, "ad"},
		{[]byte{0x30, 0xab}, "3b"},
		{[]byte{0x30, 0x31, 0xab, 0xcd}, "3d"},
		{[]byte{0x30, 0xab, 0xcd, 0x31}, "01"},
	}
	for _, tc := range tests {
		t.Run(string(tc.want), func(t *testing.T) {
			var body []byte
			if tc.proto != nil {
				body = vec16(vec8(tc.proto))
			}
			if got := string(appendALPN(nil, body)); got != tc.want {
				t.Errorf("ALPN part of %x = %q, want %q", tc.proto, got, tc.want)
			}
		})
	}
}

func TestParseClientHelloGo(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *tls.Config
		version uint16
		alpn    []string
	}{
		{"tls13 h2", &tls.Config{ServerName: "blocked.example", NextProtos: []string{"h2", "http/1.1"}}, 0x0304, []string{"h2", "http/1.1"}},
		{"tls12 only", &tls.Config{ServerName: "www.wikipedia.org", MaxVersion: tls.VersionTLS12}, 0x0303, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := goClientHello(t, tc.cfg)
			h, err := ParseClientHello(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.ServerName != tc.cfg.ServerName || h.Version() != tc.version || !slices.Equal(h.ALPN, tc.alpn) {
				t.Errorf("got SNI %q version %#x ALPN %q", h.ServerName, h.Version(), h.ALPN)
			}
			if h.Len != len(b) {
				t.Errorf("Len = %d, want %d", h.Len, len(b))
			}
			if !strings.HasPrefix(h.JA4, "t"+ja4Version(tc.version)+"d") {
				t.Errorf("JA4 %s", h.JA4)
			}
		})
	}
}

// TestMultiRecord cuts one hello into records of many sizes: a hello split
// over records must read exactly like the same hello in one record.
func TestMultiRecord(t *testing.T) {
	one := goClientHello(t, &tls.Config{ServerName: "split.example", NextProtos: []string{"h2"}})
	hs := one[recordHeaderLen:]
	want, err := ParseClientHello(one)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 3, 4, 5, 100, 1000, len(hs) - 1} {
		b := records(hs, size)
		got, err := ParseClientHello(b)
		if err != nil {
			t.Fatalf("records of %d: %v", size, err)
		}
		want.Len = len(b)
		if got.ServerName != want.ServerName || got.JA4 != want.JA4 || got.Len != want.Len ||
			!slices.Equal(got.Extensions, want.Extensions) || !slices.Equal(got.CipherSuites, want.CipherSuites) {
			t.Errorf("records of %d: got %+v, want %+v", size, got, want)
		}
	}

	// A ChangeCipherSpec record between the pieces breaks the message.
	b := records(hs[:100], 100)
	b = append(b, 20, 3, 3, 0, 1, 1)
	b = append(b, records(hs[100:], 1<<14)...)
	if _, err := ParseClientHello(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("interrupted hello: err = %v, want ErrMalformed", err)
	}
}

// TestIncompleteNeed checks every prefix of a real hello: each must ask for
// more bytes, and never for more than the hello still lacks, so a caller
// that waits for Need bytes never waits past the end of the hello.
func TestIncompleteNeed(t *testing.T) {
	full := goClientHello(t, &tls.Config{ServerName: "need.example"})
	hs := full[recordHeaderLen:]
	for _, b := range [][]byte{full, records(hs, 512)} {
		for p := range len(b) {
			_, err := ParseClientHello(b[:p])
			var ie *IncompleteError
			if !errors.As(err, &ie) || !errors.Is(err, ErrIncomplete) {
				t.Fatalf("prefix %d/%d: err = %v, want *IncompleteError", p, len(b), err)
			}
			if ie.Need < 1 || ie.Need > len(b)-p {
				t.Fatalf("prefix %d/%d: Need = %d, want 1..%d", p, len(b), ie.Need, len(b)-p)
			}
		}
	}
	qb := hs
	for p := range len(qb) {
		_, err := ParseClientHelloHandshake(qb[:p])
		var ie *IncompleteError
		if !errors.As(err, &ie) || ie.Need < 1 || ie.Need > len(qb)-p {
			t.Fatalf("handshake prefix %d/%d: err = %v", p, len(qb), err)
		}
	}
}

func TestParseClientHelloHandshake(t *testing.T) {
	full := goClientHello(t, &tls.Config{ServerName: "quic.example", NextProtos: []string{"h3"}})
	tcp, err := ParseClientHello(full)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseClientHelloHandshake(full[recordHeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	if !q.QUIC || q.ServerName != "quic.example" || q.JA4 != "q"+tcp.JA4[1:] {
		t.Errorf("QUIC hello: QUIC=%v SNI=%q JA4=%s (TCP JA4 %s)", q.QUIC, q.ServerName, q.JA4, tcp.JA4)
	}
	if _, err := ParseClientHelloHandshake(full); !errors.Is(err, ErrNotHandshake) {
		t.Errorf("record layer given to the handshake parser: err = %v", err)
	}
}

func TestRejectNonTLS(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.6\r\n")},
		{"alert", []byte{0x15, 3, 3, 0, 2, 2, 40}},
		{"server hello", []byte{0x16, 3, 3, 0, 0x40, 2, 0, 0, 0x3c}},
		{"record version 2.x", []byte{0x16, 2, 0, 0, 5, 1}},
		{"zero-length record", []byte{0x16, 3, 1, 0, 0, 1}},
		{"one byte", []byte{0x47}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if LooksLikeClientHello(tc.b) {
				t.Error("LooksLikeClientHello = true")
			}
			if _, err := ParseClientHello(tc.b); !errors.Is(err, ErrNotHandshake) {
				t.Errorf("err = %v, want ErrNotHandshake", err)
			}
			if n := testing.AllocsPerRun(100, func() { _, _ = ParseClientHello(tc.b) }); n != 0 {
				t.Errorf("rejecting allocates %v times", n)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	good := buildHandshake(0x0303, []uint16{0x1301}, []ext{sniExt("a.example")})
	// hello assembles a handshake message from a raw body tail that
	// follows legacy_version and random.
	hello := func(tail ...byte) []byte {
		body := append(u16(0x0303), make([]byte, 32)...)
		body = append(body, tail...)
		return append(append([]byte{typeClientHello}, u24(len(body))...), body...)
	}
	tests := []struct {
		name string
		hs   []byte
	}{
		{"odd cipher list", hello(0, 0, 1, 0x13, 1, 0)},
		{"no compression method", hello(0, 0, 2, 0x13, 1, 0)},
		{"extension overruns block", hello(0, 0, 2, 0x13, 1, 1, 0, 0, 6, 0, 0, 0, 0xff, 1, 2)},
		{"extensions overrun message", hello(0, 0, 2, 0x13, 1, 1, 0, 0, 9, 0, 0, 0, 0)},
		{"bad server_name list", hello(0, 0, 2, 0x13, 1, 1, 0, 0, 7, 0, 0, 0, 3, 0, 9, 0)},
		{"bad ALPN list", hello(0, 0, 2, 0x13, 1, 1, 0, 0, 7, 0, 0x10, 0, 3, 0, 1, 5)},
		{"odd supported_versions", hello(0, 0, 2, 0x13, 1, 1, 0, 0, 6, 0, 0x2b, 0, 2, 1, 3)},
		{"session id too long", func() []byte {
			b := append([]byte(nil), good...)
			b[4+2+32] = 33
			return b
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseClientHello(records(tc.hs, 1<<14))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// TestProtocolName: the names protocolName does not copy are the names
// given.
func TestProtocolName(t *testing.T) {
	for _, p := range []string{"h2", "http/1.1", "h3", "h2c", "", "spdy/3"} {
		if got := protocolName([]byte(p)); got != p {
			t.Errorf("protocolName(%q) = %q", p, got)
		}
	}
}
