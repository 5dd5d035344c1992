package flow

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/tamperscope/tamperscope/schemas"
)

func TestKeySymmetric(t *testing.T) {
	v := newConv()
	a, b := v.pkt(true, fS, 0), v.pkt(false, fS|fA, 0)
	ka, _ := KeyOf(&a)
	kb, _ := KeyOf(&b)
	if ka != kb || ka.Hash() != kb.Hash() || ka.AddrHash() != kb.AddrHash() {
		t.Fatalf("directions differ: %v %v", ka, kb)
	}
	b.SrcPort++
	kc, _ := KeyOf(&b)
	if kc.Hash() == ka.Hash() {
		t.Error("different ports, same hash")
	}
	// An ICMP error keys to the flow it quotes.
	icmp := schemas.PacketMeta{Proto: schemas.ProtoICMP, Src: netip.MustParseAddr("192.0.2.1"), Dst: cliAddr, ICMPType: 3, ICMPCode: 13,
		Quoted: schemas.Quoted{Src: cliAddr, Dst: srvAddr, SrcPort: a.SrcPort, DstPort: a.DstPort, Proto: schemas.ProtoTCP}}
	if ki, _ := KeyOf(&icmp); ki != ka {
		t.Errorf("ICMP error key %v, want %v", ki, ka)
	}
}

func TestFlowIDStable(t *testing.T) {
	run := func() string {
		v := newConv()
		tb := New(Config{})
		p := v.pkt(true, fS, 0)
		st, _, _ := tb.Update(&p)
		return st.FlowID()
	}
	a, b := run(), run()
	if a != b {
		t.Fatalf("flow ids differ: %s %s", a, b)
	}
	if len(a) != 18 || a[0] != 'C' {
		t.Errorf("flow id %q: want C + 17 base62 digits", a)
	}
	v := newConv()
	v.t += 1
	tb := New(Config{})
	p := v.pkt(true, fS, 0)
	st, _, _ := tb.Update(&p)
	if st.FlowID() == a {
		t.Error("another start time gave the same id")
	}
}

func TestRTT(t *testing.T) {
	v := newConv()
	tb := New(Config{})
	syn := v.pkt(true, fS, 0)
	tb.Update(&syn)
	v.c-- // retransmitted SYN, same ISN, 1 s later
	v.t += int64(time.Second)
	syn2 := v.pkt(true, fS, 0)
	st, _, isNew := tb.Update(&syn2)
	if isNew {
		t.Fatal("SYN retransmission started a new flow")
	}
	synAck := v.pkt(false, fS|fA, 0)
	synAck.TimestampNs = syn2.TimestampNs + 50_000_000
	tb.Update(&synAck)
	ack := v.pkt(true, fA, 0)
	ack.TimestampNs = syn2.TimestampNs + 60_000_000
	tb.Update(&ack)
	if st.SynRTTNs != 50_000_000 || st.HandshakeRTTNs != 60_000_000 {
		t.Errorf("rtt syn %d handshake %d, want 50ms and 60ms (from the last SYN)", st.SynRTTNs, st.HandshakeRTTNs)
	}
	if st.Dir[FromClient].SYNs != 2 {
		t.Errorf("client SYNs %d, want 2", st.Dir[FromClient].SYNs)
	}
}

func TestRetransAndOutOfOrder(t *testing.T) {
	seg := func(v *conv, off uint32, n int, dt time.Duration) schemas.PacketMeta {
		p := v.pkt(false, fA, n)
		p.Seq = v.sisn + 1 + off
		p.TimestampNs += int64(dt)
		v.t = p.TimestampNs
		return p
	}
	cases := []struct {
		name          string
		segs          func(v *conv) []schemas.PacketMeta
		retrans, ooo  uint32
		retransBytes  uint64
		nextSeqOffset uint32
	}{
		{"in order", func(v *conv) []schemas.PacketMeta {
			return []schemas.PacketMeta{seg(v, 0, 100, 0), seg(v, 100, 100, 0), seg(v, 200, 100, 0)}
		}, 0, 0, 0, 300},
		{"duplicate", func(v *conv) []schemas.PacketMeta {
			return []schemas.PacketMeta{seg(v, 0, 100, 0), seg(v, 100, 100, 0), seg(v, 0, 100, time.Second)}
		}, 1, 0, 100, 200},
		{"reordered within rtt", func(v *conv) []schemas.PacketMeta {
			return []schemas.PacketMeta{seg(v, 0, 100, 0), seg(v, 200, 100, 0), seg(v, 100, 100, time.Millisecond)}
		}, 0, 1, 0, 300},
		{"hole filled late is a retransmission", func(v *conv) []schemas.PacketMeta {
			return []schemas.PacketMeta{seg(v, 0, 100, 0), seg(v, 200, 100, 0), seg(v, 100, 100, 2*time.Second)}
		}, 1, 0, 100, 300},
		{"copy of data above a hole", func(v *conv) []schemas.PacketMeta {
			return []schemas.PacketMeta{seg(v, 0, 100, 0), seg(v, 200, 100, 0), seg(v, 300, 100, 0), seg(v, 200, 100, time.Second)}
		}, 1, 0, 100, 100},
		{"overlap extending the edge is new", func(v *conv) []schemas.PacketMeta {
			return []schemas.PacketMeta{seg(v, 0, 100, 0), seg(v, 50, 100, time.Second)}
		}, 0, 0, 0, 150},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newConv()
			tb := New(Config{})
			for _, p := range []schemas.PacketMeta{v.pkt(true, fS, 0), v.pkt(false, fS|fA, 0), v.pkt(true, fA, 0)} {
				tb.Update(&p)
			}
			var st *State
			for _, p := range tc.segs(v) {
				st, _, _ = tb.Update(&p)
			}
			ds := st.Dir[FromServer]
			if ds.Retrans != tc.retrans || ds.OOO != tc.ooo || ds.RetransBytes != tc.retransBytes {
				t.Errorf("retrans %d (%d bytes) ooo %d, want %d (%d) %d", ds.Retrans, ds.RetransBytes, ds.OOO, tc.retrans, tc.retransBytes, tc.ooo)
			}
			if ds.NextSeq != v.sisn+1+tc.nextSeqOffset {
				t.Errorf("next seq offset %d, want %d", ds.NextSeq-v.sisn-1, tc.nextSeqOffset)
			}
			if st.Down == nil {
				t.Fatal("server data left no throughput record")
			}
			if st.Down.RetransBytes != tc.retransBytes {
				t.Errorf("throughput retrans bytes %d, want %d", st.Down.RetransBytes, tc.retransBytes)
			}
		})
	}
}

// TestStreamProperty: whatever the segmentation, order, duplication and
// overlap of a byte stream, Stream returns its prefix.
func TestStreamProperty(t *testing.T) {
	const limit = 4096
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 300; iter++ {
		data := make([]byte, 1+rng.IntN(3*limit))
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		type sg struct{ off, n int }
		var segs []sg
		for off := 0; off < len(data); {
			n := min(1+rng.IntN(1460), len(data)-off)
			segs = append(segs, sg{off, n})
			off += n
		}
		// Duplicates and overlapping re-segmentations.
		for i := rng.IntN(10); i > 0; i-- {
			off := rng.IntN(len(data))
			segs = append(segs, sg{off, min(1+rng.IntN(2000), len(data)-off)})
		}
		rng.Shuffle(len(segs), func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
		v := newConv()
		v.sisn = rng.Uint32() // exercise sequence wrap-around
		v.s = v.sisn
		tb := New(Config{StreamBytes: limit})
		for _, p := range []schemas.PacketMeta{v.pkt(true, fS, 0), v.pkt(false, fS|fA, 0), v.pkt(true, fA, 0)} {
			tb.Update(&p)
		}
		var st *State
		for _, s := range segs {
			p := v.pkt(false, fA, 0)
			p.Seq = v.sisn + 1 + uint32(s.off)
			p.Payload = data[s.off : s.off+s.n]
			p.PayloadLen = uint32(s.n)
			st, _, _ = tb.Update(&p)
		}
		want := data[:min(len(data), limit)]
		if got := st.Stream(FromServer); !bytes.Equal(got, want) {
			t.Fatalf("iter %d: stream of %d bytes differs from the %d-byte prefix (%d segments)", iter, len(got), len(want), len(segs))
		}
	}
}

func TestStreamGapsAndStop(t *testing.T) {
	v := newConv()
	var c collector
	tb := New(Config{OnEnd: c.onEnd})
	for _, p := range []schemas.PacketMeta{v.pkt(true, fS, 0), v.pkt(false, fS|fA, 0), v.pkt(true, fA, 0)} {
		tb.Update(&p)
	}
	hello := []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	p := v.pkt(true, fA|fP, len(hello))
	p.Payload = hello[:10] // the capture snapshot holds only 10 bytes
	st, _, _ := tb.Update(&p)
	if got := st.Stream(FromClient); !bytes.Equal(got, hello[:10]) {
		t.Fatalf("stream %q, want the 10 captured bytes", got)
	}
	st.StopCollect(FromClient)
	if st.Stream(FromClient) != nil {
		t.Error("stream still returned after StopCollect")
	}
	if st.buf[FromClient] != nil || len(tb.bufs) != 1 {
		t.Errorf("StopCollect kept the buffer (held %v, free %d)", st.buf[FromClient] != nil, len(tb.bufs))
	}
	q := v.pkt(true, fA|fP, 5)
	tb.Update(&q)
	if st.buf[FromClient] != nil || len(tb.bufs) != 1 {
		t.Errorf("buffer not returned to the free list (held %v, free %d)", st.buf[FromClient] != nil, len(tb.bufs))
	}
}

func TestPortReuse(t *testing.T) {
	v := newConv()
	var c collector
	tb := New(Config{OnEnd: c.onEnd})
	steps := []schemas.PacketMeta{v.pkt(true, fS, 0), v.pkt(false, fS|fA, 0), v.pkt(true, fA, 0),
		v.pkt(true, fF|fA, 0), v.pkt(false, fF|fA, 0), v.pkt(true, fA, 0)}
	for i := range steps {
		tb.Update(&steps[i])
	}
	v.c += 1_000_000 // new ISN, within the closed-flow linger time
	syn := v.pkt(true, fS, 0)
	_, _, isNew := tb.Update(&syn)
	if !isNew {
		t.Fatal("SYN with a new ISN on a closed flow did not start a new flow")
	}
	if len(c.recs) != 1 || c.reasons[0] != EndFIN || c.recs[0].ConnState != "SF" || c.recs[0].EndReason != "fin" {
		t.Fatalf("ended %+v %v, want one SF flow ended by fin", c.recs, c.reasons)
	}
	// The retransmitted SYN (same ISN) stays in the new flow.
	v.c--
	syn2 := v.pkt(true, fS, 0)
	if _, _, isNew := tb.Update(&syn2); isNew || tb.Stats().Reused != 1 {
		t.Errorf("SYN retransmission: new=%v reused=%d", isNew, tb.Stats().Reused)
	}
}

func TestExpiry(t *testing.T) {
	var c collector
	tb := New(Config{OnEnd: c.onEnd})
	const s = int64(time.Second)
	t0 := int64(1_700_000_000) * s
	u := udpPkt(t0, cliAddr, 50000, srvAddr, 53, []byte{1})
	tb.Update(&u)
	v := newConv()
	v.t = t0
	syn := v.pkt(true, fS, 0)
	tb.Update(&syn)

	tb.Advance(t0 + 29*s)
	if len(c.recs) != 0 {
		t.Fatalf("expired early: %+v", c.recs)
	}
	tb.Advance(t0 + 31*s)
	if len(c.recs) != 1 || c.recs[0].ConnState != "S0" || c.reasons[0] != EndIdle {
		t.Fatalf("after 31 s: %+v, want the SYN-only flow idle", c.recs)
	}
	tb.Advance(t0 + 61*s)
	if len(c.recs) != 2 || c.recs[1].Proto != "udp" || tb.Len() != 0 {
		t.Fatalf("after 61 s: %+v, want the UDP flow too", c.recs)
	}
}

// TestResetLingerRace: server data arriving after an injected RST lands in
// the same flow (linger) and is recorded as a race.
func TestResetLingerRace(t *testing.T) {
	var c collector
	tb := New(Config{OnEnd: c.onEnd})
	v := newConv()
	for _, p := range []schemas.PacketMeta{v.pkt(true, fS, 0), v.pkt(false, fS|fA, 0), v.pkt(true, fA, 0), v.pkt(true, fA|fP, 517)} {
		tb.Update(&p)
	}
	rst := v.pkt(false, fR|fA, 0)
	rst.TTL, rst.IPID = 120, 0 // forged: other TTL, IP ID 0
	tb.Update(&rst)
	data := v.pkt(false, fA|fP, 1400)
	st, _, isNew := tb.Update(&data)
	if isNew {
		t.Fatal("server data after the RST started a new flow")
	}
	r := st.RST
	if r == nil {
		t.Fatal("RST left no evidence record")
	}
	if r.Count != 1 || r.N != 1 || r.ServerDataAfter != 1 || r.ServerPktsAfter != 1 {
		t.Errorf("rst evidence %+v", r)
	}
	if r.Pkts[0].TTL != 120 || r.ServerPre.LastTTL != 57 || r.ServerPre.Pkts != 1 || r.Pkts[0].LastClientDataNs == 0 {
		t.Errorf("rst packet %+v, server before %+v", r.Pkts[0], r.ServerPre)
	}
	tb.Advance(data.TimestampNs + int64(4*time.Second))
	if len(c.recs) != 0 {
		t.Fatal("closed flow ended before the linger time")
	}
	tb.Advance(data.TimestampNs + int64(6*time.Second))
	if len(c.recs) != 1 || c.reasons[0] != EndRST || c.recs[0].ConnState != "RSTR" || c.recs[0].RSTs != 1 {
		t.Fatalf("ended %+v %v", c.recs, c.reasons)
	}
}

func TestEviction(t *testing.T) {
	var c collector
	tb := New(Config{MaxFlows: 3, OnEnd: c.onEnd})
	pk := func(i int, ts int64) schemas.PacketMeta {
		return udpPkt(ts, cliAddr, uint16(50000+i), srvAddr, 53, []byte{1})
	}
	for i := 0; i < 3; i++ {
		p := pk(i, int64(i+1))
		tb.Update(&p)
	}
	p0 := pk(0, 10) // flow 0 active again: flow 1 is now the oldest
	tb.Update(&p0)
	p3 := pk(3, 11)
	tb.Update(&p3)
	if tb.Len() != 3 || len(c.recs) != 1 || c.reasons[0] != EndEvicted || c.recs[0].ClientPort != 50001 {
		t.Fatalf("len %d ended %+v %v, want flow 1 evicted", tb.Len(), c.recs, c.reasons)
	}
	if s := tb.Stats(); s.Evicted != 1 || s.Ended[EndEvicted] != 1 || c.recs[0].EndReason != "evicted" {
		t.Errorf("stats %+v", s)
	}
	tb.FlushAll()
	if tb.Len() != 0 || len(c.recs) != 4 || c.reasons[3] != EndEOF {
		t.Errorf("flush: len %d, ended %v", tb.Len(), c.reasons)
	}
}

func TestICMPErrorAttribution(t *testing.T) {
	var c collector
	tb := New(Config{OnEnd: c.onEnd})
	v := newConv()
	syn := v.pkt(true, fS, 0)
	st, _, _ := tb.Update(&syn)
	router := netip.MustParseAddr("192.0.2.1")
	icmp := schemas.PacketMeta{TimestampNs: syn.TimestampNs + 1e6, IPVersion: 4, Proto: schemas.ProtoICMP, Src: router, Dst: cliAddr, ICMPType: 3, ICMPCode: 13,
		Quoted: schemas.Quoted{Src: cliAddr, Dst: srvAddr, SrcPort: syn.SrcPort, DstPort: syn.DstPort, Proto: schemas.ProtoTCP}}
	got, d, isNew := tb.Update(&icmp)
	if got != st || isNew || d != FromServer {
		t.Fatalf("ICMP error: state %p (flow %p) new=%v dir=%v", got, st, isNew, d)
	}
	tb.FlushAll()
	r := c.recs[0]
	if len(c.recs) != 1 || r.ICMPType != 3 || r.ICMPCode != 13 || r.ConnState != "S0" || r.ServerPkts != 0 {
		t.Errorf("record %+v", r)
	}
	if tb.Stats().ICMPErrors != 1 {
		t.Errorf("stats %+v", tb.Stats())
	}
}

func TestFragments(t *testing.T) {
	tb := New(Config{})
	first := udpPkt(1, cliAddr, 50000, srvAddr, 443, make([]byte, 1472))
	first.Frag, first.IPID, first.IPLen = schemas.FragFirst, 77, 1500
	st, _, _ := tb.Update(&first)
	later := schemas.PacketMeta{TimestampNs: 2, IPVersion: 4, Proto: schemas.ProtoUDP, Src: cliAddr, Dst: srvAddr, IPID: 77, IPLen: 120, PayloadLen: 100, Frag: schemas.FragLater}
	if got, _, _ := tb.Update(&later); got != nil {
		t.Error("later fragment returned a state")
	}
	orphan := later
	orphan.IPID = 78
	tb.Update(&orphan)
	elsewhere := later // the same datagram's id, seen at another vantage
	elsewhere.Vantage = "ala-1"
	tb.Update(&elsewhere)
	ds := st.Dir[FromClient]
	if ds.Pkts != 1 || ds.IPBytes != 1620 {
		t.Errorf("client pkts %d bytes %d, want 1 and 1620", ds.Pkts, ds.IPBytes)
	}
	if s := tb.Stats(); s.FragLater != 3 || s.FragAttributed != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestInvalidPacket(t *testing.T) {
	tb := New(Config{})
	var p schemas.PacketMeta
	if st, _, _ := tb.Update(&p); st != nil || tb.Stats().Invalid != 1 {
		t.Error("packet without addresses was not skipped")
	}
}

func TestRecord(t *testing.T) {
	var c collector
	tb := New(Config{OnEnd: c.onEnd})
	v := newConv()
	for _, p := range []schemas.PacketMeta{v.pkt(true, fS, 0), v.pkt(false, fS|fA, 0), v.pkt(true, fA, 0),
		v.pkt(true, fA|fP, 100), v.pkt(false, fA|fP, 1000), v.pkt(false, fA|fP, 1000)} {
		tb.Update(&p)
	}
	tb.FlushAll()
	r := c.recs[0]
	if r.ClientIP != "10.0.0.1" || r.ServerIP != "93.184.216.34" || r.ClientPort != 40000 || r.ServerPort != 443 || r.Proto != "tcp" || r.IPVersion != 4 {
		t.Errorf("endpoints %+v", r)
	}
	if r.ClientPkts != 3 || r.ServerPkts != 3 || r.ClientPayload != 100 || r.ServerPayload != 2000 || r.ClientBytes != 3*40+100 {
		t.Errorf("counts %+v", r)
	}
	if r.ClientTTL != 64 || r.ServerTTL != 57 || r.ClientSyns != 1 || r.EndReason != "eof" || r.ConnState != "S1" || r.History != "ShADd" {
		t.Errorf("fields %+v", r)
	}
	if r.DataPhaseNs != 1_000_000 || r.GoodputBps != 2000*8*1e3 {
		t.Errorf("throughput: phase %d goodput %f", r.DataPhaseNs, r.GoodputBps)
	}
}

// TestSplitAndResume: Split ends the flows started before its time with
// EndSplit and their later packets start the next piece; a table told to
// Resume after the split record drops the packets that record holds, so
// it builds the same next piece from a replay that starts before the
// split.
func TestSplitAndResume(t *testing.T) {
	v := newConv()
	pkts := []schemas.PacketMeta{v.pkt(true, fS, 0), v.pkt(false, fS|fA, 0), v.pkt(true, fA, 0)}
	for range 9 {
		pkts = append(pkts, v.pkt(false, fA, 1000), v.pkt(true, fA, 0))
	}
	const at = 8 // packets before the split
	var a collector
	ta := New(Config{OnEnd: a.onEnd})
	for i := range pkts[:at] {
		ta.Update(&pkts[i])
	}
	young := udpPkt(pkts[at-1].TimestampNs, cliAddr, 5353, srvAddr, 53, []byte{1})
	ta.Update(&young)
	ta.Split(pkts[at-1].TimestampNs) // the TCP flow started before, the UDP one not
	if len(a.recs) != 1 || a.reasons[0] != EndSplit || a.recs[0].EndReason != "split" || a.recs[0].ClientPkts+a.recs[0].ServerPkts != at {
		t.Fatalf("split ended %d flows (%v), want the TCP flow with its %d packets", len(a.recs), a.reasons, at)
	}
	for i := range pkts[at:] {
		if _, _, isNew := ta.Update(&pkts[at+i]); isNew != (i == 0) {
			t.Fatalf("packet %d after the split: new flow %v", i, isNew)
		}
	}
	ta.FlushAll()
	var next schemas.FlowRecord
	for _, r := range a.recs[1:] {
		if r.Proto == "tcp" {
			next = r
		}
	}
	if next.FlowID == "" || next.FlowID == a.recs[0].FlowID || next.ClientPkts+next.ServerPkts != uint64(len(pkts)-at) {
		t.Fatalf("next piece %+v, want the %d packets after the split under another id", next, len(pkts)-at)
	}

	// The resumed run replays from packet 3, inside the split record.
	var b collector
	tb := New(Config{OnEnd: b.onEnd})
	k, ok := KeyOfRecord(&a.recs[0])
	if !ok {
		t.Fatalf("no key from record %+v", a.recs[0])
	}
	tb.Resume(k, a.recs[0].EndNs)
	for i := range pkts[3:] {
		tb.Update(&pkts[3+i])
	}
	tb.FlushAll()
	if s := tb.Stats(); s.Resumed != at-3 || len(b.recs) != 1 {
		t.Fatalf("resumed run dropped %d packets and ended %d flows, want %d and 1", s.Resumed, len(b.recs), at-3)
	}
	if b.recs[0] != next {
		t.Errorf("resumed run's piece differs from the original run's:\n%+v\n%+v", b.recs[0], next)
	}
}
