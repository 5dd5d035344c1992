package tlshello

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/tamperscope/tamperscope/internal/corpustest"
)

// TestCorpusClientHellos parses every TCP ClientHello tshark reports in the
// corpus (EXPECTED.tsv, and EXPECTED_ISOLATED.tsv for hellos on port 80
// and retransmissions) from the rebuilt start of its client stream and
// compares the server name and the ECH/ESNI flags with tshark's.
func TestCorpusClientHellos(t *testing.T) {
	corpustest.Require(t)
	skip := map[string]string{
		"zeek/tls/ssl-v2.pcap:4": "SSLv2-compatible ClientHello, not parsed by design",
		"zeek/tls/ssl.v3.pcap:4": "SSLv2-compatible ClientHello, not parsed by design",
	}
	// nDPI's invalid-read reproducers: tshark flags both as malformed but
	// still shows the name of the second, and so must the parser.
	malformedRows := map[string]bool{
		"ndpi/tls_invalid_reads.pcap:4":  true,
		"ndpi/tls_invalid_reads.pcap:12": true,
	}
	rows := corpustest.ReadTSV(t, "EXPECTED.tsv")
	for _, r := range corpustest.ReadTSV(t, "EXPECTED_ISOLATED.tsv") {
		r["isolated"] = "1"
		rows = append(rows, r)
	}
	cache := corpustest.SegmentCache{}
	n := 0
	for _, r := range rows {
		if r["transport"] != "tcp" {
			continue
		}
		key := r["file"] + ":" + r["frame"]
		t.Run(key, func(t *testing.T) {
			if why, ok := skip[key]; ok {
				t.Skip(why)
			}
			segs := cache.Get(t, r["file"])
			src := corpustest.AddrPort(t, r["src_ip"], r["src_port"])
			dst := corpustest.AddrPort(t, r["dst_ip"], r["dst_port"])
			frame := corpustest.Atoi(t, r["frame"])
			stream := corpustest.StreamAt(segs, src, dst, frame, LooksLikeClientHello)
			h, err := ParseClientHello(stream)
			if malformedRows[key] {
				if !errors.Is(err, ErrMalformed) || h.ServerName != r["sni"] {
					t.Errorf("got SNI %q err %v, want SNI %q and ErrMalformed", h.ServerName, err, r["sni"])
				}
				return
			}
			if err != nil {
				t.Fatalf("parse %d-byte stream: %v", len(stream), err)
			}
			n++
			if h.ServerName != r["sni"] {
				t.Errorf("SNI = %q, want %q", h.ServerName, r["sni"])
			}
			if r["isolated"] == "" {
				if h.HasECH != (r["has_ech_ext_0xfe0d"] == "1") || h.HasESNI != (r["has_esni_ext_0xffce"] == "1") {
					t.Errorf("ECH %v ESNI %v, want %s %s", h.HasECH, h.HasESNI, r["has_ech_ext_0xfe0d"], r["has_esni_ext_0xffce"])
				}
			}
			// The first segment alone either holds the hello or must
			// say that more bytes are needed.
			first := firstPayload(segs, src, dst, frame, stream)
			if len(first) < h.Len {
				if _, err := ParseClientHello(first); !errors.Is(err, ErrIncomplete) {
					t.Errorf("first segment (%d of %d bytes): err = %v, want ErrIncomplete", len(first), h.Len, err)
				}
			}
		})
	}
	if n == 0 {
		t.Error("no ClientHello parsed")
	}
}

// firstPayload is the payload of the segment a rebuilt stream starts with.
func firstPayload(segs []corpustest.Segment, src, dst netip.AddrPort, frame int, stream []byte) []byte {
	var first []byte
	for _, s := range segs {
		if !s.UDP && s.Src == src && s.Dst == dst && s.Frame <= frame && len(s.Payload) <= len(stream) &&
			string(s.Payload) == string(stream[:len(s.Payload)]) {
			first = s.Payload
		}
	}
	return first
}
