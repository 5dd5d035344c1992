package afpacket

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/afpacket"

	"github.com/tamperscope/tamperscope/bpf"
	"github.com/tamperscope/tamperscope/capture"
)

// Config configures Open. The zero value works.
type Config struct {
	// BlockSize is the TPACKET_V3 block size, a multiple of the page size
	// and of 64 KiB (the largest frame kept). The default is 1 MiB.
	BlockSize int
	// Blocks is the number of blocks in the ring. The default, 64, makes
	// a 64 MiB ring.
	Blocks int
	// BlockTimeout is how long the kernel holds a partly filled block
	// before handing it over. The default is 10ms.
	BlockTimeout time.Duration
	// Filter selects the frames delivered, as bpf.Filter does in the
	// kernel for the eBPF source.
	Filter bpf.Filter
}

const frameSize = 1 << 16

// Source reads frames from one interface.
type Source struct {
	tp      *afpacket.TPacket
	filter  bpf.Filter
	filters bool
	stopAt  atomic.Int64 // Stop's time (Unix ns); 0 until Stop
	// Counters are atomic so Stats can be read while Next runs.
	frames, bytes, skips atomic.Uint64
}

// Open opens an AF_PACKET socket on iface in the current network namespace
// (CAP_NET_RAW). The socket keeps that namespace for its lifetime.
func Open(iface string, cfg Config) (*Source, error) {
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = 1 << 20
	}
	if cfg.BlockSize%frameSize != 0 {
		return nil, fmt.Errorf("open AF_PACKET on %s: block size %d is not a multiple of %d", iface, cfg.BlockSize, frameSize)
	}
	if cfg.Blocks <= 0 {
		cfg.Blocks = 64
	}
	if cfg.BlockTimeout <= 0 {
		cfg.BlockTimeout = 10 * time.Millisecond
	}
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(iface),
		afpacket.OptFrameSize(frameSize),
		afpacket.OptBlockSize(cfg.BlockSize),
		afpacket.OptNumBlocks(cfg.Blocks),
		afpacket.OptBlockTimeout(cfg.BlockTimeout),
		afpacket.OptPollTimeout(100*time.Millisecond),
		afpacket.OptAddVLANHeader(true),
		afpacket.TPacketVersion3,
	)
	if err != nil {
		return nil, fmt.Errorf("open AF_PACKET on %s: %w", iface, err)
	}
	f := cfg.Filter
	return &Source{tp: tp, filter: f, filters: len(f.Ports)+len(f.Nets)+len(f.ExcludePorts)+len(f.ExcludeNets) > 0}, nil
}

// Next returns the next frame. Data aliases the ring and is valid until
// the next call. After Stop, Next still returns the frames the kernel
// captured before it, those of the block the kernel retires a block
// timeout later included, then io.EOF: at the first frame captured after
// the Stop, or after a poll timeout (100 ms) without a frame.
func (s *Source) Next(f *capture.Frame) error {
	for {
		stopAt := s.stopAt.Load()
		data, ci, err := s.tp.ZeroCopyReadPacketData()
		if err != nil {
			if errors.Is(err, afpacket.ErrTimeout) {
				if stopAt != 0 {
					return io.EOF
				}
				return capture.ErrNoFrame
			}
			return fmt.Errorf("read AF_PACKET: %w", err)
		}
		if stopAt != 0 && ci.Timestamp.UnixNano() > stopAt {
			return io.EOF
		}
		if s.filters && !s.match(data) {
			s.skips.Add(1)
			continue
		}
		s.frames.Add(1)
		s.bytes.Add(uint64(len(data)))
		*f = capture.Frame{
			TimestampNs: ci.Timestamp.UnixNano(),
			LinkType:    capture.LinkEthernet,
			Iface:       uint32(ci.InterfaceIndex),
			CapLen:      uint32(ci.CaptureLength),
			WireLen:     uint32(ci.Length),
			Data:        data,
		}
		return nil
	}
}

// Stop makes Next return io.EOF once it has returned the frames captured
// before; safe from any goroutine.
func (s *Source) Stop() { s.stopAt.CompareAndSwap(0, time.Now().UnixNano()) }

// Stats reports frames delivered and the kernel's drops; safe from any
// goroutine. Skips counts frames the filter left out.
func (s *Source) Stats() capture.Stats {
	st := capture.Stats{Frames: s.frames.Load(), Bytes: s.bytes.Load(), Skips: s.skips.Load()}
	if _, v3, err := s.tp.SocketStats(); err == nil {
		st.Drops = uint64(v3.Drops())
	}
	return st
}

// Close releases the socket and its ring.
func (s *Source) Close() error {
	s.tp.Close()
	return nil
}

// match applies the filter to an Ethernet frame; frames it cannot parse
// (not IP, truncated) pass, as the eBPF program records them too.
func (s *Source) match(b []byte) bool {
	if len(b) < 14 {
		return true
	}
	et := uint16(b[12])<<8 | uint16(b[13])
	off := 14
	for range 2 {
		if et != 0x8100 && et != 0x88a8 {
			break
		}
		if len(b) < off+4 {
			return true
		}
		et = uint16(b[off+2])<<8 | uint16(b[off+3])
		off += 4
	}
	var src, dst netip.Addr
	var proto uint8
	var l4 int
	switch et {
	case 0x0800:
		if len(b) < off+20 {
			return true
		}
		h := b[off:]
		src = netip.AddrFrom4([4]byte(h[12:16]))
		dst = netip.AddrFrom4([4]byte(h[16:20]))
		proto = h[9]
		l4 = off + int(h[0]&0x0f)*4
		if (uint16(h[6])<<8|uint16(h[7]))&0x1fff != 0 {
			l4 = -1
		}
	case 0x86dd:
		if len(b) < off+40 {
			return true
		}
		h := b[off:]
		src = netip.AddrFrom16([16]byte(h[8:24]))
		dst = netip.AddrFrom16([16]byte(h[24:40]))
		proto = h[6]
		l4 = off + 40
	default:
		return true
	}
	ports := (proto == 6 || proto == 17) && l4 > 0 && len(b) >= l4+4
	var sp, dp uint16
	if ports {
		sp = uint16(b[l4])<<8 | uint16(b[l4+1])
		dp = uint16(b[l4+2])<<8 | uint16(b[l4+3])
	}
	return s.filter.Match(src, dst, sp, dp, ports)
}
