package decode

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/internal/corpustest"
	"github.com/tamperscope/tamperscope/schemas"
)

type expectedHello struct {
	frame            int
	transport        string
	src, dst         netip.Addr
	srcPort, dstPort uint16
}

func loadExpected(t *testing.T) map[string][]expectedHello {
	out := map[string][]expectedHello{}
	for _, row := range corpustest.ReadTSV(t, "EXPECTED.tsv") {
		if row["transport"] != "tcp" && row["transport"] != "quic" {
			continue
		}
		frame, err1 := strconv.Atoi(row["frame"])
		sp, err2 := strconv.ParseUint(row["src_port"], 10, 16)
		dp, err3 := strconv.ParseUint(row["dst_port"], 10, 16)
		src, err4 := netip.ParseAddr(row["src_ip"])
		dst, err5 := netip.ParseAddr(row["dst_ip"])
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			t.Fatalf("EXPECTED.tsv row %v: %v", row, err)
		}
		out[row["file"]] = append(out[row["file"]], expectedHello{frame, row["transport"], src, dst, uint16(sp), uint16(dp)})
	}
	return out
}

// readFrames feeds every frame pcapgo can read to fn, 1-based like
// tshark, and returns the error that ended the file (nil at a clean EOF).
func readFrames(path string, fn func(n int, f *capture.Frame)) error {
	c, err := corpustest.OpenCapture(path)
	if err != nil {
		return err
	}
	defer c.Close()
	for n := 1; ; n++ {
		data, ci, err := c.ZeroCopyReadPacketData()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		f := capture.Frame{
			TimestampNs: ci.Timestamp.UnixNano(),
			LinkType:    uint16(c.LinkType(ci)),
			Iface:       uint32(ci.InterfaceIndex),
			CapLen:      uint32(ci.CaptureLength),
			WireLen:     uint32(ci.Length),
			Data:        data,
		}
		fn(n, &f)
	}
}

func corpusCaptures(t *testing.T) []string {
	var files []string
	for _, row := range corpustest.ReadTSV(t, "MANIFEST.tsv") {
		if p := row["path"]; strings.HasSuffix(p, ".pcap") || strings.HasSuffix(p, ".pcapng") {
			files = append(files, p)
		}
	}
	if len(files) < 300 {
		t.Fatalf("MANIFEST.tsv lists %d captures, want the whole corpus", len(files))
	}
	return files
}

// TestCorpus decodes every frame of every capture pcapgo can read and
// checks each TLS ClientHello frame tshark found against tshark's
// innermost addresses and ports.
func TestCorpus(t *testing.T) {
	corpustest.Require(t)
	expected := loadExpected(t)
	var total Stats
	checked := map[string]int{}
	notHello := 0
	perFile := map[string]Stats{}
	for _, file := range corpusCaptures(t) {
		d := New(Options{})
		want := map[int]expectedHello{}
		for _, e := range expected[file] {
			want[e.frame] = e
		}
		var p schemas.PacketMeta
		readErr := readFrames(corpustest.Path(file), func(n int, f *capture.Frame) {
			err := d.Decode(f, &p)
			e, ok := want[n]
			if !ok {
				return
			}
			delete(want, n)
			checked[e.transport]++
			wantProto := schemas.ProtoTCP
			if e.transport == "quic" {
				wantProto = schemas.ProtoUDP
			}
			if err != nil || p.Src != e.src || p.Dst != e.dst || p.SrcPort != e.srcPort || p.DstPort != e.dstPort || p.Proto != wantProto {
				t.Errorf("%s frame %d: got %v %v:%d -> %v:%d proto %d, tshark %v:%d -> %v:%d %s",
					file, n, err, p.Src, p.SrcPort, p.Dst, p.DstPort, p.Proto, e.src, e.srcPort, e.dst, e.dstPort, e.transport)
				return
			}
			if len(p.Payload) == 0 || p.PayloadLen == 0 {
				t.Errorf("%s frame %d: ClientHello frame with empty payload", file, n)
				return
			}
			if e.transport == "tcp" && p.Payload[0] != 0x16 {
				notHello++ // last segment of a ClientHello reassembled over several segments
				t.Logf("%s frame %d: TCP ClientHello frame starts with %#x: a continuation segment, an SSLv2 hello or a record before the hello", file, n, p.Payload[0])
			}
		})
		if readErr != nil {
			t.Logf("%s: pcapgo stopped: %v", file, readErr)
		}
		for n, e := range want {
			if readErr == nil {
				t.Errorf("%s: pcapgo read the whole file but not ClientHello frame %d (%s)", file, n, e.transport)
			}
		}
		st := d.Stats()
		perFile[file] = st
		if st.Reasons[ReasonOK] != st.Frames {
			t.Logf("%s: %s", file, reasonSummary(st))
		}
		total.Frames += st.Frames
		for r := range NumReasons {
			total.Reasons[r] += st.Reasons[r]
		}
	}
	for r := range NumReasons {
		t.Logf("%-22v %6d", r, total.Reasons[r])
	}
	t.Logf("frames %d; ClientHello frames checked: %v; TCP ones not starting a TLS record: %d", total.Frames, checked, notHello)

	if checked["tcp"] < 190 || checked["quic"] < 220 {
		t.Errorf("checked %v ClientHello frames, want nearly all of EXPECTED.tsv's 199 tcp and 230 quic", checked)
	}
	if notHello > checked["tcp"]/10 {
		t.Errorf("%d of %d TCP ClientHello frames do not start with a TLS handshake record", notHello, checked["tcp"])
	}
	if ok := total.Reasons[ReasonOK]; ok < total.Frames*9/10 {
		t.Errorf("only %d of %d corpus frames fully decoded", ok, total.Frames)
	}
	plausible := []struct {
		file string
		want func(Stats) bool
		what string
	}{
		// Every frame is a first fragment whose IP total length (1500) is
		// longer than the frame on the wire.
		{"ndpi/badpackets.pcap", func(s Stats) bool {
			return s.Frames > 0 && s.Reasons[ReasonTruncatedIPPayload] == s.Frames
		}, "every frame truncated-ip-payload"},
		{"tcpdump/kday6.pcap", func(s Stats) bool { return s.Frames > 0 && s.Reasons[ReasonUnsupportedLinkType] == s.Frames }, "every frame an unsupported link type"},
		{"zeek/linuxsll-arp.pcap", func(s Stats) bool { return s.Reasons[ReasonNotIP] > 0 }, "ARP counted as not-ip"},
		{"suricata-verify/defrag/bug-6887-defrag-eth-vlan-ipv4-tcp-syn/frag-eth-vlan-ip-tcp-syn.pcap", func(s Stats) bool { return s.Reasons[ReasonFragLater] == 2 && s.Reasons[ReasonTruncatedTCP] == 1 },
			"two later fragments and a first one cut inside the TCP header"},
		{"zeek/trunc/trunc-hdr.pcap", func(s Stats) bool { return s.Reasons[ReasonTruncatedL2] == s.Frames && s.Frames > 0 }, "a frame cut inside Ethernet"},
	}
	for _, c := range plausible {
		if st, ok := perFile[c.file]; !ok || !c.want(st) {
			t.Errorf("%s: want %s, got %+v", c.file, c.what, st)
		}
	}
}

// TestCorpusTunnels checks that tunnel captures report inner packets: no
// fully decoded frame of these files may report the tunnel's own protocol
// or port.
func TestCorpusTunnels(t *testing.T) {
	corpustest.Require(t)
	files := []struct {
		file  string
		outer uint8  // protocol that must not be what Decode reports
		port  uint16 // UDP tunnel port that must not be what Decode reports
	}{
		{"ndpi/4in6tunnel.pcap", protoIPIP, 0},
		{"ndpi/6in4tunnel.pcap", protoIPv6, 0},
		{"zeek/tunnels/4in6.pcap", protoIPIP, 0},
		{"zeek/tunnels/6in4.pcap", protoIPv6, 0},
		{"zeek/tunnels/geneve-47101.pcap", 0, 6081},
		{"ndpi/vxlan.pcap", 0, 4789},
		{"zeek/tunnels/vxlan-encapsulated-http.pcap", 0, 4789},
		{"zeek/tunnels/Teredo.pcap", 0, 3544},
	}
	for _, tc := range files {
		t.Run(tc.file, func(t *testing.T) {
			d := New(Options{})
			var p schemas.PacketMeta
			inner := 0
			err := readFrames(corpustest.Path(tc.file), func(n int, f *capture.Frame) {
				if d.Decode(f, &p) != nil {
					return
				}
				if tc.outer != 0 && p.Proto == tc.outer {
					t.Errorf("frame %d reported as the outer protocol %d", n, tc.outer)
				}
				if tc.port != 0 && p.Proto == schemas.ProtoUDP && (p.SrcPort == tc.port || p.DstPort == tc.port) {
					t.Errorf("frame %d reported as the outer UDP datagram to port %d", n, tc.port)
				}
				if p.Proto == schemas.ProtoTCP || p.Proto == schemas.ProtoUDP {
					inner++
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if inner == 0 {
				t.Errorf("no inner TCP or UDP packet decoded; stats %+v", d.Stats())
			}
		})
	}
}

func reasonSummary(s Stats) string {
	var b strings.Builder
	for r := range NumReasons {
		if s.Reasons[r] != 0 {
			fmt.Fprintf(&b, " %v=%d", r, s.Reasons[r])
		}
	}
	return b.String()
}
