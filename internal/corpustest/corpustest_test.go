package corpustest

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"
)

func TestDir(t *testing.T) {
	Require(t)
	if !filepath.IsAbs(Dir()) || filepath.Base(Dir()) != "corpus" {
		t.Errorf("Dir() = %q, want an absolute path ending in corpus", Dir())
	}
}

// TestReadTSV checks the tables against what the corpus README says of
// them: MANIFEST.tsv lists every capture, EXPECTED.tsv one ClientHello per
// row with its frame and 4-tuple.
func TestReadTSV(t *testing.T) {
	Require(t)
	manifest := ReadTSV(t, "MANIFEST.tsv")
	if len(manifest) < 300 {
		t.Fatalf("MANIFEST.tsv has %d rows, want the whole corpus", len(manifest))
	}
	for _, row := range manifest {
		if row["path"] == "" {
			t.Fatalf("MANIFEST.tsv row without a path: %v", row)
		}
	}
	for _, row := range ReadTSV(t, "EXPECTED.tsv") {
		if row["transport"] != "tcp" {
			continue
		}
		Atoi(t, row["frame"])
		AddrPort(t, row["src_ip"], row["src_port"])
		AddrPort(t, row["dst_ip"], row["dst_port"])
	}
}

// TestSegments finds every TCP ClientHello frame of EXPECTED.tsv in the
// first captures it names, on tshark's frame number and 4-tuple.
func TestSegments(t *testing.T) {
	Require(t)
	cache := SegmentCache{}
	files := map[string]bool{}
	for _, row := range ReadTSV(t, "EXPECTED.tsv") {
		if row["transport"] != "tcp" || (len(files) >= 10 && !files[row["file"]]) {
			continue
		}
		files[row["file"]] = true
		frame := Atoi(t, row["frame"])
		src := AddrPort(t, row["src_ip"], row["src_port"])
		dst := AddrPort(t, row["dst_ip"], row["dst_port"])
		found := false
		for _, s := range cache.Get(t, row["file"]) {
			if s.Frame == frame && s.Src == src && s.Dst == dst && !s.UDP {
				found = true
			}
		}
		if !found {
			t.Errorf("%s frame %d: no TCP segment %v -> %v", row["file"], frame, src, dst)
		}
	}
	if len(files) == 0 {
		t.Fatal("EXPECTED.tsv has no TCP rows")
	}
}

func TestStreamAt(t *testing.T) {
	a := netip.MustParseAddrPort("192.0.2.1:40000")
	b := netip.MustParseAddrPort("192.0.2.2:443")
	start := func(p []byte) bool { return len(p) > 0 && p[0] == 'S' }
	seg := func(frame int, src, dst netip.AddrPort, seq uint32, p string) Segment {
		return Segment{Frame: frame, Src: src, Dst: dst, Seq: seq, Payload: []byte(p)}
	}
	for _, tc := range []struct {
		name  string
		segs  []Segment
		frame int
		want  string
	}{
		{"in order", []Segment{seg(1, a, b, 100, "Sab"), seg(2, a, b, 103, "cd")}, 0, "Sabcd"},
		{"out of order", []Segment{seg(1, a, b, 100, "Sab"), seg(2, a, b, 105, "ef"), seg(3, a, b, 103, "cd")}, 0, "Sabcdef"},
		{"before the start ignored", []Segment{seg(1, a, b, 97, "xyz"), seg(2, a, b, 100, "Sab")}, 0, "Sab"},
		{"retransmission kept once", []Segment{seg(1, a, b, 100, "Sab"), seg(2, a, b, 100, "Sab"), seg(3, a, b, 103, "cd")}, 0, "Sabcd"},
		{"gap ends the stream", []Segment{seg(1, a, b, 100, "Sab"), seg(2, a, b, 110, "cd")}, 0, "Sab"},
		{"other direction ignored", []Segment{seg(1, a, b, 100, "Sab"), seg(2, b, a, 103, "xx")}, 0, "Sab"},
		{"udp ignored", []Segment{{Frame: 1, Src: a, Dst: b, UDP: true, Payload: []byte("Sx")}}, 0, ""},
		{"stops at frame", []Segment{seg(1, a, b, 100, "Sab"), seg(2, a, b, 103, "cd")}, 1, "Sab"},
		{"last start up to frame", []Segment{seg(1, a, b, 100, "Sab"), seg(2, a, b, 103, "Sx"), seg(3, a, b, 105, "y")}, 3, "Sxy"},
		{"no start", []Segment{seg(1, a, b, 100, "ab")}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StreamAt(tc.segs, a, b, tc.frame, start); !bytes.Equal(got, []byte(tc.want)) {
				t.Errorf("StreamAt = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAddrPort(t *testing.T) {
	if got, want := AddrPort(t, "::ffff:192.0.2.1", "443"), netip.MustParseAddrPort("192.0.2.1:443"); got != want {
		t.Errorf("AddrPort = %v, want %v", got, want)
	}
}
