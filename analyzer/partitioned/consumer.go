package partitioned

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/analyzer/detect"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
	"github.com/tamperscope/tamperscope/transport"
)

// Committer records that every message of partition up to and including
// offset is done (transport/kafka's Subscriber.Commit).
type Committer interface {
	Commit(partition int, offset int64) error
}

// Config configures a Consumer. Topic, Root and Commit are required; every
// other zero value picks the default its comment names.
type Config struct {
	// Topic names the file sets: <Topic>-p<partition>-<first>-<last>.
	Topic string
	// Root is the dataset directory (flows/, findings/).
	Root string
	// Sink configures the datasets; Name is set per partition.
	Sink sink.Config
	// Engine configures each partition's analyzer; Skip is set per
	// partition.
	Engine analyzer.Config
	// Commit receives offset commits, after the rows are durable.
	Commit Committer
	// Findings, when set, receives each set's findings before the set is
	// committed, so a crash in between publishes them again rather than
	// never (at least once; finding_id tells repeats apart).
	Findings func(partition int, fs []schemas.Finding) error
	// CheckpointInterval is the wall time between checkpoints of a
	// partition. The default is 10 s.
	CheckpointInterval time.Duration
	// CheckpointMessages checkpoints a partition after this many messages.
	// The default is 2000.
	CheckpointMessages int
	// MaxOpen bounds how far back in packet time a partition's committed
	// offset may stay: at a checkpoint, flows open for longer are split
	// (their records so far written with end reason "split", their later
	// packets starting new flows). Without it one long-lived connection
	// would hold the offset at its start, and a resumption would replay
	// the stream from there. The default is 30 minutes; negative never
	// splits.
	MaxOpen time.Duration
	// Logger receives checkpoints and resumptions. The default is
	// slog.Default().
	Logger *slog.Logger
}

// Stats counts what a Consumer did.
type Stats struct {
	Messages   uint64
	Packets    uint64
	NameCopies uint64 // rows of Names deliveries: DNS responses of other partitions, read for names only
	Clocks     uint64 // clock deliveries: packet time moved on in a partition without packets
	Flows      uint64 // flow rows written
	Findings   uint64 // finding rows written
	Digests    uint64 // window digests written, for tamperscope aggregate
	Repeated   uint64 // flows and findings already written before a resumption, not written again
	Tails      uint64 // tails of flows written before a resumption, dropped
	Sets       uint64 // file sets committed
	Commits    uint64 // offsets committed
	Partitions int    // partitions held now
	// Engine sums the engines' counters, those of dropped partitions
	// included (their open flows no longer count as active).
	Engine analyzer.Stats
}

// Consumer is the analyzer half of the distributed mode; see the package
// documentation. It is not safe for concurrent use: call it from the
// goroutine that reads the stream.
type Consumer struct {
	cfg   Config
	log   *slog.Logger
	parts map[int]*partition
	st    Stats
	// past accumulates the engine counters of partitions already dropped.
	past analyzer.Stats
}

// New returns a Consumer holding no partition.
func New(cfg Config) (*Consumer, error) {
	if cfg.Topic == "" || cfg.Root == "" || cfg.Commit == nil {
		return nil, errors.New("new consumer: Topic, Root and Commit are required")
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = 10 * time.Second
	}
	if cfg.CheckpointMessages <= 0 {
		cfg.CheckpointMessages = 2000
	}
	if cfg.MaxOpen == 0 {
		cfg.MaxOpen = 30 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Consumer{cfg: cfg, log: cfg.Logger.With("topic", cfg.Topic), parts: map[int]*partition{}}, nil
}

// partition is the state kept for one assigned partition.
type partition struct {
	c   *Consumer
	id  int
	eng *analyzer.Engine
	ds  *sink.Dataset

	// msgs are the messages after the committed offset, in order.
	msgs     []span
	setFirst int64 // first offset since the last set commit; -1: none
	last     int64 // last offset processed
	maxNs    int64 // newest packet time seen
	rows     int
	flows    []schemas.FlowRecord // written to ds a run at a time (writeFlows)
	findings []schemas.Finding
	digests  int // window digests written since the last set
	// judged counts the digests of each window made since the engine
	// started: a long flow ending after its window was judged makes the
	// detectors judge the window again, with that flow.
	judged map[int64]int
	// through is the latest window start the written digests show as
	// judged, with every window before it (aggregate waits for it).
	through int64
	firstNs int64 // oldest packet time of the partition's own packets

	prior      *index          // loaded at the first message
	sets       map[string]bool // names of the sets prior was read from
	since      int
	lastCheck  time.Time
	engineEnds uint64
}

// span is what a checkpoint needs of one message: its offset and the
// packet time it covers.
type span struct{ offset, minNs, maxNs int64 }

// Assigned prepares state for newly assigned partitions; a partition
// already held is kept.
func (c *Consumer) Assigned(ids []int) error {
	for _, id := range ids {
		if _, err := c.partition(id); err != nil {
			return err
		}
	}
	return nil
}

func (c *Consumer) partition(id int) (*partition, error) {
	if p := c.parts[id]; p != nil {
		return p, nil
	}
	scfg := c.cfg.Sink
	scfg.Name = c.cfg.Topic + "-p" + strconv.Itoa(id)
	ds, err := sink.Open(c.cfg.Root, scfg)
	if err != nil {
		return nil, fmt.Errorf("open datasets of partition %d: %w", id, err)
	}
	p := &partition{c: c, id: id, ds: ds, setFirst: -1, last: -1, maxNs: math.MinInt64, through: math.MinInt64, firstNs: math.MaxInt64, lastCheck: time.Now(), judged: map[int64]int{}}
	ecfg := c.cfg.Engine
	ecfg.Skip = p.skip
	ecfg.Digests = p.digest
	p.eng = analyzer.New(ecfg, p)
	c.parts[id] = p
	c.st.Partitions = len(c.parts)
	return p, nil
}

// tailSlack is how far packets of one partition may come out of time
// order across messages: a flow written before a resumption that started
// later than this before the first replayed packet is rebuilt whole, so
// it can have no tail, and its span is not kept.
const tailSlack = time.Minute

// Process runs one delivery through its partition's engine and
// checkpoints the partition when one is due.
func (c *Consumer) Process(d transport.Delivery) error {
	p, err := c.partition(d.Partition)
	if err != nil {
		return err
	}
	sp := span{offset: d.Offset, minNs: math.MaxInt64, maxNs: math.MinInt64}
	if d.ClockNs != 0 { // as a packet of that time would
		sp.minNs, sp.maxNs = d.ClockNs, d.ClockNs
	}
	for i := range d.Batch.Packets {
		ts := d.Batch.Packets[i].TimestampNs
		sp.minNs, sp.maxNs = min(sp.minNs, ts), max(sp.maxNs, ts)
	}
	if p.prior == nil {
		if p.prior, p.sets, err = loadIndex(c.cfg.Root, c.cfg.Topic, p.id, d.Offset, sp.minNs+int64(tailSlack)); err != nil {
			return err
		}
		for i := range p.prior.splits {
			p.eng.Resume(&p.prior.splits[i])
		}
		for w, n := range p.prior.judged {
			p.judged[w.startNs] += n // digest ids go on counting
			p.through = max(p.through, w.startNs)
		}
		if len(p.sets) > 0 {
			c.log.Info("resuming partition", "partition", p.id, "offset", d.Offset, "sets", len(p.sets), "known_ids", len(p.prior.ids), "split_flows", len(p.prior.splits))
		}
	}
	p.msgs = append(p.msgs, sp)
	p.maxNs = max(p.maxNs, sp.maxNs)
	if len(p.prior.ids) > 0 && p.prior.caughtUp(p.maxNs) {
		// Whatever a resumption replays has come and gone: let the
		// memory of the rows written before it go.
		p.prior, p.sets = &index{}, nil
	}
	if p.setFirst < 0 {
		p.setFirst = d.Offset
	}
	p.last = d.Offset
	c.st.Messages++
	switch {
	case d.ClockNs != 0:
		// The producer's packet time has moved on, with no packet here.
		c.st.Clocks++
		if err := p.eng.Advance(d.ClockNs); err != nil {
			return fmt.Errorf("analyze partition %d offset %d: %w", p.id, d.Offset, err)
		}
	case d.Names:
		// Another partition's resolver answered: its flow is written there.
		c.st.NameCopies += uint64(len(d.Batch.Packets))
		for i := range d.Batch.Packets {
			p.eng.ObserveDNS(&d.Batch.Packets[i])
		}
	default:
		p.firstNs = min(p.firstNs, sp.minNs)
		c.st.Packets += uint64(len(d.Batch.Packets))
		if err := p.eng.Process(d.Batch); err != nil {
			return fmt.Errorf("analyze partition %d offset %d: %w", p.id, d.Offset, err)
		}
	}
	p.since++
	if p.since >= c.cfg.CheckpointMessages || time.Since(p.lastCheck) >= c.cfg.CheckpointInterval {
		return p.checkpoint(false)
	}
	return nil
}

// Tick checkpoints the partitions whose interval has passed; call it
// while the stream is idle.
func (c *Consumer) Tick() error {
	for _, id := range slices.Sorted(maps.Keys(c.parts)) {
		p := c.parts[id]
		if p.since > 0 && time.Since(p.lastCheck) >= c.cfg.CheckpointInterval {
			if err := p.checkpoint(false); err != nil {
				return err
			}
		}
	}
	return nil
}

// Uncommitted returns, for each partition held, how many processed
// messages lie past its committed offset: what a restart would replay.
func (c *Consumer) Uncommitted() map[int]int {
	out := make(map[int]int, len(c.parts))
	for id, p := range c.parts {
		out[id] = len(p.msgs)
	}
	return out
}

// Revoked checkpoints the partitions and drops their state, open flows
// included: the next owner resumes at the watermark and rebuilds them.
func (c *Consumer) Revoked(ids []int) error {
	var errs []error
	for _, id := range ids {
		if p := c.parts[id]; p != nil {
			errs = append(errs, p.checkpoint(false), p.drop())
		}
	}
	return errors.Join(errs...)
}

// Leave checkpoints and drops every partition, as Revoked: for a shutdown
// that the stream outlives.
func (c *Consumer) Leave() error {
	return c.Revoked(slices.Sorted(maps.Keys(c.parts)))
}

// Close ends the stream: every engine is moved to the newest packet time
// any partition has seen (so flows idle by then end as idle, as they
// would in one engine), closed, its flows and findings committed and its
// offset committed past its last message.
func (c *Consumer) Close() error {
	now := int64(math.MinInt64)
	for _, p := range c.parts {
		now = max(now, p.maxNs)
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(c.parts)) {
		p := c.parts[id]
		err := p.eng.Advance(now)
		if err == nil {
			err = p.eng.Close()
		}
		if err == nil {
			err = p.checkpoint(true)
		}
		errs = append(errs, err, p.drop())
	}
	return errors.Join(errs...)
}

// Stats returns the counters so far.
func (c *Consumer) Stats() Stats {
	s := c.st
	s.Engine = analyzer.Stats{}
	addEngine(&s.Engine, c.past)
	for _, p := range c.parts {
		addEngine(&s.Engine, p.eng.Stats())
	}
	return s
}

func addEngine(dst *analyzer.Stats, s analyzer.Stats) {
	dst.Packets += s.Packets
	dst.Flow.Flows += s.Flow.Flows
	dst.Flow.Active += s.Flow.Active
	dst.Flow.Evicted += s.Flow.Evicted
	dst.Parse.ClientHellos += s.Parse.ClientHellos
	dst.Parse.QUICHellos += s.Parse.QUICHellos
	dst.Parse.QUICInitials += s.Parse.QUICInitials
	dst.Parse.HTTPRequests += s.Parse.HTTPRequests
	if dst.Findings == nil {
		dst.Findings = map[string]int{}
	}
	for k, v := range s.Findings {
		dst.Findings[k] += v
	}
	if dst.Outcomes == nil {
		dst.Outcomes = map[analyzer.Outcome]uint64{}
	}
	for k, v := range s.Outcomes {
		dst.Outcomes[k] += v
	}
}

// checkpoint commits the rows written since the last set as a new set,
// then the offset up to the watermark; final (end of stream, every flow
// ended) commits past the last message.
func (p *partition) checkpoint(final bool) error {
	c := p.c
	p.since = 0
	p.lastCheck = time.Now()
	if !final && c.cfg.MaxOpen > 0 && p.maxNs != math.MinInt64 {
		if err := p.eng.Split(p.maxNs - int64(c.cfg.MaxOpen)); err != nil {
			return fmt.Errorf("split the long flows of partition %d: %w", p.id, err)
		}
	}
	if t := p.eng.JudgedThroughNs(); !final && t > p.through && t >= c.cfg.Engine.Detect.WindowStart(p.firstNs) {
		// Windows without flows, or a gap in the traffic, leave no
		// digest: an empty one tells aggregate how far this partition
		// has got (never about windows before its first packet).
		if err := p.digest(&detect.Digest{WindowStartNs: t}); err != nil {
			return fmt.Errorf("write the progress of partition %d: %w", p.id, err)
		}
	}
	if p.rows > 0 || len(p.findings) > 0 || p.digests > 0 {
		name := fmt.Sprintf("%s-p%d-%d-%d", c.cfg.Topic, p.id, p.setFirst, p.last)
		// A set of the same name written before a restart holds rows this
		// one skipped as repeats: never replace it.
		for n := 1; p.sets[name]; n++ {
			name = fmt.Sprintf("%s-p%d-%d-%d+%d", c.cfg.Topic, p.id, p.setFirst, p.last, n)
		}
		if err := p.writeFlows(); err != nil {
			return err
		}
		if c.cfg.Findings != nil && len(p.findings) > 0 {
			if err := c.cfg.Findings(p.id, p.findings); err != nil {
				return fmt.Errorf("publish findings of partition %d: %w", p.id, err)
			}
		}
		if _, err := p.ds.Commit(name); err != nil {
			return fmt.Errorf("commit set %s: %w", name, err)
		}
		p.rows, p.findings, p.digests = 0, p.findings[:0], 0
		c.st.Sets++
	}
	p.setFirst = -1
	oldest := int64(math.MaxInt64)
	if !final {
		oldest = p.eng.ReplayFromNs()
	}
	i := 0
	for i < len(p.msgs) && p.msgs[i].maxNs < oldest {
		i++
	}
	if i == 0 {
		return nil
	}
	off := p.msgs[i-1].offset
	p.msgs = append(p.msgs[:0], p.msgs[i:]...)
	if err := c.cfg.Commit.Commit(p.id, off); err != nil {
		// Moved to another member: it resumes from the last commit and the
		// ids written here keep it from writing them again.
		c.log.Warn("commit offset", "partition", p.id, "offset", off, "err", err)
		return nil
	}
	c.st.Commits++
	return nil
}

// drop releases the partition's state.
func (p *partition) drop() error {
	c := p.c
	es := p.eng.Stats()
	es.Flow.Active = 0 // dropped, not ended
	addEngine(&c.past, es)
	delete(c.parts, p.id)
	c.st.Partitions = len(c.parts)
	// Rows of flows ended after the last checkpoint are uncommitted: drop
	// them, the next owner writes them.
	p.flows = p.flows[:0]
	if p.rows > 0 || len(p.findings) > 0 || p.digests > 0 {
		return p.ds.Abort()
	}
	return p.ds.Close()
}

// skip drops, before the detectors see them, the tail of a flow written
// before the resumption, and a flow written before whose detection window
// was judged, with it, before too.
func (p *partition) skip(r *schemas.FlowRecord) bool {
	switch {
	case p.prior.tail(r):
		p.c.st.Tails++
		return true
	case p.prior.has(r.FlowID) && p.prior.judged[window{p.c.cfg.Engine.Detect.WindowStart(r.StartNs), r.Vantage}] > 0:
		p.c.st.Repeated++
		return true
	}
	return false
}

// Flow implements analyzer.Output.
func (p *partition) Flow(r *schemas.FlowRecord) error {
	if p.prior.has(r.FlowID) {
		p.c.st.Repeated++
		return nil
	}
	p.flows = append(p.flows, *r)
	p.rows++
	p.c.st.Flows++
	if len(p.flows) == flowRun {
		return p.writeFlows()
	}
	return nil
}

// flowRun is how many flow records a partition collects before it writes
// them to its datasets in one call, column by column.
const flowRun = 256

func (p *partition) writeFlows() error {
	if len(p.flows) == 0 {
		return nil
	}
	err := p.ds.WriteFlows(p.flows)
	p.flows = p.flows[:0]
	return err
}

// digest writes the digest of a window the partition's detectors closed,
// unless a set written before the resumption has it (the first written
// wins, as for findings).
func (p *partition) digest(d *detect.Digest) error {
	n := p.judged[d.WindowStartNs]
	p.judged[d.WindowStartNs]++
	p.through = max(p.through, d.WindowStartNs)
	id := fmt.Sprintf("%s-p%d-w%d-%d", p.c.cfg.Topic, p.id, d.WindowStartNs, n)
	if p.prior.has(id) {
		p.c.st.Repeated++
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := p.ds.WriteDigest(&schemas.WindowDigest{DigestID: id, WindowStartNs: d.WindowStartNs, Digest: string(b)}); err != nil {
		return err
	}
	p.digests++
	p.c.st.Digests++
	return nil
}

// Finding implements analyzer.Output.
func (p *partition) Finding(f *schemas.Finding) error {
	if p.prior.has(f.FindingID) {
		p.c.st.Repeated++
		return nil
	}
	if err := p.ds.WriteFinding(f); err != nil {
		return err
	}
	p.findings = append(p.findings, *f)
	p.c.st.Findings++
	return nil
}
