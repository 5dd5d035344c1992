package loopback

import (
	"io"
	"net"
	"testing"
)

func TestServe(t *testing.T) {
	addr := Serve(t, func(c net.Conn) {
		c.Write([]byte("hello"))
		c.Close()
	})
	for range 2 { // one connection after another
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "hello" {
			t.Fatalf("read %q, %v; want hello", got, err)
		}
	}
}
