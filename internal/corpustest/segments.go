package corpustest

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Segment is one TCP segment or UDP datagram with payload, with the
// innermost addresses and ports as tshark reports them.
type Segment struct {
	Frame    int // tshark's 1-based frame number
	Src, Dst netip.AddrPort
	UDP      bool
	Seq      uint32 // sequence number of the first payload byte
	Payload  []byte
}

// Segments decodes the capture at path just far enough to get transport
// payloads. Reading stops at the first error, as far as tshark's frame
// numbers stay true.
func Segments(t testing.TB, path string) []Segment {
	t.Helper()
	c, err := OpenCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var segs []Segment
	for frame := 1; ; frame++ {
		data, ci, err := c.ReadPacketData()
		if err != nil {
			return segs
		}
		p := gopacket.NewPacket(data, c.LinkType(ci), gopacket.Default)
		var (
			src, dst netip.Addr
			s        Segment
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
				s = Segment{Frame: frame, Src: netip.AddrPortFrom(src.Unmap(), uint16(l.SrcPort)),
					Dst: netip.AddrPortFrom(dst.Unmap(), uint16(l.DstPort)), Seq: l.Seq, Payload: l.Payload}
				if l.SYN {
					s.Seq++
				}
				found = true
			case *layers.UDP:
				s = Segment{Frame: frame, Src: netip.AddrPortFrom(src.Unmap(), uint16(l.SrcPort)),
					Dst: netip.AddrPortFrom(dst.Unmap(), uint16(l.DstPort)), UDP: true, Payload: l.Payload}
				found = true
			}
		}
		if found && len(s.Payload) > 0 {
			segs = append(segs, s)
		}
	}
}

// SegmentCache keeps decoded corpus captures across the subtests of one
// test, keyed by their path in the corpus.
type SegmentCache map[string][]Segment

// Get returns the segments of the corpus capture file, decoding it once.
func (c SegmentCache) Get(t testing.TB, file string) []Segment {
	t.Helper()
	if s, ok := c[file]; ok {
		return s
	}
	s := Segments(t, Path(file))
	c[file] = s
	return s
}

// StreamAt rebuilds the start of the TCP byte stream src->dst that the
// segment in frame `frame` belongs to: it begins at the last segment at or
// before that frame for which starts is true and continues in sequence
// order over the segments up to that frame, ignoring retransmissions.
// With frame 0 it starts at the first such segment and uses them all.
func StreamAt(segs []Segment, src, dst netip.AddrPort, frame int, starts func([]byte) bool) []byte {
	var dir []Segment
	for _, s := range segs {
		if !s.UDP && s.Src == src && s.Dst == dst && (frame == 0 || s.Frame <= frame) {
			dir = append(dir, s)
		}
	}
	first := -1
	for i, s := range dir {
		if starts(s.Payload) {
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
		if _, dup := bySeq[s.Seq]; !dup {
			bySeq[s.Seq] = s.Payload
		}
	}
	var out []byte
	for next := dir[first].Seq; ; {
		p, ok := bySeq[next]
		if !ok {
			return out
		}
		out = append(out, p...)
		delete(bySeq, next)
		next += uint32(len(p))
	}
}
