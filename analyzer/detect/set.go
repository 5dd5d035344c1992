package detect

import (
	"cmp"
	"math"
	"net/netip"
	"slices"

	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/internal/recent"
	"github.com/tamperscope/tamperscope/schemas"
)

// Set runs the per-flow classifier on every flow that ends and the
// cross-flow rules on every window of packet time once it has closed.
// Flows of each vantage are judged apart: what one vantage sees of an
// address says nothing of another's path to it.
type Set struct {
	cfg     Config
	namesOf func(netip.Addr) []string
	wins    map[winKey]*window
	oldest  int64                                    // start of the oldest window in wins; math.MaxInt64 when none
	ipNames *recent.Map[string, map[string]struct{}] // server IP -> names seen in flows
	ttl     *recent.Map[vantageAddr, uint8]          // TTL of the server's SYN-ACKs
	deferTo func(*Digest)                            // DeferCrossAddress
}

// winKey names a window: its start and the vantage of its flows.
type winKey struct {
	start   int64
	vantage string
}

func (a winKey) compare(b winKey) int {
	return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.vantage, b.vantage))
}

type vantageAddr struct{ vantage, ip string }

// New returns a detector set. namesOf gives the names DNS answers mapped
// to an address (collateral of IP blocks); it may be nil.
func New(cfg Config, namesOf func(netip.Addr) []string) *Set {
	if namesOf == nil {
		namesOf = func(netip.Addr) []string { return nil }
	}
	return &Set{
		cfg:     cfg.withDefaults(),
		namesOf: namesOf,
		wins:    map[winKey]*window{},
		oldest:  math.MaxInt64,
		ipNames: recent.New[string, map[string]struct{}](AddressMemory, MaxAddresses),
		ttl:     recent.New[vantageAddr, uint8](AddressMemory, MaxAddresses),
	}
}

// OnFlowEnd judges a flow that ended, fills the detector fields of r and
// remembers its summary for the cross-flow rules; windows that closed
// before nowNs are judged and their findings emitted.
func (s *Set) OnFlowEnd(st *flow.State, r *schemas.FlowRecord, nowNs int64, emit func(*schemas.Finding)) {
	classify(&s.cfg, st, r, nowNs, s.ttlOf)
	if st.Proto == schemas.ProtoTCP && st.Dir[flow.FromServer].SYNs > 0 && st.Dir[flow.FromServer].Net.Pkts > 0 {
		s.ttl.Put(nowNs, vantageAddr{r.Vantage, r.ServerIP}, st.Dir[flow.FromServer].Net.FirstTTL)
	}
	if a := st.Server.Addr(); a.IsMulticast() || a.IsUnspecified() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return // nobody answers a multicast or broadcast "flow": nothing to judge
	}
	sum := summarize(st, r)
	if sum.name != "" {
		names := s.ipNames.Keep(nowNs, r.ServerIP, newNameSet)
		if _, ok := names[sum.name]; !ok && len(names) < 1000 {
			names[sum.name] = struct{}{}
		}
	}
	w := int64(s.cfg.Window)
	k := winKey{s.cfg.WindowStart(r.StartNs), sum.vantage}
	win := s.wins[k]
	if win == nil {
		win = &window{startNs: k.start, endNs: k.start + w, vantage: k.vantage}
		s.wins[k] = win
		s.oldest = min(s.oldest, k.start)
	}
	win.add(sum)
	s.Advance(nowNs, emit)
}

// Advance judges the windows closed by packet time nowNs and emits their
// findings. A flow's end does it; call it when packet time moves without
// one (Engine.Advance).
func (s *Set) Advance(nowNs int64, emit func(*schemas.Finding)) {
	// Windows close oldest first: while the oldest is open, all are.
	if s.closed(s.oldest, nowNs) {
		s.judgeWindows(func(k winKey) bool { return s.closed(k.start, nowNs) }, emit)
	}
}

func newNameSet() map[string]struct{} { return map[string]struct{}{} }

// closed reports whether the window starting at startNs is over by packet
// time nowNs: no flow starting in it can still be open (flows live at most
// a TCP timeout), and residual effects have had room.
func (s *Set) closed(startNs, nowNs int64) bool {
	w := int64(s.cfg.Window)
	grace := w + int64(s.cfg.ResidualWindow) + int64(flow.DefaultTCPTimeout)
	return nowNs-startNs > grace+w
}

// JudgedThroughNs returns the start of the latest window that, by packet
// time nowNs, is judged with every window before it (a window without
// flows has nothing to judge): closed, and no earlier window still
// waiting for a flow to end before it is judged.
func (s *Set) JudgedThroughNs(nowNs int64) int64 {
	w := int64(s.cfg.Window)
	through := s.cfg.WindowStart(nowNs)
	for !s.closed(through, nowNs) {
		through -= w
	}
	if oldest := s.OldestWindowNs(); oldest <= through {
		through = oldest - w
	}
	return through
}

// OldestWindowNs returns the start of the oldest window not judged yet,
// or math.MaxInt64 when every window is: the flows of that window and
// later ones are all the Set still has to judge.
func (s *Set) OldestWindowNs() int64 { return s.oldest }

// Finish judges every remaining window (end of input).
func (s *Set) Finish(nowNs int64, emit func(*schemas.Finding)) {
	s.judgeWindows(func(winKey) bool { return true }, emit)
}

// judgeWindows judges and forgets the windows closed reports, oldest
// first, vantages in order.
func (s *Set) judgeWindows(closed func(winKey) bool, emit func(*schemas.Finding)) {
	var keys []winKey
	for k := range s.wins {
		if closed(k) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, winKey.compare)
	for _, k := range keys {
		s.judge(s.wins[k], emit)
		delete(s.wins, k)
	}
	if len(keys) > 0 {
		s.oldest = math.MaxInt64
		for k := range s.wins {
			s.oldest = min(s.oldest, k.start)
		}
	}
}

func (s *Set) ttlOf(vantage, ip string) (uint8, bool) {
	return s.ttl.Get(vantageAddr{vantage, ip})
}

// collateral lists every name seen on ip: in ClientHellos, HTTP Hosts and
// QUIC Initials of any flow, and in DNS answers.
func (s *Set) collateral(ip string) []string {
	set := map[string]struct{}{}
	names, _ := s.ipNames.Get(ip)
	for n := range names {
		set[n] = struct{}{}
	}
	if a, err := netip.ParseAddr(ip); err == nil {
		for _, n := range s.namesOf(a) {
			set[n] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
