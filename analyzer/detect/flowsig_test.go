package detect

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/schemas"
)

// conv builds one TCP connection's packets between a client and a server.
type conv struct {
	t        int64
	pkts     []schemas.PacketMeta
	cseq     uint32
	sseq     uint32
	cid, sid uint32
}

const (
	syn = schemas.TCPSyn
	ack = schemas.TCPAck
	rst = schemas.TCPRst
	fin = schemas.TCPFin
	psh = schemas.TCPPsh
)

var (
	cli = netip.MustParseAddr("192.0.2.10")
	srv = netip.MustParseAddr("198.51.100.20")
)

func newConv() *conv { return &conv{t: 1_700_000_000e9, cseq: 1000, sseq: 5000, cid: 100, sid: 900} }

// c and s add a client or server packet after dt milliseconds.
func (v *conv) c(dt int64, flags uint8, n int) *schemas.PacketMeta { return v.add(false, dt, flags, n) }
func (v *conv) s(dt int64, flags uint8, n int) *schemas.PacketMeta { return v.add(true, dt, flags, n) }

func (v *conv) add(fromServer bool, dt int64, flags uint8, n int) *schemas.PacketMeta {
	v.t += dt * 1e6
	src, dst, sp, dp, ttl := cli, srv, uint16(40000), uint16(443), uint8(64)
	seq, ack, id := &v.cseq, v.sseq, &v.cid
	if fromServer {
		src, dst, sp, dp, ttl = srv, cli, 443, 40000, 52
		seq, ack, id = &v.sseq, v.cseq, &v.sid
	}
	*id++
	p := schemas.PacketMeta{TimestampNs: v.t, IPVersion: 4, Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Proto: schemas.ProtoTCP,
		TTL: ttl, IPID: *id, TCPFlags: flags, Seq: *seq, Ack: ack, Window: 500, PayloadLen: uint32(n)}
	if flags&syn != 0 {
		*seq++
	}
	*seq += uint32(n)
	v.pkts = append(v.pkts, p)
	return &v.pkts[len(v.pkts)-1]
}

func (v *conv) handshake() {
	v.c(0, syn, 0)
	v.s(30, syn|ack, 0)
	v.c(30, ack, 0)
}

// judge runs the packets through a flow table and classifies the flow.
func judge(t *testing.T, pkts []schemas.PacketMeta, nowNs int64) schemas.FlowRecord {
	t.Helper()
	cfg := Config{}.withDefaults()
	var r schemas.FlowRecord
	ended := 0
	tab := flow.New(flow.Config{OnEnd: func(st *flow.State, _ flow.EndReason) {
		ended++
		r = schemas.FlowRecord{}
		st.Record(&r)
		classify(&cfg, st, &r, nowNs, func(string, string) (uint8, bool) { return 0, false })
	}})
	for i := range pkts {
		tab.Update(&pkts[i])
	}
	tab.FlushAll()
	if ended != 1 {
		t.Fatalf("%d flows, want 1", ended)
	}
	return r
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name    string
		build   func(v *conv)
		outcome string
		sig     string
		check   func(t *testing.T, r *schemas.FlowRecord)
	}{{
		name: "SYN blackholed",
		build: func(v *conv) {
			v.c(0, syn, 0)
			v.cseq--
			for range 3 {
				v.c(1000, syn, 0)
				v.cseq--
			}
		},
		outcome: OutcomeTimeout, sig: "post_syn:timeout",
	}, {
		name: "SYN answered by RST+ACK",
		build: func(v *conv) {
			v.c(0, syn, 0)
			v.s(20, rst|ack, 0)
		},
		outcome: OutcomeReset, sig: "post_syn:rst+ack",
	}, {
		name: "ClientHello blackholed and retransmitted",
		build: func(v *conv) {
			v.handshake()
			v.c(1, psh|ack, 600)
			for range 3 {
				v.cseq -= 600
				v.c(1000, psh|ack, 600)
			}
		},
		outcome: OutcomeTimeout, sig: "post_psh:timeout",
	}, {
		name: "GFW burst racing the real server",
		build: func(v *conv) {
			v.handshake()
			v.c(1, psh|ack, 600)
			for i, f := range []uint8{rst, rst | ack, rst | ack, rst | ack} {
				p := v.s(1, f, 0)
				v.sseq = p.Seq // resets carry no data
				p.TTL, p.IPID = 40+uint8(i)*20, 30000+uint32(i)*7919
				p.Seq += uint32(i) * 1460
				if i == 1 {
					p.Ack = 0 // an RST+ACK acknowledging nothing
				}
			}
			v.s(20, psh|ack, 1400) // the real ServerHello arrives after "its" reset
		},
		outcome: OutcomeReset, sig: "post_psh:rst;rst+ack;x4",
		check: func(t *testing.T, r *schemas.FlowRecord) {
			if !r.RSTRace || !r.RSTSeqChange || r.RSTTTLDelta < 5 || !r.RSTAck0 || !r.RSTBurst || !r.RSTIPIDJump {
				t.Errorf("evidence %+v, want race, seq change, TTL delta, ack 0, burst, IP ID jump", r)
			}
			if r.Injection < 0.9 || r.Fingerprint == "" {
				t.Errorf("injection %.2f fingerprint %q", r.Injection, r.Fingerprint)
			}
		},
	}, {
		name: "copying injector still caught by the race",
		build: func(v *conv) {
			v.handshake()
			v.c(1, psh|ack, 600)
			p := v.s(1, rst|ack, 0)
			p.IPID = v.sid - 1 // copies the server's last IP ID, and its TTL
			v.s(20, psh|ack, 1400)
		},
		outcome: OutcomeReset, sig: "post_psh:rst+ack",
		check: func(t *testing.T, r *schemas.FlowRecord) {
			if r.RSTTTLDelta != 0 {
				t.Errorf("TTL delta %d for a copied TTL", r.RSTTTLDelta)
			}
			if !r.RSTRace || !r.RSTIPIDJump || r.Injection < 0.7 {
				t.Errorf("race %v, IP ID copy %v, injection %.2f: absent TTL evidence must not veto", r.RSTRace, r.RSTIPIDJump, r.Injection)
			}
		},
	}, {
		name: "server resets after a complete exchange",
		build: func(v *conv) {
			v.handshake()
			v.c(1, psh|ack, 300)
			v.s(30, psh|ack, 1400)
			v.s(0, psh|ack, 1400)
			v.c(30, ack, 0)
			v.c(1, fin|ack, 0)
			v.s(30, rst|ack, 0)
		},
		outcome: OutcomeOK,
		check: func(t *testing.T, r *schemas.FlowRecord) {
			if r.Injection >= 0.3 {
				t.Errorf("injection %.2f on a benign reset", r.Injection)
			}
		},
	}, {
		name: "full exchange closed by FINs",
		build: func(v *conv) {
			v.handshake()
			v.c(1, psh|ack, 300)
			v.s(30, psh|ack, 1400)
			v.c(30, fin|ack, 0)
			v.s(1, fin|ack, 0)
			v.c(30, ack, 0)
		},
		outcome: OutcomeOK,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newConv()
			tc.build(v)
			r := judge(t, v.pkts, v.t+10e9)
			if r.Outcome != tc.outcome || tc.sig != "" && r.Signature != tc.sig {
				t.Fatalf("outcome %s signature %q, want %s %q (history %s)", r.Outcome, r.Signature, tc.outcome, tc.sig, r.History)
			}
			if tc.check != nil {
				tc.check(t, &r)
			}
		})
	}
}

// TestFingerprintStable: the same injector behaviour gives the same
// fingerprint whether it sends one reset or several of the same kind.
func TestFingerprintStable(t *testing.T) {
	mk := func(n int) string {
		v := newConv()
		v.handshake()
		v.c(1, psh|ack, 600)
		for range n {
			p := v.s(1, rst|ack, 0)
			v.sseq = p.Seq
			p.TTL = 100
		}
		return judge(t, v.pkts, v.t+10e9).Fingerprint
	}
	if a, b := mk(1), mk(3); a == "" || a != b {
		t.Errorf("fingerprints %q and %q, want equal and set", a, b)
	}
}

// TestAddressMemory: the names seen on an address and the TTL of its
// SYN-ACKs are remembered for a day after it was last seen, then
// forgotten, so that a capture running for months keeps them bounded.
func TestAddressMemory(t *testing.T) {
	s := New(Config{}, nil)
	// flow ends a handshake and a request naming name, to server, at
	// packet time start.
	flow1 := func(start int64, server netip.Addr, name string) {
		v := newConv()
		v.t = start
		v.handshake()
		v.c(10, psh|ack, 300)
		v.s(30, psh|ack, 1000)
		tab := flow.New(flow.Config{OnEnd: func(st *flow.State, _ flow.EndReason) {
			var r schemas.FlowRecord
			st.Record(&r)
			r.SNI = name // as the engine's ClientHello parser would
			s.OnFlowEnd(st, &r, st.LastNs, func(*schemas.Finding) {})
		}})
		for i := range v.pkts {
			p := &v.pkts[i]
			if p.Src == srv {
				p.Src = server
			} else {
				p.Dst = server
			}
			tab.Update(p)
		}
		tab.FlushAll()
	}
	other := netip.MustParseAddr("198.51.100.99")
	seen := func() bool {
		_, ttl := s.ttlOf("", srv.String())
		names := s.collateral(srv.String())
		if ttl != slices.Contains(names, "old.example") {
			t.Fatalf("TTL remembered %v but names %q: both or neither", ttl, names)
		}
		return ttl
	}
	t0 := int64(1_700_000_000e9)
	flow1(t0, srv, "old.example")
	if !seen() {
		t.Fatal("a flow's name and TTL not remembered")
	}
	flow1(t0+int64(AddressMemory)/2, other, "other.example")
	if !seen() {
		t.Error("forgotten half a day later")
	}
	flow1(t0+3*int64(AddressMemory), other, "other.example")
	if seen() {
		t.Error("still remembered three days later")
	}
}
