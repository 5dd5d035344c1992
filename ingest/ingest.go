package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/tamperscope/tamperscope/analyzer/decode"
	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport"
)

// Config configures Run. The zero value works.
type Config struct {
	// BatchSize is the number of packets per published batch. The default
	// is 4096.
	BatchSize int
	// BatchBytes ends a batch early once its payload snapshots reach this
	// many bytes, which bounds the memory of the batches in flight. The
	// default is 1 MiB.
	BatchBytes int
	// Snap is the payload snapshot policy.
	Snap SnapConfig
	// Decode configures the decoder (vantage id, tunnel ports).
	Decode decode.Options
	// FlushInterval, when set, bounds how long a packet waits in a
	// partial batch: live sources set it (100ms is a good value) so light
	// traffic still reaches the analyzer promptly. Files leave it 0.
	FlushInterval time.Duration
	// Progress, when set, is updated as frames are read, for progress
	// display from another goroutine.
	Progress *Progress
	// Anonymize, when set, rewrites every decoded packet before it is
	// snapshotted and published. The default keeps packets as decoded.
	Anonymize Anonymizer
	// Prepare, when set, is told of every packet and batch Run makes
	// (Preparer).
	Prepare Preparer
}

// Preparer is told of every packet Run adds to a batch, as soon as the
// packet is decoded and its payload snapshot taken, while it is still in
// the CPU's cache, and of every batch just before Run publishes it: an
// analyzer in the same process works out there what it can ahead of its
// own goroutine (analyzer.Engine implements it). Both run on Run's
// goroutine.
type Preparer interface {
	// PreparePacket is told of b.Packets[i]; snap is its payload
	// snapshot, which b.Packets[i].Payload is once b is published.
	PreparePacket(b *schemas.PacketBatch, i int, snap []byte)
	// PrepareBatch is told of b once b holds all its packets.
	PrepareBatch(b *schemas.PacketBatch)
}

// Progress is read by other goroutines while Run works.
type Progress struct {
	Frames atomic.Uint64
	Bytes  atomic.Uint64 // input bytes consumed, as the source counts them
}

// Stats is what Run did.
type Stats struct {
	Source    capture.Stats
	Decode    decode.Stats
	Published uint64 // packets published
	Batches   uint64
	SnapBytes uint64 // payload bytes snapshotted
}

// Skipped is the number of frames that were not published.
func (s Stats) Skipped() uint64 { return s.Decode.Frames - s.Published }

// BatchGetter is implemented by transports that recycle batches.
type BatchGetter interface {
	Get() *schemas.PacketBatch
}

// Run reads src to its end, publishing batches to pub. It returns nil at
// the end of the input and the source's error otherwise (ErrInputFault
// when reading a frame faulted); in every case each frame read whole
// before the end has been published. It does not close pub.
func Run(ctx context.Context, src capture.Source, pub transport.Publisher, cfg Config) (Stats, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 4096
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 1 << 20
	}
	dec := decode.New(cfg.Decode)
	snap := newSnapper(cfg.Snap)
	getter, _ := pub.(BatchGetter)
	get := func() *schemas.PacketBatch {
		if getter != nil {
			return getter.Get()
		}
		return &schemas.PacketBatch{}
	}
	var st Stats
	b := get()
	type snapRef struct{ idx, off, n int }
	var refs []snapRef
	flush := func() error {
		if len(b.Packets) == 0 {
			return nil
		}
		// Point snapshots into the arena now that it no longer grows.
		for _, r := range refs {
			b.Packets[r.idx].Payload = b.Arena[r.off : r.off+r.n : r.off+r.n]
		}
		refs = refs[:0]
		st.Published += uint64(len(b.Packets))
		st.Batches++
		if cfg.Prepare != nil {
			cfg.Prepare.PrepareBatch(b)
		}
		if err := pub.Publish(ctx, b); err != nil {
			return fmt.Errorf("publish batch: %w", err)
		}
		b = get()
		return nil
	}

	var f capture.Frame
	lastFlush := time.Now()
	flushIfStale := func() error {
		if cfg.FlushInterval > 0 && len(b.Packets) > 0 && time.Since(lastFlush) >= cfg.FlushInterval {
			lastFlush = time.Now()
			return flush()
		}
		return nil
	}
	// read runs the frame loop. A publish error returns as err; the
	// source's error, or a memory fault while the frame was read, as
	// readErr. pending is set while a packet is half added to b, so that a
	// fault in the middle of it takes it out again.
	pending := false
	read := func() (readErr, err error) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer catchFault(&readErr, func() {
			if !pending {
				return
			}
			last := len(b.Packets) - 1
			if k := len(refs) - 1; k >= 0 && refs[k].idx == last {
				b.Arena = b.Arena[:refs[k].off]
				refs = refs[:k]
			}
			b.Packets = b.Packets[:last]
		})
		for n := uint64(0); ; n++ {
			if err := src.Next(&f); err != nil {
				if errors.Is(err, capture.ErrNoFrame) {
					if err := flushIfStale(); err != nil {
						return nil, err
					}
					continue
				}
				if errors.Is(err, io.EOF) {
					return nil, nil
				}
				return err, nil
			}
			if n&63 == 0 {
				if err := flushIfStale(); err != nil {
					return nil, err
				}
			}
			if cfg.Progress != nil && dec.Stats().Frames&1023 == 0 {
				s := src.Stats()
				cfg.Progress.Frames.Store(s.Frames)
				cfg.Progress.Bytes.Store(s.Bytes)
			}
			if len(b.Arena) >= cfg.BatchBytes {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			if len(b.Packets) == cap(b.Packets) {
				if len(b.Packets) >= cfg.BatchSize {
					if err := flush(); err != nil {
						return nil, err
					}
				}
				if cap(b.Packets) < cfg.BatchSize {
					b.Packets = append(make([]schemas.PacketMeta, 0, cfg.BatchSize), b.Packets...)
				}
			}
			b.Packets = b.Packets[:len(b.Packets)+1]
			pending = true
			p := &b.Packets[len(b.Packets)-1]
			if err := dec.Decode(&f, p); err != nil && !errors.Is(err, decode.ErrPartial) {
				b.Packets = b.Packets[:len(b.Packets)-1]
				pending = false
				continue
			}
			if cfg.Anonymize != nil {
				cfg.Anonymize.Anonymize(p)
			}
			// Only a SYN (a new connection) or a payload concerns the
			// snapshot policy: most packets of a bulk transfer are
			// neither, and skip its hash and table.
			var kept []byte
			if len(p.Payload) > 0 || p.TCPFlags&schemas.TCPSyn != 0 {
				hash, dir := flowHash(p)
				if n := snap.keep(p, hash, dir); n > 0 {
					refs = append(refs, snapRef{len(b.Packets) - 1, len(b.Arena), n})
					b.Arena = append(b.Arena, p.Payload[:n]...)
					kept = b.Arena[len(b.Arena)-n:]
					st.SnapBytes += uint64(n)
				}
			}
			p.Payload = nil
			pending = false
			if cfg.Prepare != nil {
				cfg.Prepare.PreparePacket(b, len(b.Packets)-1, kept)
			}
		}
	}
	readErr, err := read()
	if err != nil {
		return st, err
	}
	if err := flush(); err != nil {
		return st, err
	}
	st.Source = src.Stats()
	st.Decode = dec.Stats()
	if cfg.Progress != nil {
		cfg.Progress.Frames.Store(st.Source.Frames)
		cfg.Progress.Bytes.Store(st.Source.Bytes)
	}
	return st, readErr
}
