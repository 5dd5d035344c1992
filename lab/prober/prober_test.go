package prober_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tamperscope/tamperscope/internal/certs"
	"github.com/tamperscope/tamperscope/internal/loopback"
	"github.com/tamperscope/tamperscope/internal/testenv"
	"github.com/tamperscope/tamperscope/lab/labdns"
	"github.com/tamperscope/tamperscope/lab/prober"
	"github.com/tamperscope/tamperscope/lab/server"
)

func freePort(t *testing.T, network string) uint16 {
	t.Helper()
	if network == "udp" {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		return uint16(u.LocalAddr().(*net.UDPAddr).Port)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// listen serves every connection to a loopback listener with serve until
// the test ends, and returns the listener's port.
func listen(t *testing.T, serve func(net.Conn)) uint16 {
	return uint16(loopback.Serve(t, serve).Port)
}

// silent accepts connections and never answers: handshakes time out.
func silent(t *testing.T) uint16 {
	return listen(t, func(c net.Conn) { t.Cleanup(func() { c.Close() }) })
}

// resetting accepts connections and aborts them at once.
func resetting(t *testing.T) uint16 {
	return listen(t, func(c net.Conn) {
		// Wait for the ClientHello so the reset hits a live exchange.
		_, _ = c.Read(make([]byte, 1))
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
}

// labServer is a lab server for a.test on free loopback ports, closed when
// the test ends.
type labServer struct {
	ca                          *certs.CA
	httpPort, tlsPort, quicPort uint16
}

func startServer(t *testing.T) labServer {
	t.Helper()
	ca, err := certs.NewCA("tamperscope lab CA")
	if err != nil {
		t.Fatal(err)
	}
	s := labServer{ca: ca, httpPort: freePort(t, "tcp"), tlsPort: freePort(t, "tcp"), quicPort: freePort(t, "udp")}
	srv, err := server.Start(server.Config{CA: ca, Names: []string{"a.test"}, HTTPPort: s.httpPort, TLSPort: s.tlsPort, QUICPort: s.quicPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return s
}

func TestOutcomes(t *testing.T) {
	srv := startServer(t)
	lo := netip.MustParseAddr("127.0.0.1")
	local := netip.AddrPortFrom(lo, 0)
	at := func(p uint16) netip.AddrPort { return netip.AddrPortFrom(lo, p) }
	p := &prober.Prober{Roots: srv.ca.Pool}
	for _, tc := range []struct {
		name    string
		req     prober.Request
		want    string
		wantLen int
	}{
		{"tls13", prober.Request{Proto: prober.TLS, Remote: at(srv.tlsPort), Name: "a.test", Size: 5000}, prober.OK, 5000},
		{"tls12", prober.Request{Proto: prober.TLS, Remote: at(srv.tlsPort), Name: "a.test", Size: 10, TLS12: true}, prober.OK, 10},
		{"http", prober.Request{Proto: prober.HTTP, Remote: at(srv.httpPort), Name: "a.test", Size: 70000}, prober.OK, 70000},
		{"quic", prober.Request{Proto: prober.QUIC, Remote: at(srv.quicPort), Name: "a.test"}, prober.OK, 0},
		{"unknown name fails verification", prober.Request{Proto: prober.TLS, Remote: at(srv.tlsPort), Name: "b.test", Size: 10}, prober.Failed, 0},
		{"closed port", prober.Request{Proto: prober.TLS, Remote: at(freePort(t, "tcp")), Name: "a.test"}, prober.Refused, 0},
		{"silent server", prober.Request{Proto: prober.TLS, Remote: at(silent(t)), Name: "a.test", Timeout: 300 * time.Millisecond}, prober.Timeout, 0},
		{"resetting server", prober.Request{Proto: prober.TLS, Remote: at(resetting(t)), Name: "a.test"}, prober.Reset, 0},
		{"client abort", prober.Request{Proto: prober.HTTP, Remote: at(srv.httpPort), Name: "a.test", Size: 1 << 20, AbortAfter: 4096}, prober.Aborted, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Local = local
			a := p.Do(context.Background(), tc.req)
			if a.Outcome != tc.want {
				t.Fatalf("outcome %s (%s), want %s", a.Outcome, a.Error, tc.want)
			}
			if tc.wantLen >= 0 && a.Bytes != tc.wantLen {
				t.Errorf("%d body bytes, want %d", a.Bytes, tc.wantLen)
			}
			if tc.want == prober.Aborted && (a.Bytes < 4096 || a.Bytes >= 1<<20) {
				t.Errorf("aborted after %d bytes, want a partial read", a.Bytes)
			}
		})
	}
}

// TestResolver checks that attempts resolve their name first and connect
// only to an address the answer holds.
func TestResolver(t *testing.T) {
	srv := startServer(t)
	lo := netip.MustParseAddr("127.0.0.1")
	dnsAddr := netip.AddrPortFrom(lo, freePort(t, "udp"))
	dns, err := labdns.Start(map[netip.AddrPort]labdns.Zone{dnsAddr: {
		"a.test":     {lo, netip.MustParseAddr("fd00::1")},
		"moved.test": {netip.MustParseAddr("127.0.0.2")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	p := &prober.Prober{Roots: srv.ca.Pool, Resolver: dnsAddr}
	for _, tc := range []struct {
		name, host string
		want       string
		resolved   []netip.Addr
	}{
		{"resolved name", "a.test", prober.OK, []netip.Addr{lo}},
		{"unknown name", "nope.test", prober.Failed, nil},
		{"address not in the answer", "moved.test", prober.Failed, []netip.Addr{netip.MustParseAddr("127.0.0.2")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := p.Do(context.Background(), prober.Request{Proto: prober.TLS, Local: netip.AddrPortFrom(lo, 0), Remote: netip.AddrPortFrom(lo, srv.tlsPort), Name: tc.host, Size: 10})
			if a.Outcome != tc.want {
				t.Fatalf("outcome %s (%s), want %s", a.Outcome, a.Error, tc.want)
			}
			if !slices.Equal(a.Resolved, tc.resolved) {
				t.Errorf("resolved %v, want %v", a.Resolved, tc.resolved)
			}
		})
	}
	if answered, _ := dns.Stats(); answered != 3 {
		t.Errorf("resolver answered %d queries, want one per attempt (3)", answered)
	}
}

func TestHappyEyeballs(t *testing.T) {
	l6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		testenv.Need(t, fmt.Sprintf("no IPv6 loopback: %v", err))
	}
	l6.Close()
	srv := startServer(t)
	p := &prober.Prober{Roots: srv.ca.Pool}
	v6 := prober.Request{Proto: prober.TLS, Local: netip.MustParseAddrPort("[::1]:0"), Remote: netip.AddrPortFrom(netip.IPv6Loopback(), srv.tlsPort), Name: "a.test", Size: 100}
	v4 := v6
	v4.Local, v4.Remote = netip.MustParseAddrPort("127.0.0.1:0"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.tlsPort)
	w, l, _ := p.HappyEyeballs(context.Background(), v6, v4)
	if w.Outcome != prober.OK || w.Bytes != 100 {
		t.Errorf("winner %s with %d bytes (%s), want ok with 100", w.Outcome, w.Bytes, w.Error)
	}
	if l.Outcome != prober.Abandoned {
		t.Errorf("loser %s, want abandoned", l.Outcome)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, prober.OK},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, prober.Refused},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, prober.Reset},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, prober.Unreachable},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EACCES)}, prober.Unreachable},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), prober.Timeout},
		{os.ErrDeadlineExceeded, prober.Timeout},
		{errors.New("tls: bad certificate"), prober.Failed},
	} {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			if got := prober.Classify(tc.err); got != tc.want {
				t.Errorf("Classify = %s, want %s", got, tc.want)
			}
		})
	}
}
