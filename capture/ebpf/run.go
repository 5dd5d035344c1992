package ebpf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/tamperscope/tamperscope/bpf"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport"
)

// Config configures Run. The zero value works.
type Config struct {
	// BPF configures the kernel program: snapshot policy, ring, filters.
	BPF bpf.Config
	// Attach selects TCX or clsact; the default tries TCX first.
	Attach bpf.AttachMode
	// BatchSize is the number of packets per published batch. The
	// default is 4096.
	BatchSize int
	// FlushInterval bounds how long a packet waits in a partial batch,
	// and how long records wait in the ring when traffic is too light to
	// reach the program's wakeup threshold. The default is 100ms.
	FlushInterval time.Duration
	// Vantage is copied into every PacketMeta.
	Vantage string
	// Anonymize, when set, rewrites every packet before it is published
	// (privacy.Pseudonymizer).
	Anonymize ingest.Anonymizer
	// Attached, when set, runs once the program is attached and before
	// the first record is read: the place to drop privileges.
	Attached func(mode bpf.AttachMode) error
	// Report, when set, is called with the running totals every
	// ReportInterval (default 10s) from Run's goroutine.
	Report         func(Stats)
	ReportInterval time.Duration
}

// Stats is what Run did.
type Stats struct {
	Kernel    bpf.Counters // the program's counters: seen, ring drops, filtered, flows
	Records   uint64       // records read from the ring
	Published uint64       // packets published (records expanded to wire segments)
	Batches   uint64
	SnapBytes uint64 // payload bytes snapshotted
	Split     uint64 // GSO/GRO records expanded into several packets
	Bad       uint64 // records too short to read
	Attached  bpf.AttachMode
}

// Drops is every packet the capture lost: ring-buffer and flow-map drops.
func (s Stats) Drops() uint64 { return s.Kernel.RingDrops + s.Kernel.FlowDrops }

// Run loads the program, attaches it to iface in the current network
// namespace and publishes batches to pub until ctx is done. On the way out
// it detaches the program, drains the ring and publishes everything read;
// a run ended by ctx returns nil. It does not close pub.
func Run(ctx context.Context, iface string, pub transport.Publisher, cfg Config) (st Stats, err error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return st, fmt.Errorf("find interface %s: %w", iface, err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return st, fmt.Errorf("remove memlock limit: %w", err)
	}
	c, err := bpf.Load(cfg.BPF)
	if err != nil {
		return st, err
	}
	defer c.Close()
	rd, err := ringbuf.NewReader(c.Events())
	if err != nil {
		return st, fmt.Errorf("open ring buffer: %w", err)
	}
	defer rd.Close()
	if err := c.Attach(ifi.Index, cfg.Attach); err != nil {
		return st, err
	}
	st.Attached = c.Attached
	if cfg.Attached != nil {
		if err := cfg.Attached(c.Attached); err != nil {
			return st, err
		}
	}
	r := newReader(pub, cfg)
	defer func() {
		st.Records, st.Published, st.Batches, st.SnapBytes, st.Split, st.Bad = r.records, r.published, r.batches, r.snapBytes, r.split, r.bad
		if k, kerr := c.Counters(); kerr == nil {
			st.Kernel = k
		} else if err == nil {
			err = kerr
		}
	}()
	interval := cfg.ReportInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	nextReport := time.Now().Add(interval)
	var rec ringbuf.Record
	draining := false
	for {
		rd.SetDeadline(time.Now().Add(r.flushEvery))
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
			if err := r.add(ctx, rec.RawSample); err != nil {
				return st, err
			}
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
		default:
			return st, fmt.Errorf("read ring buffer: %w", err)
		}
		// The ring is empty for now.
		if err := r.flush(ctx); err != nil {
			return st, err
		}
		r.clock.sync()
		if draining {
			return st, nil
		}
		if ctx.Err() != nil {
			// Stop producing, then read what the program wrote before.
			if err := c.Detach(); err != nil {
				return st, err
			}
			draining = true
			continue
		}
		if cfg.Report != nil && time.Now().After(nextReport) {
			nextReport = time.Now().Add(interval)
			s := Stats{Records: r.records, Published: r.published, Batches: r.batches, SnapBytes: r.snapBytes, Split: r.split, Bad: r.bad, Attached: c.Attached}
			s.Kernel, _ = c.Counters()
			cfg.Report(s)
		}
	}
}

// monoClock converts the program's CLOCK_MONOTONIC stamps to wall-clock
// time; the offset is re-read whenever the ring runs dry so NTP steps are
// followed.
type monoClock struct{ offset int64 }

func (m *monoClock) sync() {
	var mono, real unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &real)
	m.offset = real.Nano() - mono.Nano()
}

// reader turns records into batches.
type reader struct {
	pub        transport.Publisher
	getter     ingest.BatchGetter
	batchSize  int
	flushEvery time.Duration
	vantage    string
	anon       ingest.Anonymizer
	clock      monoClock
	b          *schemas.PacketBatch
	refs       []snapRef
	lastFlush  time.Time

	records, published, batches, snapBytes, split, bad uint64
}

type snapRef struct{ idx, off, n int }

func newReader(pub transport.Publisher, cfg Config) *reader {
	r := &reader{pub: pub, batchSize: cfg.BatchSize, flushEvery: cfg.FlushInterval, vantage: cfg.Vantage, anon: cfg.Anonymize}
	if r.batchSize <= 0 {
		r.batchSize = 4096
	}
	if r.flushEvery <= 0 {
		r.flushEvery = 100 * time.Millisecond
	}
	r.getter, _ = pub.(ingest.BatchGetter)
	r.clock.sync()
	r.b = r.get()
	return r
}

func (r *reader) get() *schemas.PacketBatch {
	var b *schemas.PacketBatch
	if r.getter != nil {
		b = r.getter.Get()
	} else {
		b = &schemas.PacketBatch{}
	}
	if cap(b.Packets) < r.batchSize {
		b.Packets = make([]schemas.PacketMeta, 0, r.batchSize)
	}
	return b
}

// flush publishes the current batch, if any.
func (r *reader) flush(ctx context.Context) error {
	b := r.b
	if len(b.Packets) == 0 {
		return nil
	}
	// Point snapshots into the arena now that it no longer grows.
	for _, s := range r.refs {
		b.Packets[s.idx].Payload = b.Arena[s.off : s.off+s.n : s.off+s.n]
	}
	r.refs = r.refs[:0]
	r.published += uint64(len(b.Packets))
	r.batches++
	r.b = r.get()
	// A cancelled ctx must not lose the drained tail: publish without it.
	if err := r.pub.Publish(context.WithoutCancel(ctx), b); err != nil {
		return fmt.Errorf("publish batch: %w", err)
	}
	return nil
}

// add converts one ring record, expanding super-packets into segments,
// and publishes each batch that fills up.
func (r *reader) add(ctx context.Context, raw []byte) error {
	if len(raw) < bpf.RecordSize {
		r.bad++
		return nil
	}
	r.records++
	rec := (*bpf.Record)(unsafe.Pointer(&raw[0]))
	snap := raw[bpf.RecordSize:]
	snap = snap[:min(len(snap), int(rec.SnapLen))]
	segs, size := segments(rec)
	if segs > 1 {
		r.split++
	}
	for k := range segs {
		if len(r.b.Packets) >= r.batchSize {
			if err := r.flush(ctx); err != nil {
				return err
			}
		}
		r.b.Packets = r.b.Packets[:len(r.b.Packets)+1]
		p := &r.b.Packets[len(r.b.Packets)-1]
		fill(p, rec, r.clock.offset, r.vantage)
		s := snap
		if segs > 1 {
			segment(p, rec, k, segs, size)
			lo := min(k*size, len(snap))
			s = snap[lo:min(lo+size, len(snap))]
		}
		if r.anon != nil {
			r.anon.Anonymize(p)
		}
		if len(s) > 0 {
			r.refs = append(r.refs, snapRef{len(r.b.Packets) - 1, len(r.b.Arena), len(s)})
			r.b.Arena = append(r.b.Arena, s...)
			r.snapBytes += uint64(len(s))
		}
	}
	return nil
}
