package detect

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/tamperscope/tamperscope/schemas"
)

// Facts is what the cross-address rules (ip_blocking, throttling) need to
// know of every address of a window. A Set knows those of its own flows;
// a stream partitioned by server address merges the facts of every
// partition (Aggregate).
type Facts struct {
	// OKNames: per server address, the sorted names of its flows that
	// succeeded.
	OKNames map[string][]string `json:"ok_names,omitempty"`
	// Rates: per server address, the steady rates (bit/s) of its
	// transfers big enough to show what the path can do.
	Rates map[string][]float64 `json:"rates,omitempty"`
	// Candidates counts the bulk transfers long enough to show a plateau.
	Candidates int `json:"candidates"`
}

// ipFacts is what one address adds to a window's Facts.
type ipFacts struct {
	okNames    []string // sorted, unique
	rates      []float64
	candidates int
}

// factsOfIP works out the Facts of one address's flows.
func (j *judgement) factsOfIP(fs []*summary) ipFacts {
	var f ipFacts
	for _, s := range fs {
		if s.ok() && s.name != "" {
			f.okNames = append(f.okNames, s.name)
		}
		if j.control(s) {
			f.rates = append(f.rates, s.rateBps)
		}
		if j.candidate(s) {
			f.candidates++
		}
	}
	slices.Sort(f.okNames)
	f.okNames = slices.Compact(f.okNames)
	return f
}

// add puts the facts of address ip into f.
func (f *Facts) add(ip string, o *ipFacts) {
	if len(o.okNames) > 0 {
		f.OKNames[ip] = o.okNames
	}
	if len(o.rates) > 0 {
		f.Rates[ip] = o.rates
	}
	f.Candidates += o.candidates
}

// merge adds o's addresses to f.
func (f *Facts) merge(o *Facts) {
	for ip, ns := range o.OKNames {
		all := append(slices.Clone(f.OKNames[ip]), ns...)
		slices.Sort(all)
		f.OKNames[ip] = slices.Compact(all)
	}
	for ip, rs := range o.Rates {
		f.Rates[ip] = append(f.Rates[ip], rs...)
	}
	f.Candidates += o.Candidates
}

// Digest is one window of packet time judged without its cross-address
// rules: the window's Facts, and the addresses those rules could report,
// each with the flows the rules read and its collateral. A partition of a
// stream keyed by server address writes one per window it closes;
// Aggregate turns the digests of every partition into the findings one
// Set over the whole stream would have made. Its JSON encoding is what
// datasets store.
type Digest struct {
	WindowStartNs int64            `json:"window_start_ns"`
	Vantage       string           `json:"vantage,omitempty"`
	Facts         Facts            `json:"facts"`
	Addresses     []PendingAddress `json:"addresses,omitempty"`
}

// PendingAddress is an address of a Digest that a cross-address rule
// could report.
type PendingAddress struct {
	IP         string     `json:"ip"`
	Collateral []string   `json:"collateral,omitempty"`
	Flows      []*summary `json:"flows"`
}

// pendingFlows returns the flows of one address the cross-address rules
// read, or nil when they could not report it: the flows not consumed by
// earlier rules when the address looks blocked, its transfers when one of
// them is a throttling candidate.
func (j *judgement) pendingFlows(flows []*summary) []*summary {
	_, _, blockable := j.blockable(flows)
	var out []*summary
	bulk := false
	for _, f := range flows {
		if j.consumed[f] || !blockable && !j.control(f) {
			continue
		}
		out = append(out, f)
		bulk = bulk || j.candidate(f)
	}
	if !blockable && !bulk {
		return nil
	}
	return out
}

// DeferCrossAddress makes the Set hand each window it closes to fn as a
// Digest instead of running the cross-address rules itself: for one
// partition of a stream keyed by server address, whose other addresses
// live in other partitions.
func (s *Set) DeferCrossAddress(fn func(*Digest)) { s.deferTo = fn }

// Aggregate runs the cross-address rules over the digests of every
// partition of a stream, window by window in time order, and emits their
// findings. All digests of a window are judged together, those of a
// window a partition judged twice (a flow that outlived the first
// judgement) included; a digest must not be given twice.
func Aggregate(cfg Config, digests []*Digest, emit func(*schemas.Finding)) {
	cfg = cfg.withDefaults()
	byWin := map[winKey][]*Digest{}
	for _, d := range digests {
		k := winKey{d.WindowStartNs, d.Vantage}
		byWin[k] = append(byWin[k], d)
	}
	for _, k := range slices.SortedFunc(maps.Keys(byWin), winKey.compare) {
		facts := Facts{OKNames: map[string][]string{}, Rates: map[string][]float64{}}
		w := &window{startNs: k.start, endNs: k.start + int64(cfg.Window), vantage: k.vantage, byIP: map[string][]*summary{}}
		collateral := map[string][]string{}
		for _, d := range byWin[k] {
			facts.merge(&d.Facts)
			for _, a := range d.Addresses {
				w.byIP[a.IP] = append(w.byIP[a.IP], a.Flows...)
				all := append(collateral[a.IP], a.Collateral...)
				slices.Sort(all)
				collateral[a.IP] = slices.Compact(all)
			}
		}
		j := &judgement{cfg: &cfg, win: w, consumed: map[*summary]bool{}, emit: emit, facts: &facts,
			collateral: func(ip string) []string { return append([]string{}, collateral[ip]...) }}
		for _, ip := range w.ips() {
			slices.SortFunc(w.byIP[ip], byStart)
			for _, r := range rules {
				if r.cross {
					r.run(j, ip, w.byIP[ip])
				}
			}
		}
	}
}

// summaryJSON is a summary's stored form in a Digest.
type summaryJSON struct {
	ID         string   `json:"id"`
	Vantage    string   `json:"vantage,omitempty"`
	StartNs    int64    `json:"start_ns"`
	EndNs      int64    `json:"end_ns"`
	Proto      string   `json:"proto,omitempty"`
	ServerIP   string   `json:"server_ip"`
	ServerPort uint16   `json:"server_port"`
	Name       string   `json:"name,omitempty"`
	Trigger    string   `json:"trigger,omitempty"`
	Outcome    string   `json:"outcome"`
	Stage      string   `json:"stage,omitempty"`
	Injection  float64  `json:"injection,omitempty"`
	Fp         string   `json:"fingerprint,omitempty"`
	Evidence   []string `json:"evidence,omitempty"`
	Issuer     string   `json:"issuer,omitempty"`
	Bytes      uint64   `json:"bytes,omitempty"`
	RateBps    float64  `json:"rate_bps,omitempty"`
	Retrans    float64  `json:"retrans,omitempty"`
	DataNs     int64    `json:"data_ns,omitempty"`
	AvgSeg     float64  `json:"avg_seg,omitempty"`
	SynSeen    bool     `json:"syn_seen,omitempty"`
	BothWays   bool     `json:"both_ways,omitempty"`
	SrvRST     bool     `json:"server_rst,omitempty"`
}

func (s *summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(summaryJSON{
		ID: s.id, Vantage: s.vantage, StartNs: s.startNs, EndNs: s.endNs, Proto: s.proto, ServerIP: s.serverIP, ServerPort: s.serverPort,
		Name: s.name, Trigger: s.trigger, Outcome: s.outcome, Stage: s.stage, Injection: s.injection, Fp: s.fp,
		Evidence: s.evidence, Issuer: s.issuer, Bytes: s.bytes, RateBps: s.rateBps, Retrans: s.retrans,
		DataNs: s.dataNs, AvgSeg: s.avgSeg, SynSeen: s.synSeen, BothWays: s.bothWays, SrvRST: s.srvRST,
	})
}

func (s *summary) UnmarshalJSON(b []byte) error {
	var v summaryJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = summary{
		id: v.ID, vantage: v.Vantage, startNs: v.StartNs, endNs: v.EndNs, proto: v.Proto, serverIP: v.ServerIP, serverPort: v.ServerPort,
		name: v.Name, trigger: v.Trigger, outcome: v.Outcome, stage: v.Stage, injection: v.Injection, fp: v.Fp,
		evidence: v.Evidence, issuer: v.Issuer, bytes: v.Bytes, rateBps: v.RateBps, retrans: v.Retrans,
		dataNs: v.DataNs, avgSeg: v.AvgSeg, synSeen: v.SynSeen, bothWays: v.BothWays, srvRST: v.SrvRST,
	}
	return nil
}
