package flow

import (
	"testing"

	"github.com/tamperscope/tamperscope/schemas"
)

// step is one packet of a scripted conversation; skew shifts the sender's
// sequence number first (to make repeated control packets differ).
type step struct {
	fromClient bool
	flags      uint8
	n          int
	skew       uint32
	window0    bool
}

func C(flags uint8, n int) step { return step{fromClient: true, flags: flags, n: n} }
func S(flags uint8, n int) step { return step{fromClient: false, flags: flags, n: n} }

func runSteps(t *testing.T, v *conv, steps []step) *State {
	t.Helper()
	tb := New(Config{})
	var st *State
	for i, s := range steps {
		if s.fromClient {
			v.c += s.skew
		} else {
			v.s += s.skew
		}
		p := v.pkt(s.fromClient, s.flags, s.n)
		if s.window0 {
			p.Window = 0
		}
		got, _, isNew := tb.Update(&p)
		if got == nil {
			t.Fatalf("step %d: no state", i)
		}
		if st != nil && isNew {
			t.Fatalf("step %d: packet started a new flow", i)
		}
		st = got
	}
	return st
}

// The expectations are Zeek's: the btest baselines quoted in REFERENCES.md
// section 3 (R OTH, SR RSTOS0, SaR RSTOS0, SaFR OTH, ShADadFf SF, ^hADdFaf)
// and main.zeek's conn_state rules for the rest.
func TestConnStateAndHistory(t *testing.T) {
	rep := func(s step, k int) []step {
		out := make([]step, k)
		for i := range out {
			out[i] = s
		}
		return out
	}
	hs := []step{C(fS, 0), S(fS|fA, 0), C(fA, 0)}
	join := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	retrans := step{fromClient: true, flags: fA | fP, n: 100, skew: ^uint32(99)} // resend the previous 100 bytes
	cases := []struct {
		name    string
		steps   []step
		state   string
		history string
	}{
		{"syn only", []step{C(fS, 0)}, "S0", "S"},
		{"syn retransmitted", []step{C(fS, 0), {fromClient: true, flags: fS, skew: ^uint32(0)}, {fromClient: true, flags: fS, skew: ^uint32(0)}}, "S0", "S"},
		{"full close", join(hs, []step{C(fA|fP, 10), S(fA, 0), S(fA|fP, 20), C(fF|fA, 0), S(fF|fA, 0), C(fA, 0)}), "SF", "ShADadFf"},
		{"rejected", []step{C(fS, 0), S(fR|fA, 0)}, "REJ", "Sr"},
		{"lone rst", []step{C(fR, 0)}, "OTH", "R"},
		{"syn then rst", []step{C(fS, 0), C(fR, 0)}, "RSTOS0", "SR"},
		{"syn ack-only reply then rst", []step{C(fS, 0), S(fA, 0), C(fR, 0)}, "RSTOS0", "SaR"},
		{"syn fin then rst", []step{C(fS, 0), S(fA, 0), C(fF|fA, 0), C(fR, 0)}, "OTH", "SaFR"},
		{"syn synack", []step{C(fS, 0), S(fS|fA, 0)}, "S1", "Sh"},
		{"established", hs, "S1", "ShA"},
		{"server reset after request", join(hs, []step{C(fA|fP, 50), S(fR|fA, 0)}), "RSTR", "ShADr"},
		{"client abort", join(hs, []step{C(fR|fA, 0)}), "RSTO", "ShAR"},
		{"syn then fin", []step{C(fS, 0), C(fF, 0)}, "SH", "SF"},
		{"originator close only", join(hs, []step{C(fF|fA, 0)}), "S2", "ShAF"},
		{"responder close only", join(hs, []step{S(fF|fA, 0)}), "S3", "ShAf"},
		{"two resets same seq", join(hs, []step{S(fR|fA, 0), S(fR|fA, 0)}), "RSTR", "ShAr"},
		{"two resets new seq", join(hs, []step{S(fR|fA, 0), {flags: fR | fA, skew: 1460}}), "RSTR", "ShArr"},
		{"fin repeated same seq", join(hs, []step{C(fF|fA, 0), {fromClient: true, flags: fF | fA, skew: ^uint32(0)}}), "S2", "ShAF"},
		{"retransmission", join(hs, []step{C(fA|fP, 100), retrans}), "S1", "ShADT"},
		{"ten retransmissions", join(hs, []step{C(fA|fP, 100)}, rep(retrans, 10)), "S1", "ShADTT"},
		{"zero window", join(hs, []step{C(fA|fP, 10), {flags: fA, window0: true}}), "S1", "ShADaw"},
		{"syn+fin", []step{C(fS|fF, 0)}, "SH", "Q"},
		{"fin+rst", join(hs, []step{S(fF|fR|fA, 0)}), "RSTR", "ShAi"},
		{"midstream client data", []step{C(fA|fP, 100)}, "OTH", "D"},
		{"midstream server data", []step{S(fA|fP, 100)}, "OTH", "^d"},
		{"synack first then reset", []step{S(fS|fA, 0), S(fR, 0)}, "RSTRH", "^hr"},
		{"synack first then fin", []step{S(fS|fA, 0), S(fF|fA, 0)}, "SHR", "^hf"},
		{"missing syn", []step{S(fS|fA, 0), C(fA, 0), C(fA|fP, 98), S(fA|fP, 1400), C(fF|fA, 0), S(fA, 0), S(fF|fA, 0)}, "SF", "^hADdFaf"},
		{"content gap", join(hs, []step{C(fA|fP, 100), {flags: fA, skew: 0}, {fromClient: true, flags: fA | fP, n: 100, skew: 500}, S(fA, 0)}), "S1", "ShADaG"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := runSteps(t, newConv(), tc.steps)
			if got := st.ConnState(); got != tc.state {
				t.Errorf("conn_state = %s, want %s", got, tc.state)
			}
			if got := st.History(); got != tc.history {
				t.Errorf("history = %q, want %q", got, tc.history)
			}
		})
	}
}

func TestUDPConnState(t *testing.T) {
	dns := []byte{1, 2, 3}
	cases := []struct {
		name    string
		pkts    []schemas.PacketMeta
		state   string
		history string
		client  uint16
	}{
		{"query and answer", []schemas.PacketMeta{
			udpPkt(1, cliAddr, 53000, srvAddr, 53, dns), udpPkt(2, srvAddr, 53, cliAddr, 53000, dns)}, "SF", "Dd", 53000},
		{"unanswered", []schemas.PacketMeta{udpPkt(1, cliAddr, 53000, srvAddr, 53, dns)}, "S0", "D", 53000},
		{"answer only", []schemas.PacketMeta{udpPkt(1, srvAddr, 53, cliAddr, 53000, dns)}, "SHR", "^d", 53000},
		{"both ephemeral: first sender", []schemas.PacketMeta{udpPkt(1, srvAddr, 40000, cliAddr, 50000, dns)}, "S0", "D", 40000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := New(Config{})
			var st *State
			for i := range tc.pkts {
				st, _, _ = tb.Update(&tc.pkts[i])
			}
			if got := st.ConnState(); got != tc.state {
				t.Errorf("conn_state = %s, want %s", got, tc.state)
			}
			if got := st.History(); got != tc.history {
				t.Errorf("history = %q, want %q", got, tc.history)
			}
			if st.Client.Port() != tc.client {
				t.Errorf("client port = %d, want %d", st.Client.Port(), tc.client)
			}
		})
	}
}
