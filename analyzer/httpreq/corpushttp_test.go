package httpreq

import (
	"strings"
	"testing"

	"github.com/tamperscope/tamperscope/internal/corpustest"
)

// TestCorpusRequests parses every HTTP request tshark reports in the
// corpus (EXPECTED_HTTP.tsv) from the rebuilt start of its client stream
// (or its datagram, for SSDP over UDP) and compares method, Host and
// target with tshark's.
func TestCorpusRequests(t *testing.T) {
	corpustest.Require(t)
	undecodable := map[string]string{
		"zeek/nflog-http.pcap": "NFLOG link type, which the test's gopacket decoder does not read",
	}
	cache := corpustest.SegmentCache{}
	parsed := 0
	for _, r := range corpustest.ReadTSV(t, "EXPECTED_HTTP.tsv") {
		t.Run(r["file"]+":"+r["frame"], func(t *testing.T) {
			segs := cache.Get(t, r["file"])
			frame := corpustest.Atoi(t, r["frame"])
			var payload []byte
			for _, s := range segs {
				if s.Frame == frame {
					payload = s.Payload
					if !s.UDP {
						payload = corpustest.StreamAt(segs, s.Src, s.Dst, frame, LooksLikeRequest)
					}
				}
			}
			if payload == nil {
				if why, ok := undecodable[r["file"]]; ok {
					t.Skip(why)
				}
				t.Fatal("frame not decoded")
			}
			req, err := Parse(payload)
			if err != nil {
				t.Fatalf("parse %q: %v", payload[:min(len(payload), 80)], err)
			}
			parsed++
			if req.Method != r["method"] || req.Host != r["http_host"] || !strings.HasPrefix(req.Target, r["uri"]) {
				t.Errorf("got %s %q Host %q, tshark: %s %q Host %q", req.Method, req.Target, req.Host, r["method"], r["uri"], r["http_host"])
			}
		})
	}
	if parsed == 0 {
		t.Error("no request parsed")
	}
}
