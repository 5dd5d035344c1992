package pcapfile

import (
	"encoding/binary"
)

// Writers for synthetic captures, built from the format specifications so
// tests can state exactly what a file holds.

type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

var (
	le byteOrder = binary.LittleEndian
	be byteOrder = binary.BigEndian
)

type pcapRec struct {
	sec, frac uint32
	caplen    uint32 // written as is; may disagree with len(data) to corrupt
	wirelen   uint32
	data      []byte
}

func rec(sec, frac uint32, data []byte) pcapRec {
	return pcapRec{sec: sec, frac: frac, caplen: uint32(len(data)), wirelen: uint32(len(data)), data: data}
}

func buildPcap(order byteOrder, magic uint32, minor uint16, link uint32, recs ...pcapRec) []byte {
	b := order.AppendUint32(nil, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, minor)
	b = order.AppendUint32(b, 0) // thiszone
	b = order.AppendUint32(b, 0) // sigfigs
	b = order.AppendUint32(b, 65535)
	b = order.AppendUint32(b, link)
	for _, r := range recs {
		b = order.AppendUint32(b, r.sec)
		b = order.AppendUint32(b, r.frac)
		b = order.AppendUint32(b, r.caplen)
		b = order.AppendUint32(b, r.wirelen)
		b = append(b, r.data...)
	}
	return b
}

type ngWriter struct {
	order byteOrder
	b     []byte
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (w *ngWriter) block(typ uint32, body []byte) *ngWriter {
	body = pad4(body)
	n := uint32(12 + len(body))
	w.b = w.order.AppendUint32(w.b, typ)
	w.b = w.order.AppendUint32(w.b, n)
	w.b = append(w.b, body...)
	w.b = w.order.AppendUint32(w.b, n)
	return w
}

func (w *ngWriter) shb(major, minor uint16) *ngWriter {
	body := w.order.AppendUint32(nil, byteOrderMagic)
	body = w.order.AppendUint16(body, major)
	body = w.order.AppendUint16(body, minor)
	body = w.order.AppendUint64(body, ^uint64(0)) // section length unknown
	return w.block(blockSHB, body)
}

func (w *ngWriter) opt(code uint16, val []byte) []byte {
	b := w.order.AppendUint16(nil, code)
	b = w.order.AppendUint16(b, uint16(len(val)))
	return pad4(append(b, val...))
}

func (w *ngWriter) idb(link uint16, snap uint32, opts ...[]byte) *ngWriter {
	body := w.order.AppendUint16(nil, link)
	body = w.order.AppendUint16(body, 0)
	body = w.order.AppendUint32(body, snap)
	for _, o := range opts {
		body = append(body, o...)
	}
	if len(opts) > 0 {
		body = append(body, 0, 0, 0, 0) // opt_endofopt
	}
	return w.block(blockIDB, body)
}

func (w *ngWriter) epb(iface uint32, ts uint64, wirelen uint32, data []byte) *ngWriter {
	body := w.order.AppendUint32(nil, iface)
	body = w.order.AppendUint32(body, uint32(ts>>32))
	body = w.order.AppendUint32(body, uint32(ts))
	body = w.order.AppendUint32(body, uint32(len(data)))
	body = w.order.AppendUint32(body, wirelen)
	return w.block(blockEPB, append(body, data...))
}

func (w *ngWriter) pb(iface uint16, ts uint64, wirelen uint32, data []byte) *ngWriter {
	body := w.order.AppendUint16(nil, iface)
	body = w.order.AppendUint16(body, 0) // drops
	body = w.order.AppendUint32(body, uint32(ts>>32))
	body = w.order.AppendUint32(body, uint32(ts))
	body = w.order.AppendUint32(body, uint32(len(data)))
	body = w.order.AppendUint32(body, wirelen)
	return w.block(blockPB, append(body, data...))
}

func (w *ngWriter) spb(wirelen uint32, data []byte) *ngWriter {
	return w.block(blockSPB, append(w.order.AppendUint32(nil, wirelen), data...))
}
