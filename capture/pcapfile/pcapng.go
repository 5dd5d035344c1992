package pcapfile

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"

	"github.com/tamperscope/tamperscope/capture"
)

// pcapng block types (draft-ietf-opsawg-pcapng).
const (
	blockSHB = 0x0a0d0d0a
	blockIDB = 0x00000001
	blockPB  = 0x00000002 // obsolete Packet Block
	blockSPB = 0x00000003
	blockEPB = 0x00000006

	byteOrderMagic = 0x1a2b3c4d

	optEnd      = 0
	optTsresol  = 9
	optTsoffset = 14

	shbMinLen = 28
	idbMinLen = 20
	epbHdrLen = 28 // type, length, interface, ts high, ts low, caplen, len
	spbHdrLen = 12 // type, length, len
)

// ngSection is the state a section header resets: byte order and the
// interfaces its packets refer to.
type ngSection struct {
	ifaces []ngIface
	// base numbers interfaces across sections, so interface 0 of a second
	// section is not confused with interface 0 of the first.
	base uint32
	// lastNs stands in for the timestamp a Simple Packet Block lacks.
	lastNs int64
}

type tsUnit uint8

const (
	unitMul tsUnit = iota // ns = ts * k
	unitDiv               // ns = ts / k
	unitBin               // ns = ts * 1e9 / 2^shift
)

type ngIface struct {
	link  uint16
	keep  bool // link type accepted by Options.LinkTypes
	snap  uint32
	unit  tsUnit
	shift uint
	k     uint64
	offNs int64
}

// ns converts a timestamp in the interface's if_tsresol units to Unix
// nanoseconds, adding if_tsoffset.
func (ifc *ngIface) ns(ts uint64) int64 {
	switch ifc.unit {
	case unitMul:
		return int64(ts*ifc.k) + ifc.offNs
	case unitDiv:
		return int64(ts/ifc.k) + ifc.offNs
	}
	hi, lo := bits.Mul64(ts, 1e9)
	if ifc.shift >= 64 {
		return int64(hi>>(ifc.shift-64)) + ifc.offNs
	}
	return int64(hi<<(64-ifc.shift)|lo>>ifc.shift) + ifc.offNs
}

// setResolution applies if_tsresol: the low 7 bits are an exponent of 10,
// or of 2 when the top bit is set.
func (ifc *ngIface) setResolution(v byte) {
	exp := uint(v & 0x7f)
	if v&0x80 != 0 {
		ifc.unit, ifc.shift = unitBin, exp
		return
	}
	switch {
	case exp <= 9:
		ifc.unit, ifc.k = unitMul, pow10(9-exp)
	case exp-9 <= 19:
		ifc.unit, ifc.k = unitDiv, pow10(exp-9)
	default:
		ifc.unit, ifc.k = unitDiv, math.MaxUint64
	}
}

func pow10(n uint) uint64 {
	v := uint64(1)
	for range n {
		v *= 10
	}
	return v
}

func (r *Reader) maxBlock() int { return r.maxRec + blockSlack }

// readSHB reads a Section Header Block, which sets the byte order for the
// blocks after it and starts a fresh interface list.
func (r *Reader) readSHB() error {
	h, err := r.in.peek(12)
	if err != nil {
		return r.readFailed(err, 12)
	}
	switch binary.LittleEndian.Uint32(h[8:]) {
	case byteOrderMagic:
		r.swap = false
	case bits.ReverseBytes32(byteOrderMagic):
		r.swap = true
	default:
		return r.stop(ErrCorrupt, "section header byte-order magic %x", h[8:12])
	}
	b, err := r.block(h, shbMinLen)
	if err != nil {
		return err
	}
	major, minor := r.u16(b[12:]), r.u16(b[14:])
	// libpcap and Wireshark accept 1.0 and the 1.2 some old writers used.
	if major != 1 || (minor != 0 && minor != 2) {
		return r.stop(ErrUnsupportedVersion, "pcapng section version %d.%d", major, minor)
	}
	r.sec.base += uint32(len(r.sec.ifaces))
	r.sec.ifaces = r.sec.ifaces[:0]
	r.endBlock(len(b))
	return nil
}

// block returns the whole block whose first 12 bytes are h, after checking
// its framing.
func (r *Reader) block(h []byte, minLen int) ([]byte, error) {
	n := r.u32(h[4:])
	switch {
	case n < uint32(minLen):
		return nil, r.stop(ErrCorrupt, "block length %d below minimum %d", n, minLen)
	case n%4 != 0:
		return nil, r.stop(ErrCorrupt, "block length %d is not a multiple of 4", n)
	case n > uint32(r.maxBlock()):
		return nil, r.stop(ErrCorrupt, "block length %d exceeds maximum %d", n, r.maxBlock())
	}
	if len(r.in.rest) < int(n) {
		if err := r.in.fill(int(n)); err != nil {
			return nil, r.readFailed(err, int(n))
		}
	}
	b := r.in.rest[:n]
	r.in.prefetch(int(n))
	if t := r.u32(b[n-4:]); t != n {
		return nil, r.stop(ErrCorrupt, "block length %d but trailer says %d", n, t)
	}
	return b, nil
}

func (r *Reader) endBlock(n int) {
	r.in.discard(n)
	r.index++
}

func (r *Reader) readIDB(b []byte) {
	ifc := ngIface{
		link: r.u16(b[8:]),
		snap: r.u32(b[12:]),
		unit: unitMul,
		k:    1000, // default resolution: microseconds
	}
	ifc.keep = r.accepts(ifc.link)
	// Malformed options end option parsing: the interface is still usable
	// with what was read.
	for opts := b[16 : len(b)-4]; len(opts) >= 4; {
		code, n := r.u16(opts), int(r.u16(opts[2:]))
		if code == optEnd || 4+n > len(opts) {
			break
		}
		v := opts[4 : 4+n]
		switch {
		case code == optTsresol && n >= 1:
			ifc.setResolution(v[0])
		case code == optTsoffset && n >= 8:
			off := binary.LittleEndian.Uint64(v)
			if r.swap {
				off = bits.ReverseBytes64(off)
			}
			ifc.offNs = int64(off) * 1e9
		}
		opts = opts[min(len(opts), 4+(n+3)&^3):]
	}
	r.sec.ifaces = append(r.sec.ifaces, ifc)
}

func (r *Reader) nextNg(f *capture.Frame) error {
	for {
		// peek, open-coded: this is the per-frame path.
		if len(r.in.rest) < 12 {
			if err := r.in.fill(12); err != nil {
				return r.readFailed(err, 12)
			}
		}
		h := r.in.rest[:12]
		typ := r.u32(h)
		if typ == blockSHB {
			if err := r.readSHB(); err != nil {
				return err
			}
			continue
		}
		minLen := 12
		switch typ {
		case blockEPB, blockPB:
			minLen = epbHdrLen + 4
		case blockSPB:
			minLen = spbHdrLen + 4
		case blockIDB:
			minLen = idbMinLen
		}
		b, err := r.block(h, minLen)
		if err != nil {
			return err
		}
		switch typ {
		case blockEPB, blockPB:
			if err := r.packet(f, b, typ == blockPB); err != errSkipped {
				return err
			}
		case blockSPB:
			if err := r.simplePacket(f, b); err != errSkipped {
				return err
			}
		case blockIDB:
			r.readIDB(b)
			r.endBlock(len(b))
		default:
			// Name resolution, interface statistics, decryption secrets,
			// custom and unknown blocks carry no frames.
			r.endBlock(len(b))
		}
	}
}

// errSkipped tells nextNg that a packet block was consumed without a frame.
var errSkipped = errors.New("packet skipped")

// packet reads an Enhanced Packet Block or an obsolete Packet Block; they
// differ only in the width of the interface id.
func (r *Reader) packet(f *capture.Frame, b []byte, obsolete bool) error {
	var id uint32
	if obsolete {
		id = uint32(r.u16(b[8:]))
	} else {
		id = r.u32(b[8:])
	}
	caplen, wirelen := r.u32(b[20:]), r.u32(b[24:])
	if caplen > uint32(r.maxRec) {
		return r.stop(ErrCorrupt, "captured length %d exceeds maximum %d", caplen, r.maxRec)
	}
	end := epbHdrLen + int(caplen)
	if end > len(b)-4 {
		return r.stop(ErrCorrupt, "captured length %d overruns a %d-byte block", caplen, len(b))
	}
	if id >= uint32(len(r.sec.ifaces)) || !r.sec.ifaces[id].keep {
		r.stats.Skips++
		r.endBlock(len(b))
		return errSkipped
	}
	ifc := &r.sec.ifaces[id]
	ts := uint64(r.u32(b[12:]))<<32 | uint64(r.u32(b[16:]))
	r.sec.lastNs = ifc.ns(ts)
	r.emit(f, b, b[epbHdrLen:end:end], ifc, r.sec.base+id, wirelen)
	return nil
}

// simplePacket reads a Simple Packet Block: interface 0, no timestamp, and a
// captured length implied by the block length and the interface's snaplen.
func (r *Reader) simplePacket(f *capture.Frame, b []byte) error {
	if len(r.sec.ifaces) == 0 || !r.sec.ifaces[0].keep {
		r.stats.Skips++
		r.endBlock(len(b))
		return errSkipped
	}
	ifc := &r.sec.ifaces[0]
	wirelen := r.u32(b[8:])
	caplen := uint32(len(b) - spbHdrLen - 4)
	caplen = min(caplen, wirelen)
	if ifc.snap != 0 {
		caplen = min(caplen, ifc.snap)
	}
	if caplen > uint32(r.maxRec) {
		return r.stop(ErrCorrupt, "captured length %d exceeds maximum %d", caplen, r.maxRec)
	}
	end := spbHdrLen + int(caplen)
	r.emit(f, b, b[spbHdrLen:end:end], ifc, r.sec.base, wirelen)
	return nil
}

// emit fills f from a packet block b whose captured bytes are data and
// consumes b; data stays valid because consuming does not touch the buffer.
func (r *Reader) emit(f *capture.Frame, b, data []byte, ifc *ngIface, id, wirelen uint32) {
	f.TimestampNs = r.sec.lastNs
	f.LinkType = ifc.link
	f.Iface = id
	f.CapLen = uint32(len(data))
	f.WireLen = wirelen
	f.Data = data
	r.endBlock(len(b))
	r.stats.Frames++
}
