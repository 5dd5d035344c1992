package analyzer

import (
	"fmt"
	"maps"

	"github.com/tamperscope/tamperscope/analyzer/detect"
	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/analyzer/quic"
	"github.com/tamperscope/tamperscope/schemas"
)

// Output receives what the engine produces. Calls come from the goroutine
// that calls Process and Close; the records are reused after the call
// returns.
type Output interface {
	Flow(r *schemas.FlowRecord) error
	Finding(f *schemas.Finding) error
}

// Config configures an Engine. The zero value works.
type Config struct {
	// Flow configures the flow table (timeouts, flow cap, stream bytes).
	Flow flow.Config
	// Detect configures the detectors.
	Detect detect.Config
	// Skip, when set, is asked about every flow that ends, before the
	// detectors see it; true drops the flow. A consumer resuming a stream
	// uses it to drop the tail of a flow it wrote before the restart.
	Skip func(r *schemas.FlowRecord) bool
	// Digests, when set, receives the digest of every window of packet
	// time the detectors close, and the engine leaves the cross-address
	// detectors (ip_blocking, throttling) to detect.Aggregate: for one
	// partition of a stream keyed by server address, which does not see
	// the other addresses. An error stops the engine as an Output error
	// does.
	Digests func(d *detect.Digest) error
}

// Stats counts what the engine did.
type Stats struct {
	Packets  uint64
	Flow     flow.Stats
	Parse    ParseStats
	Findings map[string]int // by kind
	// Outcomes counts the flows written by outcome and failure stage
	// (schemas.FlowRecord.Outcome and .Stage): the per-flow signal, as
	// flows end, that findings attribute once their window is judged.
	Outcomes map[Outcome]uint64
}

// Outcome is a flow's outcome and the stage it failed at ("" for none).
type Outcome struct{ Outcome, Stage string }

// Engine turns packets into flow records and findings. It is not safe for
// concurrent use, the Prepare methods apart (prepare.go): shard by
// flow.Key.Hash (or by server address) and run one engine per shard.
type Engine struct {
	table   *flow.Table
	apps    apps
	dns     *dnsNames
	det     *detect.Set
	out     Output
	err     error // first output error: the engine stops producing after it
	rec     schemas.FlowRecord
	nowNs   int64
	parse   ParseStats
	quicDec quic.Decoder
	pkts    uint64
	counts  map[string]int
	ends    map[Outcome]uint64
	skip    func(r *schemas.FlowRecord) bool
	keyed   []flow.KeyedPacket // Process's scratch: the batch's flow keys
	prep    prepared
	// hello is the ClientHello Prepare parsed from helloOf, the payload
	// of the packet Process is at; nil if none.
	hello   *helloFields
	helloOf []byte
}

// New returns an engine writing to out.
func New(cfg Config, out Output) *Engine {
	e := &Engine{out: out, dns: newDNSNames(), counts: map[string]int{}, ends: map[Outcome]uint64{}, skip: cfg.Skip}
	e.det = detect.New(cfg.Detect, e.dns.namesOf)
	if cfg.Digests != nil {
		e.det.DeferCrossAddress(func(d *detect.Digest) {
			if e.err == nil {
				if err := cfg.Digests(d); err != nil {
					e.err = fmt.Errorf("write window digest: %w", err)
				}
			}
		})
	}
	fc := cfg.Flow
	fc.OnEnd = e.onEnd
	e.table = flow.New(fc)
	return e
}

// Process runs every packet of b through the engine. It returns the first
// error of the Output, after which the engine drops what it produces.
func (e *Engine) Process(b *schemas.PacketBatch) error {
	pb := e.prep.take(b)
	var keys []flow.KeyedPacket
	var hellos []preparedHello
	if pb != nil {
		keys, hellos = pb.keys, pb.hellos
	} else {
		e.keyed = flow.KeysOf(e.keyed, b.Packets)
		keys = e.keyed
	}
	// Keys first, for the whole batch: the table's index lookups then find
	// their slots in the cache.
	for i := range keys {
		e.table.Prefetch(&keys[i])
	}
	for i := range b.Packets {
		p := &b.Packets[i]
		e.pkts++
		// The table expires flows itself as packet time passes.
		e.nowNs = max(e.nowNs, p.TimestampNs)
		st, dir, isNew := e.table.UpdateKeyed(p, &keys[i])
		if st == nil {
			continue
		}
		a := e.apps.of(st, isNew)
		if len(p.Payload) > 0 {
			for len(hellos) > 0 && hellos[0].i < i {
				hellos = hellos[1:]
			}
			if e.hello = nil; len(hellos) > 0 && hellos[0].i == i {
				e.hello, e.helloOf = &hellos[0].fields, p.Payload
			}
			e.parsePayload(st, a, dir, p)
		}
	}
	e.hello, e.helloOf = nil, nil
	if pb != nil {
		e.prep.give(pb)
	}
	return e.err
}

// Close ends every open flow (end of input), runs the cross-flow detectors
// over everything seen and returns the first Output error.
func (e *Engine) Close() error {
	e.EndFlows()
	e.det.Finish(e.nowNs, e.emit)
	return e.err
}

// EndFlows ends every open flow (end of input), the first half of Close:
// after it the engine writes no more flow records, only the findings of
// the windows Close judges, so a caller can finish the flow files
// meanwhile.
func (e *Engine) EndFlows() error {
	e.table.FlushAll()
	return e.err
}

// Advance moves packet time to nowNs without a packet, expiring flows
// idle past their timeouts and judging the detection windows closed by
// then: for a stream whose packets are split over several engines, when
// one engine has seen less of the time than another (a clock message, the
// end of the stream).
func (e *Engine) Advance(nowNs int64) error {
	if nowNs > e.nowNs {
		e.nowNs = nowNs
		e.table.Advance(nowNs)
		e.det.Advance(nowNs, e.emit)
	}
	return e.err
}

// Split ends every flow that started before beforeNs (flow.Table.Split):
// their records so far are written, with end reason "split", and their
// later packets start new flows.
func (e *Engine) Split(beforeNs int64) error {
	e.table.Split(beforeNs)
	return e.err
}

// Resume tells the engine that r, a flow record with end reason "split",
// was written by an earlier run over the same stream: the packets it
// holds are dropped when they come again (flow.Table.Resume).
func (e *Engine) Resume(r *schemas.FlowRecord) {
	if k, ok := flow.KeyOfRecord(r); ok {
		e.table.Resume(k, r.EndNs)
	}
}

// JudgedThroughNs returns the start of the latest detection window that
// the engine has judged, with every window before it, by its packet clock
// (detect.Set.JudgedThroughNs).
func (e *Engine) JudgedThroughNs() int64 { return e.det.JudgedThroughNs(e.nowNs) }

// ObserveDNS records the names the DNS response p maps to addresses, for
// the collateral of IP blocks, without a flow: in a partitioned stream the
// response's own flow lives in the resolver's partition, and copies of it
// reach the others for their names only. They are recorded as of p's own
// time: a partition that has seen no packet yet has no time of its own,
// and names recorded at time 0 would be forgotten at the next answer.
func (e *Engine) ObserveDNS(p *schemas.PacketMeta) {
	e.parse.DNSAnswers += uint64(e.dns.addAnswer(p.Payload, max(e.nowNs, p.TimestampNs)))
}

// ReplayFromNs returns the packet time from which an engine fed the same
// stream again would rebuild everything this one holds and has not
// written: the start of its oldest open flow, or of its oldest detection
// window not judged yet, whose flows the detectors need whole; or
// math.MaxInt64 when it holds nothing. It walks the flow table; call it
// at checkpoints, not per packet.
func (e *Engine) ReplayFromNs() int64 {
	return min(e.table.OldestStartNs(), e.det.OldestWindowNs())
}

// Stats returns the counts so far.
func (e *Engine) Stats() Stats {
	return Stats{Packets: e.pkts, Flow: e.table.Stats(), Parse: e.parse, Findings: maps.Clone(e.counts), Outcomes: maps.Clone(e.ends)}
}

func (e *Engine) onEnd(st *flow.State, reason flow.EndReason) {
	r := &e.rec
	*r = schemas.FlowRecord{}
	st.Record(r)
	e.apps.of(st, false).record(r)
	if e.skip != nil && e.skip(r) {
		return
	}
	e.det.OnFlowEnd(st, r, e.nowNs, e.emit)
	e.ends[Outcome{r.Outcome, r.Stage}]++
	if e.err == nil {
		if err := e.out.Flow(r); err != nil {
			e.err = fmt.Errorf("write flow: %w", err)
		}
	}
}

func (e *Engine) emit(f *schemas.Finding) {
	e.counts[f.Kind]++
	if e.err == nil {
		if err := e.out.Finding(f); err != nil {
			e.err = fmt.Errorf("write finding: %w", err)
		}
	}
}
