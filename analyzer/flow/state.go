package flow

import (
	"net/netip"
	"unsafe"

	"github.com/tamperscope/tamperscope/schemas"
)

// State is one flow. The table owns it: a pointer returned by Update is
// valid until the next call into the table, and the one given to OnEnd only
// during that call. Exported fields are read-only for callers.
//
// Layout follows access frequency, because a table of many flows is
// touched at random and every cache line a packet needs is a likely miss.
// The first line holds what every packet reads (key, Zeek flags, index,
// last time); the second what server packets and payload collection read;
// then each direction's counters (two hot lines of three) and the hot
// halves of the Zeek endpoints. Fields read only at handshake or flow end
// come last, and reset evidence and throughput bins live in side records
// taken on first use (RST, Down). LRU links live outside the State
// (Table.links). layout_test.go pins the alignment.
type State struct {
	Key   Key
	Proto uint8

	cls       uint8
	cside     uint8 // physical side (index of z) of the client
	firstSeen uint8
	isPartial bool
	hasDown   bool // Down is set
	hsWait    bool // SYN-ACK seen, handshake ACK not yet
	srvRST    bool // a RST came from the server side: count what follows
	histSeen  uint32
	idx       int32

	LastNs int64 // latest packet

	buf [2]*buffer

	// RST is raw evidence about the flow's resets, for detectors; nil when
	// the flow had no RST.
	RST *RSTEvidence
	// Down summarises server-to-client data for throughput analysis; nil
	// when the server sent no data.
	Down *Throughput

	gen         uint32
	serverISNp1 uint32 // server ISN + 1, to recognise the handshake ACK
	hash        uint32 // low bits of the key's index hash, to find its slot
	live        bool
	reason      EndReason
	stopped     [2]bool
	_           [16]byte // to the end of the second line

	// Dir holds per-direction counters, indexed by FromClient/FromServer.
	Dir [2]DirStats

	// Zeek model (zeek.go). z and zc are indexed by physical side: 0 is
	// the Key's Lo endpoint, 1 its Hi endpoint.
	z [2]zEndpoint

	// Cold: written at creation, on handshake packets and on rare events.
	zc        [2]zCold
	hist      [maxHistory]byte
	histLen   uint8
	IPVersion uint8
	StartNs   int64 // first packet
	synSentNs int64 // last client SYN before the SYN-ACK
	synAckNs  int64

	// SynRTTNs is the time from the client's last SYN before the first
	// SYN-ACK to that SYN-ACK; HandshakeRTTNs from that SYN to the client's
	// first ACK of the SYN-ACK. 0 when unknown.
	SynRTTNs       int64
	HandshakeRTTNs int64

	Client netip.AddrPort
	Server netip.AddrPort
	ICMP   ICMPInfo
	// Vantage is the vantage of the flow's first packet. It also fills
	// State to a whole number of cache lines.
	Vantage string
}

const maxHistory = 64

// DirStats are the counters of one direction. The fields a packet updates
// come first and fill two cache lines (the tracker's hole list, needed only
// when segments go missing, starts the third); the rest pads the struct to
// three lines, so both directions start on a line.
type DirStats struct {
	Pkts        uint64
	IPBytes     uint64 // IP total length summed
	Payload     uint64 // transport payload bytes summed (retransmissions included)
	LastNs      int64
	FirstDataNs int64
	LastDataNs  int64
	lastAdvance int64 // when a data segment last extended MaxSeq
	DataPkts    uint32
	MaxAck      uint32 // highest ack sent (TCP)
	NextSeq     uint32 // next expected seq: end of the contiguous data seen
	MaxSeq      uint32 // highest seq end seen

	Net NetTrace // TTL and IP ID of this direction's packets

	// TCP.
	Window       uint16 // latest window (unscaled)
	SawSYN       bool
	SawAck       bool
	Retrans      uint32 // data segments entirely below MaxSeq whose bytes were all seen, or filled a hole late
	RetransBytes uint64
	OOO          uint32 // data segments that filled a hole soon after it opened
	seq          seqTracker

	ISN         uint32
	SYNs        uint32 // SYN packets (SYN-ACKs for the server)
	FINs        uint32
	RSTs        uint32
	ZeroWindows uint32 // packets advertising window 0 (not RSTs)
	WScale      uint8
	_           [11]byte
}

// NetTrace summarises the IP TTL and identification of a direction.
type NetTrace struct {
	Pkts      uint32
	FirstIPID uint32
	LastIPID  uint32
	// IPIDStep is the last IP ID difference between consecutive packets
	// (mod 2^16 for IPv4), MaxIPIDStep the largest seen.
	IPIDStep    uint32
	MaxIPIDStep uint32
	FirstTTL    uint8
	MinTTL      uint8
	MaxTTL      uint8
	LastTTL     uint8
}

func (n *NetTrace) add(p *schemas.PacketMeta) {
	if n.Pkts == 0 {
		n.FirstTTL, n.MinTTL, n.MaxTTL = p.TTL, p.TTL, p.TTL
		n.FirstIPID = p.IPID
	} else {
		n.MinTTL = min(n.MinTTL, p.TTL)
		n.MaxTTL = max(n.MaxTTL, p.TTL)
		step := p.IPID - n.LastIPID
		if p.IPVersion == 4 {
			step &= 0xffff
		}
		n.IPIDStep = step
		n.MaxIPIDStep = max(n.MaxIPIDStep, step)
	}
	n.LastTTL = p.TTL
	n.LastIPID = p.IPID
	n.Pkts++
}

// ICMPInfo records ICMP errors that quote the flow (unreachable,
// admin-prohibited, time exceeded...).
type ICMPInfo struct {
	Errors  uint32
	Type    uint8 // of the first error
	Code    uint8
	FirstNs int64
	From    netip.Addr // sender of the first error (the router or host)
	// Dir is the direction of the first error: FromServer when it travels
	// toward the client (the usual case: the client's packet was refused).
	Dir Dir
}

// MaxRSTs is how many RST packets a flow keeps in RSTEvidence.Pkts.
const MaxRSTs = 8

// RSTPacket is one RST as seen on the wire.
type RSTPacket struct {
	TsNs       int64
	Dir        Dir
	Flags      uint8
	Seq, Ack   uint32
	Window     uint16
	TTL        uint8
	IPID       uint32
	PayloadLen uint32
	// LastClientDataNs is when the client last sent data before this RST
	// (0: never).
	LastClientDataNs int64
}

// RSTEvidence is collected on the hot path; detectors judge it at flow end.
type RSTEvidence struct {
	Count uint32 // all RSTs
	N     uint8  // RSTs stored in Pkts
	Pkts  [MaxRSTs]RSTPacket
	// ClientPre and ServerPre snapshot each side's TTL / IP ID trace just
	// before the first RST.
	ClientPre, ServerPre NetTrace
	// After the first RST claiming to come from the server: the server's
	// non-RST packets, those carrying data, and when the first arrived.
	// Non-zero means the real server kept talking (an injection race).
	ServerPktsAfter uint32
	ServerDataAfter uint32
	FirstAfterNs    int64
}

// rstRecord and downRecord pad the side records to whole cache lines.
type rstRecord struct {
	RSTEvidence
	_ [(64 - unsafe.Sizeof(RSTEvidence{})%64) % 64]byte
}

type downRecord struct {
	Throughput
	_ [(64 - unsafe.Sizeof(Throughput{})%64) % 64]byte
}

// ThroughputBinNs is the width of Throughput.Bins.
const ThroughputBinNs = 100_000_000

// ThroughputBins is the number of bins (6.4 s of data phase).
const ThroughputBins = 64

// Throughput summarises the server-to-client data of a flow in fixed size.
type Throughput struct {
	FirstNs, LastNs int64  // first and last server data segment
	Bytes           uint64 // payload bytes, retransmissions included
	RetransBytes    uint64
	Segments        uint32
	MaxGapNs        int64 // longest pause between server data segments
	// Bins holds new (non-retransmitted) payload bytes per 100 ms of packet
	// time from FirstNs.
	Bins [ThroughputBins]uint32
}

// Stream returns the contiguous prefix of a TCP direction's byte stream
// reassembled so far (from ISN+1, or from the first data seen without a
// SYN), up to Config.StreamBytes. The slice aliases a table buffer: it is
// valid until StopCollect(dir) or the end of the flow.
func (s *State) Stream(d Dir) []byte {
	// Flags on the first line decide before the buffer pointer is loaded.
	if s.stopped[d] || s.Proto != schemas.ProtoTCP || s.buf[d] == nil {
		return nil
	}
	return s.buf[d].contiguous()
}

// StopCollect stops collecting payload for a direction and returns its
// buffer to the table at once, so the rest of the flow costs nothing and
// the next flow to collect reuses a buffer that is still in cache.
func (s *State) StopCollect(d Dir) {
	s.stopped[d] = true
	if b := s.buf[d]; b != nil {
		s.buf[d] = nil
		*b.free = append(*b.free, b)
	}
}

// Collecting reports whether a direction still collects payload.
func (s *State) Collecting(d Dir) bool { return !s.stopped[d] }

// History is the Zeek history string (upper case: client).
func (s *State) History() string { return string(s.hist[:s.histLen]) }

// FlowID is the flow's stable identifier (Zeek-uid style).
func (s *State) FlowID() string { return flowID(&s.Key, s.StartNs) }

// Record fills the flow-level fields of r; application-level and detector
// fields are left to the caller.
func (s *State) Record(r *schemas.FlowRecord) {
	r.FlowID = s.FlowID()
	r.Vantage = s.Vantage
	r.StartNs, r.EndNs = s.StartNs, s.LastNs
	r.Proto = protoName(s.Proto, s.IPVersion)
	r.IPVersion = s.IPVersion
	r.ClientIP, r.ClientPort = s.Client.Addr().String(), s.Client.Port()
	r.ServerIP, r.ServerPort = s.Server.Addr().String(), s.Server.Port()
	c, v := &s.Dir[FromClient], &s.Dir[FromServer]
	r.ClientPkts, r.ClientBytes, r.ClientPayload = c.Pkts, c.IPBytes, c.Payload
	r.ServerPkts, r.ServerBytes, r.ServerPayload = v.Pkts, v.IPBytes, v.Payload
	r.ConnState = s.ConnState()
	r.History = s.History()
	if s.reason != 0 {
		r.EndReason = s.reason.String()
	}
	r.HandshakeRTTNs, r.SynRTTNs = s.HandshakeRTTNs, s.SynRTTNs
	r.ClientRetrans, r.ServerRetrans = c.Retrans, v.Retrans
	r.ClientOOO, r.ServerOOO = c.OOO, v.OOO
	r.ClientSyns = c.SYNs
	r.ClientTTL, r.ServerTTL = c.Net.FirstTTL, v.Net.FirstTTL
	r.RSTs = 0
	if s.RST != nil {
		r.RSTs = s.RST.Count
	}
	r.RSTFromServer = v.RSTs
	r.ICMPType, r.ICMPCode = s.ICMP.Type, s.ICMP.Code
	r.DataPhaseNs, r.MaxGapNs, r.GoodputBps = 0, 0, 0
	if d := s.Down; d != nil {
		r.DataPhaseNs = d.LastNs - d.FirstNs
		r.MaxGapNs = d.MaxGapNs
		if r.DataPhaseNs > 0 {
			r.GoodputBps = float64(d.Bytes-d.RetransBytes) * 8e9 / float64(r.DataPhaseNs)
		}
	}
}

// Ended returns why the flow ended; 0 while it is live.
func (s *State) Ended() EndReason { return s.reason }

func protoName(p, v uint8) string {
	switch p {
	case schemas.ProtoTCP:
		return "tcp"
	case schemas.ProtoUDP:
		return "udp"
	case schemas.ProtoICMP:
		return "icmp"
	case schemas.ProtoICMPv6:
		return "icmpv6"
	}
	return "other"
}
