package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/analyzer/detect"
	"github.com/tamperscope/tamperscope/metrics"
	"github.com/tamperscope/tamperscope/privacy"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
	"github.com/tamperscope/tamperscope/transport"
	"github.com/tamperscope/tamperscope/transport/inproc"
)

// archiveOptions says what of the packets goes into the packets/ dataset.
type archiveOptions struct {
	packets     bool // write packets/
	keepPayload bool // with their payload snapshots (default: without)
}

// Pipe depths: the batches in flight between the reading goroutine and
// the analyzer. Files need just enough to keep both busy, and fewer
// batches in flight stay in the CPU cache (replay of the bench capture,
// depth 2 against 8: ~3 % faster, ~10 MiB smaller peak). A live source
// keeps room for a pause of the analyzer.
const (
	fileDepth = 2
	liveDepth = 8
)

// analyze is the analyzer half that replay, batch and capture share:
// produce runs in its own goroutine and publishes batches to an
// in-process pipe of depth batches; each batch runs through eng, is archived to the
// packets/ dataset when asked (payloads stripped unless kept), then
// afterBatch (when not nil) is called, as it is every second without a
// batch (a live source gone quiet). After the input ends analyze
// closes eng, calls stop (the progress bar) and closes out's datasets; it
// returns the first error of processing or writing.
func analyze(ctx context.Context, depth int, produce func(transport.Publisher), eng *analyzer.Engine, out *output, archive archiveOptions, afterBatch, stop func()) error {
	out.startAsync()
	pipe := inproc.New(depth)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		produce(preparing{pipe, eng})
		pipe.Close()
	}()
	// Never cancelled: producers end on ctx and the pipe drains, so
	// nothing read is lost.
	next := func() (transport.Delivery, error) {
		for {
			if afterBatch == nil {
				return pipe.Next(context.WithoutCancel(ctx))
			}
			c, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			d, err := pipe.Next(c)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				return d, err
			}
			afterBatch()
		}
	}
	var procErr error
	for {
		d, err := next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				procErr = err
			}
			break
		}
		if procErr == nil {
			procErr = eng.Process(d.Batch)
		}
		if procErr == nil && out.ds != nil && archive.packets {
			if !archive.keepPayload {
				privacy.StripPayload(d.Batch) // the analyzer has read them
			}
			procErr = out.ds.WritePackets(d.Batch.Packets)
		}
		pipe.Release(d)
		if afterBatch != nil {
			afterBatch()
		}
	}
	wg.Wait()
	if procErr == nil {
		procErr = eng.EndFlows()
	}
	if procErr == nil {
		// The flows files are encoded by the writer goroutine while the
		// detectors judge the last windows.
		out.flowsDone()
		procErr = eng.Close()
	}
	if err := out.wait(); err != nil && procErr == nil {
		procErr = err
	}
	stop()
	if out.ds != nil {
		if err := out.ds.Close(); err != nil && procErr == nil {
			procErr = fmt.Errorf("close datasets: %w", err)
		}
	}
	return procErr
}

// preparing publishes to the pipe once the engine has worked out, on the
// producer's goroutine, what it can of each batch ahead of Process
// (Engine.Prepare).
type preparing struct {
	*inproc.Pipe
	eng *analyzer.Engine
}

func (p preparing) Publish(ctx context.Context, b *schemas.PacketBatch) error {
	p.eng.Prepare(b)
	return p.Pipe.Publish(ctx, b)
}

// output fans engine output out to the datasets, JSON lines and the
// findings table. Once started, flow records are written by a goroutine
// of their own, so encoding and Parquet compression do not hold up the
// analyzer.
type output struct {
	stdout   io.Writer
	json     bool
	ds       *sink.Dataset
	enc      *json.Encoder
	flows    atomic.Uint64     // read by periodic reports on other goroutines
	findings []schemas.Finding // for the findings table: all, or the latest keep
	found    int               // findings emitted
	keep     int               // when > 0, how many findings the table keeps

	pending []record // filled by the analyzer, handed over whole
	queue   chan []record
	free    chan []record
	done    chan error
}

// record is a flow record or, when finding is set, a finding, or when
// flowsDone is set, the end of the flow records: one queue keeps their
// order.
type record struct {
	flow      schemas.FlowRecord
	finding   *schemas.Finding
	flowsDone bool
}

// chunk is how many records are handed to the writer at once.
const chunk = 512

// queueChunks is how many chunks may wait for the writer: enough for the
// burst of flow records the end of a capture makes (every flow still in
// the table), so that the detectors judge the last windows meanwhile
// instead of waiting for the writer; 8 MiB or so.
const queueChunks = 24

func (o *output) startAsync() {
	o.queue = make(chan []record, queueChunks)
	o.free = make(chan []record, queueChunks+2)
	o.done = make(chan error, 1)
	go func() {
		var err error
		var flows []schemas.FlowRecord
		for c := range o.queue {
			for i := 0; i < len(c) && err == nil; {
				switch {
				case c[i].finding != nil:
					err = o.writeFinding(c[i].finding)
					i++
					continue
				case c[i].flowsDone:
					err = o.closeFlowFiles()
					i++
					continue
				}
				// A run of flow records goes to the datasets in one call.
				flows = flows[:0]
				for ; i < len(c) && c[i].finding == nil && !c[i].flowsDone; i++ {
					flows = append(flows, c[i].flow)
				}
				err = o.writeFlows(flows)
			}
			select {
			case o.free <- c[:0]:
			default:
			}
		}
		o.done <- err
	}()
}

// enqueue hands r to the writer goroutine, a chunk at a time.
func (o *output) enqueue(r record) {
	if o.pending == nil {
		select {
		case o.pending = <-o.free:
		default:
			o.pending = make([]record, 0, chunk)
		}
	}
	o.pending = append(o.pending, r)
	if len(o.pending) == chunk {
		o.queue <- o.pending
		o.pending = nil
	}
}

// flowsDone tells the writer that no flow record follows: it finishes the
// flows files right away, while the caller goes on.
func (o *output) flowsDone() {
	if o.queue == nil {
		return
	}
	o.enqueue(record{flowsDone: true})
	if len(o.pending) > 0 {
		o.queue <- o.pending
		o.pending = nil
	}
}

func (o *output) closeFlowFiles() error {
	if o.ds == nil {
		return nil
	}
	return o.ds.CloseFlowFiles()
}

// wait hands over the last records and returns the writer's first error.
func (o *output) wait() error {
	if o.queue == nil {
		return nil
	}
	if len(o.pending) > 0 {
		o.queue <- o.pending
	}
	close(o.queue)
	err := <-o.done
	o.queue = nil
	return err
}

// newOutput opens the datasets under dir (none when dir is empty); name
// prefixes the files this run commits.
func newOutput(stdout io.Writer, format, dir, name string) (*output, error) {
	o := &output{stdout: stdout, json: format == "json"}
	if dir != "" {
		dc, err := json.Marshal(detect.Config{}.Effective())
		if err != nil {
			return nil, fmt.Errorf("encode detector configuration: %w", err)
		}
		ds, err := sink.Open(dir, sink.Config{Version: version, Name: name, DetectorConfig: string(dc)})
		if err != nil {
			return nil, fmt.Errorf("open datasets: %w", err)
		}
		o.ds = ds
	}
	return o, nil
}

func (o *output) flowCount() uint64 { return o.flows.Load() }

func (o *output) Flow(r *schemas.FlowRecord) error {
	o.flows.Add(1)
	if o.queue == nil {
		return o.writeFlows(unsafe.Slice(r, 1))
	}
	o.enqueue(record{flow: *r})
	return nil
}

func (o *output) writeFlows(rs []schemas.FlowRecord) error {
	if o.ds != nil {
		if err := o.ds.WriteFlows(rs); err != nil {
			return err
		}
	}
	if o.json {
		for i := range rs {
			if err := o.line(struct {
				Record string `json:"record"`
				*schemas.FlowRecord
			}{"flow", &rs[i]}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o *output) Finding(f *schemas.Finding) error {
	o.found++
	if o.keep > 0 && len(o.findings) == 2*o.keep {
		o.findings = append(o.findings[:0], o.findings[o.keep:]...)
	}
	o.findings = append(o.findings, *f)
	if o.queue == nil {
		return o.writeFinding(f)
	}
	fc := *f
	o.enqueue(record{finding: &fc})
	return nil
}

func (o *output) writeFinding(f *schemas.Finding) error {
	if o.ds != nil {
		if err := o.ds.WriteFinding(f); err != nil {
			return err
		}
	}
	if o.json {
		return o.line(struct {
			Record string `json:"record"`
			*schemas.Finding
		}{"finding", f})
	}
	return nil
}

func (o *output) line(v any) error {
	if o.enc == nil {
		o.enc = json.NewEncoder(o.stdout)
	}
	return o.enc.Encode(v)
}

// tableFindings returns the findings the table shows: every one, or the
// latest keep.
func (o *output) tableFindings() []schemas.Finding {
	if o.keep > 0 && len(o.findings) > o.keep {
		return o.findings[len(o.findings)-o.keep:]
	}
	return o.findings
}

// printSummary closes a run's table output: what was read (input), then
// what the analyzer and the datasets made of it.
func (o *output) printSummary(input string, es analyzer.Stats) {
	fmt.Fprintf(o.stdout, "\n%s, %d flows (%d evicted), %d ClientHellos, %d QUIC Initials, %d HTTP requests, %d findings\n",
		input, o.flowCount(), es.Flow.Evicted, es.Parse.ClientHellos+es.Parse.QUICHellos, es.Parse.QUICInitials, es.Parse.HTTPRequests, o.found)
	if o.ds != nil {
		st := o.ds.Stats()
		fmt.Fprintf(o.stdout, "datasets: %d flow rows, %d finding rows, %d packet rows\n", st.Flows.Rows, st.Findings.Rows, st.Packets.Rows)
	}
}

// sourceCounts is what a packet source has read and lost so far; safe to
// produce from any goroutine.
type sourceCounts struct {
	packets, bytes uint64
	drops          map[string]uint64 // by cause
}

// runMetrics serves a run's Prometheus metrics; its methods do nothing
// when no address was given.
type runMetrics struct {
	exp    *metrics.Exporter
	source func() sourceCounts
	last   time.Time
}

// startMetrics serves metrics at addr ("" for none) until ctx ends.
func startMetrics(ctx context.Context, addr, role, vantage string, source func() sourceCounts) (*runMetrics, error) {
	if addr == "" {
		return nil, nil
	}
	m := &runMetrics{exp: metrics.NewExporter(role, vantage), source: source}
	bound, err := metrics.Serve(ctx, addr, m.exp)
	if err != nil {
		return nil, err
	}
	slog.Info("serving metrics", "url", "http://"+bound+"/metrics")
	return m, nil
}

// tick publishes a snapshot at most once a second; it runs on the
// analyzer's goroutine, which owns eng.
func (m *runMetrics) tick(eng *analyzer.Engine, ds *sink.Dataset) {
	if m == nil || time.Since(m.last) < time.Second {
		return
	}
	m.publish(eng.Stats(), ds, nil)
}

// ticker returns analyze's afterBatch for m: nil when there are no
// metrics to publish.
func (m *runMetrics) ticker(eng *analyzer.Engine, ds *sink.Dataset) func() {
	if m == nil {
		return nil
	}
	return func() { m.tick(eng, ds) }
}

// publish builds a snapshot from the analyzer's counters, the datasets and
// the source's; more, when set, adds what only the caller knows.
func (m *runMetrics) publish(es analyzer.Stats, ds *sink.Dataset, more func(*metrics.Snapshot)) {
	m.last = time.Now()
	src := m.source()
	s := &metrics.Snapshot{
		Packets:      src.packets,
		Bytes:        src.bytes,
		Drops:        src.drops,
		FlowsActive:  es.Flow.Active,
		FlowsEnded:   es.Flow.Flows - uint64(es.Flow.Active),
		FlowsEvicted: es.Flow.Evicted,
		Findings:     map[string]uint64{},
	}
	for k, v := range es.Findings {
		s.Findings[k] = uint64(v)
	}
	s.FlowOutcomes = make(map[metrics.FlowOutcome]uint64, len(es.Outcomes))
	for k, v := range es.Outcomes {
		s.FlowOutcomes[metrics.FlowOutcome{Outcome: k.Outcome, Stage: cmp.Or(k.Stage, "none")}] += v
	}
	if ds != nil {
		st := ds.Stats()
		s.ParquetFiles = map[string]uint64{"flows": uint64(st.Flows.Files), "findings": uint64(st.Findings.Files), "packets": uint64(st.Packets.Files)}
		s.ParquetRows = map[string]uint64{"flows": uint64(st.Flows.Rows), "findings": uint64(st.Findings.Rows), "packets": uint64(st.Packets.Rows)}
	}
	if more != nil {
		more(s)
	}
	m.exp.Publish(s)
}
