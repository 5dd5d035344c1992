package pcapfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/internal/corpustest"
)

// packetCounts overrides MANIFEST's count where it is not a packet count.
var packetCounts = map[string]int{
	// Wireshark guesses a pcap variant from the damaged first record of
	// this file and reads one record more; `tcpdump -r` stops after one
	// record with "invalid packet capture length 1409179648", as we do.
	"suricata-verify/bug-6875-01/fuzz.pcap": 1,
	// MANIFEST counts the Custom Blocks that tshark lists as records; they
	// hold no packets. These are `capinfos -c` packet counts.
	"gopacket/pcapgo/tests/le/test017.pcapng": 0,
	"gopacket/pcapgo/tests/be/test017.pcapng": 0,
	"gopacket/pcapgo/tests/le/test018.pcapng": 4,
	"gopacket/pcapgo/tests/be/test018.pcapng": 4,
	"gopacket/pcapgo/tests/le/test102.pcapng": 5,
	"gopacket/pcapgo/tests/be/test102.pcapng": 5,
	"gopacket/pcapgo/tests/le/test202.pcapng": 8,
	"gopacket/pcapgo/tests/be/test202.pcapng": 8,
}

// decodable is the link-type set a replay passes, which makes a file of an
// unknown link type fail the way tshark fails on it.
var decodable = []uint16{capture.LinkNull, capture.LinkEthernet, capture.LinkRaw, capture.LinkLoop,
	capture.LinkSLL, capture.LinkIPv4, capture.LinkIPv6, capture.LinkSLL2}

// TestCorpus reads every capture of the shared corpus and holds the reader to
// capinfos' packet count and, for damaged files, to tshark's read error.
func TestCorpus(t *testing.T) {
	corpustest.Require(t)
	readErr := map[string]string{}
	for _, row := range corpustest.ReadTSV(t, "EXPECTED_FLOWS.tsv") {
		readErr[row["file"]] = row["tshark_read_error"]
	}
	n := 0
	for _, row := range corpustest.ReadTSV(t, "MANIFEST.tsv") {
		path, packets := row["path"], row["packets"]
		if packets == "-" {
			continue // baseline or log file, not a capture
		}
		n++
		t.Run(path, func(t *testing.T) {
			count, err := strconv.Atoi(strings.Fields(packets)[0])
			if err != nil {
				t.Fatalf("MANIFEST packets %q: %v", packets, err)
			}
			tsharkErr, ok := readErr[path]
			if !ok {
				t.Fatalf("%s missing from EXPECTED_FLOWS.tsv", path)
			}
			if c, ok := packetCounts[path]; ok {
				count = c
			}
			checkCorpusFile(t, corpustest.Path(path), count, tsharkErr)
		})
	}
	if n < 300 {
		t.Errorf("read %d captures from MANIFEST.tsv, want the whole corpus", n)
	}
}

func checkCorpusFile(t *testing.T, path string, count int, tsharkErr string) {
	var want error
	opts := Options{}
	switch {
	case tsharkErr == "":
		want = io.EOF
	case strings.Contains(tsharkErr, "cut short"):
		want = ErrTruncated
	case strings.Contains(tsharkErr, "damaged or corrupt"):
		want = ErrCorrupt
	case strings.Contains(tsharkErr, "unknown SHB version"):
		want = ErrUnsupportedVersion
	case strings.Contains(tsharkErr, "network type"):
		want, opts.LinkTypes = capture.ErrUnsupportedLinkType, decodable
	default:
		t.Fatalf("unclassified tshark error %q", tsharkErr)
	}
	r, err := Open(path, opts)
	var frames int
	if err == nil {
		var f capture.Frame
		for err = r.Next(&f); err == nil; err = r.Next(&f) {
			frames++
			if int(f.CapLen) != len(f.Data) || len(f.Data) > DefaultMaxRecordLen {
				t.Fatalf("frame %d: CapLen %d, %d data bytes", frames, f.CapLen, len(f.Data))
			}
		}
		s := r.Stats()
		if s.Frames != uint64(frames) {
			t.Errorf("Stats.Frames = %d, delivered %d", s.Frames, frames)
		}
		if fi, _ := os.Stat(path); err == io.EOF && s.Bytes != uint64(fi.Size()) {
			t.Errorf("Stats.Bytes = %d at the end of a %d-byte file", s.Bytes, fi.Size())
		}
		if cerr := r.Close(); cerr != nil {
			t.Errorf("Close: %v", cerr)
		}
	}
	if want == io.EOF && err != io.EOF {
		t.Fatalf("got %v, want a clean read", err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v (tshark: %s)", err, want, tsharkErr)
	}
	if frames != count {
		t.Errorf("read %d frames, want %d", frames, count)
	}
	if want != io.EOF && !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}

// The pcapng test suite exists in both byte orders; each pair must read
// identically.
func TestPcapngSuiteByteOrders(t *testing.T) {
	corpustest.Require(t)
	les, err := filepath.Glob(corpustest.Path("gopacket/pcapgo/tests/le/*.pcapng"))
	if err != nil || len(les) < 20 {
		t.Fatalf("found %d little-endian suite files: %v", len(les), err)
	}
	for _, lePath := range les {
		bePath := strings.Replace(lePath, "/le/", "/be/", 1)
		if _, err := os.Stat(bePath); err != nil {
			continue // test300 exists only little-endian
		}
		t.Run(filepath.Base(lePath), func(t *testing.T) {
			leFrames, leErr := readFile(t, lePath)
			beFrames, beErr := readFile(t, bePath)
			if diff := cmp.Diff(leFrames, beFrames); diff != "" {
				t.Errorf("frames differ between byte orders (-le +be):\n%s", diff)
			}
			if (leErr == io.EOF) != (beErr == io.EOF) {
				t.Errorf("le ends with %v, be with %v", leErr, beErr)
			}
		})
	}
}

func readFile(t *testing.T, path string) ([]capture.Frame, error) {
	t.Helper()
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return readAll(t, r)
}

// Expected values below are tshark's (frame.interface_id, frame.time_epoch):
// they pin per-interface link types, interface ids and if_tsresol handling.
func TestCorpusTimestampsAndInterfaces(t *testing.T) {
	corpustest.Require(t)
	type fr struct {
		ns    int64
		link  uint16
		iface uint32
	}
	tests := []struct {
		path string
		want []fr
	}{
		// Two interfaces, one in ns and one in µs resolution.
		{"zeek/pcapng-multi-interface.pcapng", []fr{
			{1767663089_500330493, 1, 0}, {1767663089_514291940, 1, 0},
			{1767663437_111897000, 1, 1}, {1767663437_126460000, 1, 1},
			{1767663437_128303000, 1, 1}, {1767663437_140942000, 1, 1},
		}},
		{"tcpdump/tcp-handshake-nano.pcap", []fr{
			{1418145369_924505488, capture.LinkSLL, 0},
			{1418145370_052027262, capture.LinkSLL, 0},
			{1418145370_052115157, capture.LinkSLL, 0},
		}},
		// if_tsresol 0x88: 2^-8 s.
		{"gopacket/pcapgo/tests/le/test902.pcapng", []fr{{1519128000_195312500, 1, 0}}},
		{"gopacket/pcapgo/tests/be/test902.pcapng", []fr{{1519128000_195312500, 1, 0}}},
		// Ethernet and NULL interfaces mixed in one section; the third
		// packet is a Simple Packet Block, which has no timestamp.
		{"gopacket/pcapgo/tests/le/test101.pcapng", []fr{
			{1340954905_298858000, 1, 0}, {1340954905_298858000, 1, 2},
			{1340954905_298858000, 1, 0}, {1340954905_301858000, 0, 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			frames, err := readFile(t, corpustest.Path(tt.path))
			if err != io.EOF {
				t.Fatal(err)
			}
			var got []fr
			for _, f := range frames {
				got = append(got, fr{f.TimestampNs, f.LinkType, f.Iface})
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(fr{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// 49 interfaces of three link types (Ethernet, SLL, 802.3br); every
	// packet is on interface 48, Ethernet.
	frames, err := readFile(t, corpustest.Path("zeek/ldap/gap-data-missing.pcapng"))
	if err != io.EOF || len(frames) != 18 {
		t.Fatalf("gap-data-missing: %d frames, %v", len(frames), err)
	}
	for i, f := range frames {
		if f.Iface != 48 || f.LinkType != capture.LinkEthernet {
			t.Errorf("frame %d on interface %d link type %d, want 48 and Ethernet", i+1, f.Iface, f.LinkType)
		}
	}
}

func TestCompressedByMagic(t *testing.T) {
	corpustest.Require(t)
	for _, src := range []string{"zeek/pcapng-multi-interface.pcapng", "censorship-tripwire/testdata/airtel_example.pcap"} {
		plain, err := os.ReadFile(corpustest.Path(src))
		if err != nil {
			t.Fatal(err)
		}
		want, err := readBytes(t, plain, Options{})
		if err != io.EOF || len(want) == 0 {
			t.Fatalf("%s: %d frames, %v", src, len(want), err)
		}
		for _, c := range []struct {
			name     string
			compress func(t *testing.T, b []byte) []byte
		}{{"gzip", gzipBytes}, {"zstd", zstdBytes}} {
			t.Run(c.name+"/"+filepath.Base(src), func(t *testing.T) {
				// No extension: detection must come from the content.
				path := filepath.Join(t.TempDir(), "capture")
				packed := c.compress(t, plain)
				if err := os.WriteFile(path, packed, 0o600); err != nil {
					t.Fatal(err)
				}
				r, err := Open(path, Options{})
				if err != nil {
					t.Fatal(err)
				}
				got, err := readAll(t, r)
				if err != io.EOF {
					t.Fatalf("got %v, want io.EOF", err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("frames differ from the uncompressed read (-want +got):\n%s", diff)
				}
				if s := r.Stats(); s.Bytes != uint64(len(packed)) {
					t.Errorf("Stats.Bytes = %d, want the compressed size %d", s.Bytes, len(packed))
				}
				if err := r.Close(); err != nil {
					t.Error(err)
				}
			})
		}
	}
	t.Run("truncated gzip", func(t *testing.T) {
		plain, err := os.ReadFile(corpustest.Path("censorship-tripwire/testdata/airtel_example.pcap"))
		if err != nil {
			t.Fatal(err)
		}
		packed := gzipBytes(t, plain)
		got, err := readBytes(t, packed[:len(packed)*2/3], Options{})
		if err == io.EOF || err == nil || len(got) == 0 {
			t.Fatalf("got %d frames and %v, want some frames then an error", len(got), err)
		}
	})
	t.Run("compressed text", func(t *testing.T) {
		_, err := readBytes(t, zstdBytes(t, bytes.Repeat([]byte("not a capture "), 10)), Options{})
		if !errors.Is(err, ErrNotCapture) {
			t.Fatalf("got %v, want ErrNotCapture", err)
		}
	})
}
