package flow

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/tamperscope/tamperscope/schemas"
)

// TestLayout pins the cache-line layout State's comment describes: a field
// added in the wrong place silently costs a miss per packet.
func TestLayout(t *testing.T) {
	const line = 64
	var s State
	var d DirStats
	var seqEnd = unsafe.Offsetof(d.seq) + unsafe.Offsetof(d.seq.r)
	checks := []struct {
		name string
		ok   bool
	}{
		{"State is whole lines", unsafe.Sizeof(s)%line == 0},
		{"LastNs is on the first line", unsafe.Offsetof(s.LastNs)+unsafe.Sizeof(s.LastNs) <= line},
		{"the hot core is two lines", unsafe.Offsetof(s.Dir) == 2*line},
		{"DirStats is whole lines", unsafe.Sizeof(d)%line == 0},
		{"a packet's DirStats fields fit two lines", seqEnd <= 2*line && unsafe.Offsetof(d.OOO) < 2*line},
		{"a Zeek endpoint is one line", unsafe.Offsetof(s.z)%line == 0 && unsafe.Sizeof(s.z[0]) == line},
		{"side records are whole lines", unsafe.Sizeof(rstRecord{})%line == 0 && unsafe.Sizeof(downRecord{})%line == 0},
		{"an index slot is 8 bytes", unsafe.Sizeof(slot{}) == 8},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("layout broken: State %d bytes, Dir at %d, DirStats %d, z at %d (%d bytes)",
					unsafe.Sizeof(s), unsafe.Offsetof(s.Dir), unsafe.Sizeof(d), unsafe.Offsetof(s.z), unsafe.Sizeof(s.z))
			}
		})
	}
}

// TestSideRecords: RST and Down are nil until a flow has a reset or server
// data, and a record recycled from an ended flow starts empty.
func TestSideRecords(t *testing.T) {
	type seen struct {
		rsts    uint32 // RST.Count, 0 when nil
		hasRST  bool
		downB   uint64 // Down.Bytes, 0 when nil
		hasDown bool
	}
	var got []seen
	tb := New(Config{OnEnd: func(st *State, _ EndReason) {
		var s seen
		if st.RST != nil {
			s.hasRST, s.rsts = true, st.RST.Count
		}
		if st.Down != nil {
			s.hasDown, s.downB = true, st.Down.Bytes
		}
		got = append(got, s)
	}})
	run := func(port uint16, pkts func(v *conv) []schemas.PacketMeta) {
		v := newConv()
		v.cp = port
		for _, p := range pkts(v) {
			tb.Update(&p)
		}
		tb.FlushAll()
	}
	hs := func(v *conv) []schemas.PacketMeta {
		return []schemas.PacketMeta{v.pkt(true, fS, 0), v.pkt(false, fS|fA, 0), v.pkt(true, fA, 0)}
	}
	cases := []struct {
		name string
		pkts func(v *conv) []schemas.PacketMeta
		want seen
	}{
		{"reset and data", func(v *conv) []schemas.PacketMeta {
			return append(hs(v), v.pkt(false, fA, 700), v.pkt(false, fR|fA, 0), v.pkt(false, fR, 0))
		}, seen{rsts: 2, hasRST: true, downB: 700, hasDown: true}},
		{"client data only", func(v *conv) []schemas.PacketMeta {
			return append(hs(v), v.pkt(true, fA|fP, 300))
		}, seen{}},
		{"data without reset", func(v *conv) []schemas.PacketMeta {
			return append(hs(v), v.pkt(false, fA, 100), v.pkt(false, fA, 200))
		}, seen{downB: 300, hasDown: true}},
		{"reset without data", func(v *conv) []schemas.PacketMeta {
			return append(hs(v), v.pkt(false, fR|fA, 0))
		}, seen{rsts: 1, hasRST: true}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run(uint16(40000+i), tc.pkts)
			if len(got) != i+1 {
				t.Fatalf("%d flows ended, want %d", len(got), i+1)
			}
			if got[i] != tc.want {
				t.Errorf("got %+v, want %+v", got[i], tc.want)
			}
		})
	}
}

// TestVantagesKeptApart: one five-tuple seen at two vantages (two hosts
// behind the same private address, or both ends of a path) makes a flow
// per vantage, each with its own handshake; without a vantage, flow ids
// are those of a Key without one.
func TestVantagesKeptApart(t *testing.T) {
	var ended []*State
	var ids []string
	tb := New(Config{OnEnd: func(st *State, _ EndReason) {
		ended = append(ended, st)
		ids = append(ids, st.FlowID()+" "+st.Vantage+" "+st.History())
	}})
	a, b := newConv(), newConv()
	hs := func(v *conv, vantage string) []schemas.PacketMeta {
		ps := []schemas.PacketMeta{v.pkt(true, fS, 0), v.pkt(false, fS|fA, 0), v.pkt(true, fA, 0), v.pkt(true, fF|fA, 0), v.pkt(false, fF|fA, 0), v.pkt(true, fA, 0)}
		for i := range ps {
			ps[i].Vantage = vantage
		}
		return ps
	}
	pa, pb := hs(a, "ams-1"), hs(b, "ala-1")
	for i := range pa { // interleaved, packet by packet
		tb.Update(&pa[i])
		tb.Update(&pb[i])
	}
	tb.FlushAll()
	if len(ended) != 2 {
		t.Fatalf("%d flows, want one per vantage: %v", len(ended), ids)
	}
	for i, st := range ended {
		if st.History() != "ShAFf" || st.Dir[FromClient].Retrans != 0 {
			t.Errorf("flow %d (%s): history %q, %d retransmissions: not one clean handshake", i, st.Vantage, st.History(), st.Dir[FromClient].Retrans)
		}
	}
	if ids[0][:strings.IndexByte(ids[0], ' ')] == ids[1][:strings.IndexByte(ids[1], ' ')] {
		t.Errorf("both vantages' flows have one id: %v", ids)
	}
	var k Key
	k.set(cliAddr, srvAddr, 40000, 443, schemas.ProtoTCP, 0)
	if got, _ := KeyOf(&schemas.PacketMeta{Src: cliAddr, Dst: srvAddr, SrcPort: 40000, DstPort: 443, Proto: schemas.ProtoTCP}); got != k || k.Vantage != 0 {
		t.Errorf("a packet without a vantage keys to %+v, want %+v", got, k)
	}
}
