package httpreq

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// corpusDir is /work/shared/corpus seen from this package directory
// (/work/main/analyzer/httpreq).
const corpusDir = "../../../shared/corpus"

func needCorpus(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(corpusDir, "EXPECTED.tsv")); err != nil {
		if os.Getenv("TAMPERSCOPE_REQUIRE_ALL") == "1" {
			t.Fatalf("corpus missing: %v", err)
		}
		t.Skipf("corpus not found at %s: %v", corpusDir, err)
	}
}

// segment is one TCP segment or UDP datagram with payload.
type segment struct {
	frame    int // tshark's 1-based frame number
	src, dst netip.AddrPort
	udp      bool
	seq      uint32 // sequence number of the first payload byte
	payload  []byte
}

// readSegments decodes a capture just far enough to get transport
// payloads. Test-only: gopacket.NewPacket is fine here.
func readSegments(t *testing.T, path string) []segment {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	type packetReader interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var (
		r        packetReader
		linkType func(ci gopacket.CaptureInfo) layers.LinkType
	)
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		r = ng
		linkType = func(ci gopacket.CaptureInfo) layers.LinkType {
			if intf, err := ng.Interface(ci.InterfaceIndex); err == nil {
				return intf.LinkType
			}
			return ng.LinkType()
		}
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		r = pr
		linkType = func(gopacket.CaptureInfo) layers.LinkType { return pr.LinkType() }
	}
	var segs []segment
	for frame := 1; ; frame++ {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, linkType(ci), gopacket.Default)
		var (
			src, dst netip.Addr
			s        segment
			found    bool
		)
		for _, l := range p.Layers() {
			switch l := l.(type) {
			case *layers.IPv4:
				src, _ = netip.AddrFromSlice(l.SrcIP)
				dst, _ = netip.AddrFromSlice(l.DstIP)
			case *layers.IPv6:
				src, _ = netip.AddrFromSlice(l.SrcIP)
				dst, _ = netip.AddrFromSlice(l.DstIP)
			case *layers.TCP:
				s = segment{frame: frame, src: netip.AddrPortFrom(src.Unmap(), uint16(l.SrcPort)),
					dst: netip.AddrPortFrom(dst.Unmap(), uint16(l.DstPort)), seq: l.Seq, payload: l.Payload}
				if l.SYN {
					s.seq++
				}
				found = true
			case *layers.UDP:
				s = segment{frame: frame, src: netip.AddrPortFrom(src.Unmap(), uint16(l.SrcPort)),
					dst: netip.AddrPortFrom(dst.Unmap(), uint16(l.DstPort)), udp: true, payload: l.Payload}
				found = true
			}
		}
		if found && len(s.payload) > 0 {
			segs = append(segs, s)
		}
	}
	return segs
}

// streamAt rebuilds the start of the TCP byte stream src->dst that the
// segment in frame `frame` belongs to: it begins at the last segment at or
// before that frame for which starts is true and continues in sequence
// order over the segments up to that frame, ignoring retransmissions.
// With frame 0 it starts at the first such segment and uses them all.
func streamAt(segs []segment, src, dst netip.AddrPort, frame int, starts func([]byte) bool) []byte {
	var dir []segment
	for _, s := range segs {
		if !s.udp && s.src == src && s.dst == dst && (frame == 0 || s.frame <= frame) {
			dir = append(dir, s)
		}
	}
	first := -1
	for i, s := range dir {
		if starts(s.payload) {
			first = i
			if frame == 0 {
				break
			}
		}
	}
	if first < 0 {
		return nil
	}
	bySeq := map[uint32][]byte{}
	for _, s := range dir[first:] {
		if _, dup := bySeq[s.seq]; !dup {
			bySeq[s.seq] = s.payload
		}
	}
	var out []byte
	for next := dir[first].seq; ; {
		p, ok := bySeq[next]
		if !ok {
			return out
		}
		out = append(out, p...)
		delete(bySeq, next)
		next += uint32(len(p))
	}
}

// readTSV returns the rows of a corpus TSV as maps keyed by column name.
func readTSV(t *testing.T, name string) []map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = '\t'
	r.LazyQuotes = true
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			if i < len(rec) {
				m[h] = rec[i]
			}
		}
		rows = append(rows, m)
	}
	return rows
}

func addrPort(t *testing.T, ip, port string) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("bad address %q: %v", ip, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatalf("bad port %q: %v", port, err)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p))
}

// segmentCache keeps decoded captures across subtests.
type segmentCache map[string][]segment

func (c segmentCache) get(t *testing.T, file string) []segment {
	if s, ok := c[file]; ok {
		return s
	}
	s := readSegments(t, filepath.Join(corpusDir, file))
	c[file] = s
	return s
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n
}
