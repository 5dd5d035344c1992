package pcapfile

import (
	"encoding/binary"
	"fmt"

	"github.com/tamperscope/tamperscope/capture"
)

const (
	pcapHeaderLen = 24
	pcapRecordLen = 16 // record header
)

func (r *Reader) openPcap() error {
	h, err := r.in.peek(pcapHeaderLen)
	if err != nil {
		return r.headerFailed(err, "pcap file header")
	}
	switch binary.LittleEndian.Uint32(h) {
	case 0xa1b2c3d4:
		r.fracNs = 1000
	case 0xd4c3b2a1:
		r.fracNs, r.swap = 1000, true
	case 0xa1b23c4d:
		r.fracNs = 1
	case 0x4d3cb2a1:
		r.fracNs, r.swap = 1, true
	}
	major, minor := r.u16(h[4:]), r.u16(h[6:])
	if major != 2 {
		return fmt.Errorf("pcap version %d.%d: %w", major, minor, ErrUnsupportedVersion)
	}
	// libpcap before 2.3 wrote len before caplen; libpcap swaps them back
	// when caplen > len, and so do we.
	r.swapLens = minor < 3
	// The upper bits of the link-type field carry FCS information.
	r.link = uint16(r.u32(h[20:]))
	if !r.accepts(r.link) {
		return fmt.Errorf("pcap link type %d: %w", r.link, capture.ErrUnsupportedLinkType)
	}
	r.in.discard(pcapHeaderLen)
	return nil
}

func (r *Reader) nextPcap(f *capture.Frame) error {
	// peek, open-coded: this is the per-frame path.
	if len(r.in.rest) < pcapRecordLen {
		if err := r.in.fill(pcapRecordLen); err != nil {
			return r.readFailed(err, pcapRecordLen)
		}
	}
	h := r.in.rest[:pcapRecordLen]
	caplen, wirelen := r.u32(h[8:]), r.u32(h[12:])
	if r.swapLens && caplen > wirelen {
		caplen, wirelen = wirelen, caplen
	}
	if caplen > uint32(r.maxRec) {
		return r.stop(ErrCorrupt, "captured length %d exceeds maximum %d", caplen, r.maxRec)
	}
	n := pcapRecordLen + int(caplen)
	if len(r.in.rest) < n {
		if err := r.in.fill(n); err != nil {
			return r.readFailed(err, n)
		}
	}
	b := r.in.rest[:n]
	r.in.prefetch(n)
	f.TimestampNs = int64(r.u32(b))*1e9 + int64(r.u32(b[4:]))*r.fracNs
	f.LinkType = r.link
	f.Iface = 0
	f.CapLen = caplen
	f.WireLen = wirelen
	f.Data = b[pcapRecordLen:n:n]
	r.in.discard(n)
	r.index++
	r.stats.Frames++
	return nil
}
