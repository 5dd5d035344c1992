package ingest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/schemas"
)

// swapper replaces one address with another wherever a packet carries it.
type swapper struct {
	from, to netip.Addr
	calls    int
}

func (s *swapper) Anonymize(p *schemas.PacketMeta) {
	s.calls++
	for _, a := range []*netip.Addr{&p.Src, &p.Dst, &p.Quoted.Src, &p.Quoted.Dst} {
		if *a == s.from {
			*a = s.to
		}
	}
}

// TestAnonymizeBeforePublish: every published packet went through the
// Anonymizer, nothing published carries the original address, and the
// snapshot policy decides exactly as it does without one (the rewrite is
// consistent in both directions, so flows stay whole).
func TestAnonymizeBeforePublish(t *testing.T) {
	client, server := "10.0.0.7", "203.0.113.5"
	var fs []capture.Frame
	fs = append(fs, tcpFrame(t, client, server, 40000, 443, true, nil))
	for i := range 20 {
		fs = append(fs, tcpFrame(t, client, server, 40000, 443, false, bytesOf(300, byte(i))))
		fs = append(fs, tcpFrame(t, server, client, 443, 40000, false, bytesOf(1200, byte(i))))
	}
	run := func(a Anonymizer) []schemas.PacketMeta {
		var c collector
		if _, err := Run(context.Background(), &frames{f: fs}, &c, Config{BatchSize: 7, Anonymize: a}); err != nil {
			t.Fatal(err)
		}
		return c.pkts
	}
	plain := run(nil)
	sw := &swapper{from: netip.MustParseAddr(client), to: netip.MustParseAddr("198.51.100.77")}
	anon := run(sw)
	if sw.calls != len(fs) || len(anon) != len(fs) {
		t.Fatalf("%d frames, %d Anonymize calls, %d published", len(fs), sw.calls, len(anon))
	}
	snapped := 0
	for i, p := range anon {
		if len(p.Payload) > 0 {
			snapped++
		}
		if p.Src == sw.from || p.Dst == sw.from {
			t.Fatalf("packet %d published with the original address: %s -> %s", i, p.Src, p.Dst)
		}
		if p.Src != sw.to && p.Dst != sw.to {
			t.Fatalf("packet %d: %s -> %s lacks the rewritten address", i, p.Src, p.Dst)
		}
		if len(p.Payload) != len(plain[i].Payload) {
			t.Errorf("packet %d: snapshot of %d bytes, %d without anonymization", i, len(p.Payload), len(plain[i].Payload))
		}
	}
	if snapped == 0 {
		t.Error("no packet kept a snapshot: the comparison shows nothing")
	}
}
