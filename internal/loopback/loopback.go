// Package loopback serves TCP on 127.0.0.1 for tests: a stand-in peer
// (a broker that closes connections, a server that resets them) on a free
// port, gone when the test ends. Only tests import it.
package loopback

import (
	"net"
	"testing"
)

// Serve hands every connection to a listener on a free loopback port to
// serve, which owns it, one after another until t ends; it returns the
// listener's address.
func Serve(t testing.TB, serve func(net.Conn)) *net.TCPAddr {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			serve(c)
		}
	}()
	return l.Addr().(*net.TCPAddr)
}
