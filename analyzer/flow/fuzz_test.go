package flow

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tamperscope/tamperscope/schemas"
)

// FuzzUpdate drives a small table with arbitrary packet sequences: few
// addresses and ports so flows collide, arbitrary flags, sequence numbers,
// payloads, fragments and ICMP errors. Update must never panic, and the
// table's bookkeeping must stay consistent.
func FuzzUpdate(f *testing.F) {
	f.Add([]byte("\x02\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x01\x00\x12\x01\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x01\x00\x10"))
	f.Add([]byte("\x04\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x06\x03\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:db8::1")}
	f.Fuzz(func(t *testing.T, data []byte) {
		ended := 0
		tb := New(Config{MaxFlows: 4, StreamBytes: 64, OnEnd: func(st *State, r EndReason) {
			ended++
			var rec schemas.FlowRecord
			st.Record(&rec)
			_ = st.Stream(FromClient)
		}})
		const rec = 14
		var ts int64
		for len(data) >= rec {
			b := data[:rec]
			data = data[rec:]
			ts += int64(b[0]) * 100_000_000
			p := schemas.PacketMeta{
				TimestampNs: ts, IPVersion: 4,
				Src: addrs[int(b[1]&3)%len(addrs)], Dst: addrs[int(b[1]>>2&3)%len(addrs)],
				SrcPort: uint16(b[2] & 3), DstPort: 443, TCPFlags: b[3],
				Seq: binary.BigEndian.Uint32(b[4:]), Ack: binary.BigEndian.Uint32(b[8:]),
				PayloadLen: uint32(b[12]), Window: uint16(b[13]),
			}
			switch b[1] >> 4 & 7 {
			case 0, 1, 2:
				p.Proto = schemas.ProtoTCP
			case 3:
				p.Proto = schemas.ProtoUDP
			case 4:
				p.Proto, p.ICMPType = schemas.ProtoICMP, 3
				p.Quoted = schemas.Quoted{Src: p.Dst, Dst: p.Src, SrcPort: p.DstPort, DstPort: p.SrcPort, Proto: schemas.ProtoTCP}
			case 5:
				p.Proto, p.Frag = schemas.ProtoUDP, schemas.FragFirst
			case 6:
				p.Proto, p.Frag = schemas.ProtoUDP, schemas.FragLater
			default:
				p.Proto = 47
			}
			if b[1]&0x80 != 0 {
				p.Payload = make([]byte, min(int(p.PayloadLen), 40))
			}
			st, d, _ := tb.Update(&p)
			if st != nil && d > FromServer {
				t.Fatalf("direction %d", d)
			}
			if tb.Len() > 4 {
				t.Fatalf("table holds %d flows, cap 4", tb.Len())
			}
		}
		n := tb.Len()
		tb.FlushAll()
		if tb.Len() != 0 {
			t.Fatalf("%d flows left after FlushAll", tb.Len())
		}
		s := tb.Stats()
		var total uint64
		for _, e := range s.Ended {
			total += e
		}
		if total != s.Flows || int(total) != ended || n > int(s.Flows) {
			t.Fatalf("flows %d ended %d (callbacks %d)", s.Flows, total, ended)
		}
	})
}
