package httpreq

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Request
	}{
		{"crlf", "GET /?q=ultrasurf HTTP/1.1\r\nUser-Agent: x\r\nHost: youporn.com\r\nAccept: */*\r\n\r\n",
			Request{Method: "GET", Target: "/?q=ultrasurf", Version: "HTTP/1.1", Host: "youporn.com"}},
		{"bare lf and case", "POST /api HTTP/1.0\nhOsT:\texample.org \nX: y\n\n",
			Request{Method: "POST", Target: "/api", Version: "HTTP/1.0", Host: "example.org"}},
		{"first host wins", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
			Request{Method: "GET", Target: "/", Version: "HTTP/1.1", Host: "a.example"}},
		{"no host", "GET / HTTP/1.0\r\nAccept: */*\r\n\r\nbody",
			Request{Method: "GET", Target: "/", Version: "HTTP/1.0"}},
		{"connect", "CONNECT www.wikipedia.org:443 HTTP/1.1\r\nHost: www.wikipedia.org:443\r\n\r\n",
			Request{Method: "CONNECT", Target: "www.wikipedia.org:443", Version: "HTTP/1.1", Host: "www.wikipedia.org:443"}},
		{"ssdp", "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n\r\n",
			Request{Method: "M-SEARCH", Target: "*", Version: "HTTP/1.1", Host: "239.255.255.250:1900"}},
		{"notify", "NOTIFY * HTTP/1.1\r\nHost:239.255.255.250:1900\r\n\r\n",
			Request{Method: "NOTIFY", Target: "*", Version: "HTTP/1.1", Host: "239.255.255.250:1900"}},
		{"http/0.9", "GET /\r\n\r\n", Request{Method: "GET", Target: "/", Version: "HTTP/0.9"}},
		{"hostname header is not host", "GET / HTTP/1.1\r\nHostname: no\r\nHost: yes\r\n",
			Request{Method: "GET", Target: "/", Version: "HTTP/1.1", Host: "yes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Len = got.Len
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			// Len ends on a line boundary inside the input.
			if got.Len <= 0 || got.Len > len(tc.in) || tc.in[got.Len-1] != '\n' {
				t.Errorf("Len = %d", got.Len)
			}
		})
	}
}

// TestIncomplete cuts requests at every byte: a cut before the Host line
// (or the end of the headers) is ErrIncomplete, never a wrong answer.
func TestIncomplete(t *testing.T) {
	for _, in := range []string{
		"GET /index.html HTTP/1.1\r\nUser-Agent: curl/8\r\nHost: blocked.example\r\n\r\n",
		"DELETE /x HTTP/1.0\nAccept: */*\n\n",
	} {
		full, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		for p := range full.Len {
			if _, err := Parse([]byte(in[:p])); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("%q: err = %v, want ErrIncomplete", in[:p], err)
			}
		}
		if got, err := Parse([]byte(in[:full.Len])); err != nil || got != full {
			t.Errorf("prefix of Len bytes: %+v %v", got, err)
		}
	}
}

func TestReject(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"tls", []byte{0x16, 3, 1, 2, 0, 1, 0, 1, 0xfc}, ErrNotHTTP},
		{"lower-case method", []byte("get / HTTP/1.1\r\n"), ErrNotHTTP},
		{"unknown method", []byte("BREW /pot HTTP/1.1\r\n"), ErrNotHTTP},
		{"method without space", []byte("GETX / HTTP/1.1\r\n"), ErrNotHTTP},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.6\r\n"), ErrNotHTTP},
		{"http2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), ErrNotHTTP},
		{"no version", []byte("POST /\r\n\r\n"), ErrMalformed},
		{"http2 version", []byte("GET / HTTP/2.0\r\n\r\n"), ErrMalformed},
		{"space in target", []byte("GET /a b HTTP/1.1\r\n\r\n"), ErrMalformed},
		{"endless line", []byte("GET /" + strings.Repeat("a", MaxLineLen)), ErrMalformed},
		{"endless headers", []byte("GET / HTTP/1.1\r\n" + strings.Repeat("X: y\r\n", MaxHeaderLen/6+1)), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if tc.want == ErrNotHTTP {
				if LooksLikeRequest(tc.in) {
					t.Error("LooksLikeRequest = true")
				}
				if n := testing.AllocsPerRun(100, func() { _, _ = Parse(tc.in) }); n != 0 {
					t.Errorf("rejecting allocates %v times", n)
				}
			}
		})
	}
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		in      string
		code    int
		wantErr error
	}{
		{"HTTP/1.1 200 OK\r\n", 200, nil},
		{"HTTP/1.0 403 Forbidden\n", 403, nil},
		{"HTTP/1.1 302\r\nLocation: http://warning.rt.ru/\r\n", 302, nil},
		{"HTTP/1.1 30", 0, ErrIncomplete},
		{"HTT", 0, ErrIncomplete},
		{"HTTP/1.1 2x0 OK\r\n", 0, ErrMalformed},
		{"HTTP/1.1 2000 OK\r\n", 0, ErrMalformed},
		{"\x16\x03\x03\x00\x5a\x02", 0, ErrNotHTTP},
		{"SSH-2.0-x\r\n", 0, ErrNotHTTP},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseResponse([]byte(tc.in))
			if !errors.Is(err, tc.wantErr) || r.StatusCode != tc.code {
				t.Errorf("got %+v %v, want code %d err %v", r, err, tc.code, tc.wantErr)
			}
		})
	}
}

func TestParseAllocs(t *testing.T) {
	req := []byte("GET /index.html HTTP/1.1\r\nUser-Agent: curl/8.5.0\r\nHost: example.com\r\n\r\n")
	// Target and Host; method and version are constants.
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(req) }); n > 2 {
		t.Errorf("Parse allocates %v times, want <= 2", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("GET /?q=ultrasurf HTTP/1.1\r\nHost: 18.188.18.18:9999\r\n\r\n"))
	f.Add([]byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 403 Forbidden\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		switch {
		case err == nil:
			if r.Len > len(b) || !LooksLikeRequest(b) {
				t.Fatalf("Len %d of %d", r.Len, len(b))
			}
		case errors.Is(err, ErrIncomplete), errors.Is(err, ErrNotHTTP), errors.Is(err, ErrMalformed):
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if s, err := ParseResponse(b); err == nil && (s.StatusCode < 0 || s.StatusCode > 999 || s.Len > len(b)) {
			t.Fatalf("response %+v", s)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	req := []byte("GET /index.html HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\nHost: example.com\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRejectNonHTTP(b *testing.B) {
	hello := []byte{0x16, 3, 1, 2, 0, 1, 0, 1, 0xfc, 3, 3}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(hello); err == nil {
			b.Fatal("parsed TLS as HTTP")
		}
	}
}
