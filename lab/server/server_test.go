package server

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"

	"github.com/tamperscope/tamperscope/internal/certs"
	"github.com/tamperscope/tamperscope/internal/testenv"
)

// FreePorts returns a TCP port and a UDP port that were free a moment ago.
func freePorts(t *testing.T) (uint16, uint16, uint16) {
	t.Helper()
	var out []uint16
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, uint16(l.Addr().(*net.TCPAddr).Port))
	}
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	return out[0], out[1], uint16(u.LocalAddr().(*net.UDPAddr).Port)
}

func TestCertificatePerName(t *testing.T) {
	ca, err := certs.NewCA("tamperscope lab CA")
	if err != nil {
		t.Fatal(err)
	}
	httpPort, tlsPort, quicPort := freePorts(t)
	names := []string{"a.lab.test", "b.lab.test", "c.shop.test"}
	s, err := Start(Config{CA: ca, Names: names, HTTPPort: httpPort, TLSPort: tlsPort, QUICPort: quicPort})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := "127.0.0.1:" + strconv.Itoa(int(tlsPort))
	for _, tc := range []struct {
		sni, wantCN string
		maxVersion  uint16
	}{
		{"a.lab.test", "a.lab.test", tls.VersionTLS13},
		{"c.shop.test", "c.shop.test", tls.VersionTLS12},
		{"unknown.test", DefaultName, tls.VersionTLS13},
	} {
		t.Run(tc.sni, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: tc.sni, RootCAs: ca.Pool, MaxVersion: tc.maxVersion, InsecureSkipVerify: tc.wantCN == DefaultName})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			st := c.ConnectionState()
			if cn := st.PeerCertificates[0].Subject.CommonName; cn != tc.wantCN {
				t.Errorf("certificate for %s, want %s", cn, tc.wantCN)
			}
			if st.Version != tc.maxVersion {
				t.Errorf("version %#x, want %#x", st.Version, tc.maxVersion)
			}
		})
	}
}

func TestSizeAndResetAfterResponse(t *testing.T) {
	ca, err := certs.NewCA("tamperscope lab CA")
	if err != nil {
		t.Fatal(err)
	}
	httpPort, tlsPort, quicPort := freePorts(t)
	s, err := Start(Config{CA: ca, HTTPPort: httpPort, TLSPort: tlsPort, QUICPort: quicPort,
		ResetAfterResponse: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		host      string
		wantReset bool
	}{{"127.0.0.1", true}, {"[::1]", false}} {
		t.Run(tc.host, func(t *testing.T) {
			c, err := net.Dial("tcp", tc.host+":"+strconv.Itoa(int(httpPort)))
			if err != nil {
				testenv.Need(t, fmt.Sprintf("no loopback for %s: %v", tc.host, err))
			}
			defer c.Close()
			if _, err := io.WriteString(c, "GET /size/100000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || n != 100000 {
				t.Fatalf("body %d bytes, err %v; want the whole 100000", n, err)
			}
			_, err = c.Read(make([]byte, 1))
			reset := err != nil && err != io.EOF
			if reset != tc.wantReset {
				t.Fatalf("after the body: %v, want reset=%v", err, tc.wantReset)
			}
		})
	}
}
