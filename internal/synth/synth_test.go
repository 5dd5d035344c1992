package synth

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tamperscope/tamperscope/analyzer/tlshello"
)

// TestDeterministic: the same configuration writes the same bytes; a
// different seed does not.
func TestDeterministic(t *testing.T) {
	var a, b, c bytes.Buffer
	cfg := Config{Flows: 200, Seed: 7}
	sa, err := Write(&a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&c, Config{Flows: 200, Seed: 8}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two runs with one seed differ")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Error("two seeds give the same capture")
	}
	if sa.Flows < 200 || sa.Packets < 200*10 || int64(a.Len()) != sa.Bytes+24 {
		t.Errorf("stats %+v for %d bytes", sa, a.Len())
	}
}

// TestClientHellos: the generated ClientHellos parse, name their server,
// and the post-quantum ones are too long for one segment.
func TestClientHellos(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, pq := range []bool{false, true} {
		b := clientHello(r, "www.site0001.example1.net", pq)
		ch, err := tlshello.ParseClientHello(b)
		if err != nil {
			t.Fatalf("pq=%v: %v", pq, err)
		}
		if ch.ServerName != "www.site0001.example1.net" || !strings.HasPrefix(ch.JA4, "t13d") {
			t.Errorf("pq=%v: SNI %q JA4 %q", pq, ch.ServerName, ch.JA4)
		}
		if pq != (len(b) > segSize) {
			t.Errorf("pq=%v: %d-byte hello, segment %d", pq, len(b), segSize)
		}
	}
}
