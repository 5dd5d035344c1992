package injector

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// clientInitials returns the datagrams a real QUIC client (quic-go, the
// lab prober's) sends first when it dials name: the Initials carrying its
// ClientHello.
func clientInitials(t testing.TB, name string) [][]byte {
	t.Helper()
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	go func() {
		_, _ = quic.DialAddr(ctx, sink.LocalAddr().String(), &tls.Config{ServerName: name, NextProtos: []string{"x"}}, nil)
	}()
	var out [][]byte
	buf := make([]byte, 2048)
	// quic-go sends its whole first flight at once.
	_ = sink.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	for {
		n, _, err := sink.ReadFromUDP(buf)
		if err != nil {
			break
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
	if len(out) == 0 {
		t.Fatal("quic-go sent no Initial")
	}
	return out
}

// TestQUICServerName: the injector reads the name from real quic-go
// Initials, however long the ClientHello, and not from damaged ones.
func TestQUICServerName(t *testing.T) {
	src, dst := netip.MustParseAddrPort("198.18.0.1:40000"), netip.MustParseAddrPort("198.19.0.1:443")
	for _, name := range []string{"a.test", "shop.example.test", "very-long-name-0123456789.sub.domain.hosting.test"} {
		t.Run(name, func(t *testing.T) {
			var in Injector
			got, ok := "", false
			for _, d := range clientInitials(t, name) {
				if got, ok = in.quicServerName(&packet{src: src, dst: dst, udp: true, payload: d}); ok {
					break
				}
			}
			if !ok || got != name {
				t.Fatalf("server name %q (%v), want %q", got, ok, name)
			}
		})
	}
	t.Run("tampered", func(t *testing.T) {
		var in Injector
		for _, d := range clientInitials(t, "x.test") {
			d[len(d)-1] ^= 0xff // breaks the AEAD tag
			if name, ok := in.quicServerName(&packet{src: src, dst: dst, udp: true, payload: d}); ok {
				t.Fatalf("name %q from a damaged Initial", name)
			}
		}
	})
}
