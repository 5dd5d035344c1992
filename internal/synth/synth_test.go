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

// TestClientHellos: every client's ClientHellos parse and name their
// server, the clients have JA4 fingerprints of their own, and the
// post-quantum hellos are too long for one segment.
func TestClientHellos(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ja4 := map[string]string{}
	for i := range clients {
		c := &clients[i]
		for _, pq := range []bool{false, true} {
			if pq && !c.pq {
				continue
			}
			b := clientHello(r, c, "www.site0001.example1.net", pq)
			ch, err := tlshello.ParseClientHello(b)
			if err != nil {
				t.Fatalf("%s pq=%v: %v", c.name, pq, err)
			}
			if ch.ServerName != "www.site0001.example1.net" || !strings.HasPrefix(ch.JA4, "t13d") || ch.HasECH {
				t.Errorf("%s pq=%v: SNI %q JA4 %q ECH %v", c.name, pq, ch.ServerName, ch.JA4, ch.HasECH)
			}
			if pq != (len(b) > segSize) || len(b) > 2*segSize {
				t.Errorf("%s pq=%v: %d-byte hello, segment %d", c.name, pq, len(b), segSize)
			}
			if other, ok := ja4[ch.JA4]; ok && other != c.name {
				t.Errorf("%s and %s share JA4 %s", c.name, other, ch.JA4)
			}
			ja4[ch.JA4] = c.name
		}
	}
	if len(ja4) != len(clients) {
		t.Errorf("%d JA4 fingerprints for %d clients: %v", len(ja4), len(clients), ja4)
	}
}
