package flow

import "time"

// Dir is the direction of a packet relative to the flow's client.
type Dir uint8

const (
	FromClient Dir = 0
	FromServer Dir = 1
)

func (d Dir) String() string {
	if d == FromClient {
		return "client"
	}
	return "server"
}

// EndReason says why a flow left the table.
type EndReason uint8

const (
	EndFIN     EndReason = iota + 1 // closed by FINs both ways, after the linger time
	EndRST                          // closed by a RST, after the linger time
	EndIdle                         // no packet for longer than its timeout
	EndEvicted                      // least recently active flow when the table was full
	EndEOF                          // FlushAll (end of input)
	EndReuse                        // a new connection reused the 4-tuple of an open flow
	EndSplit                        // open too long to hold back: written so far, later packets start a new flow (Table.Split)
)

func (r EndReason) String() string {
	switch r {
	case EndFIN:
		return "fin"
	case EndRST:
		return "rst"
	case EndIdle:
		return "idle"
	case EndEvicted:
		return "evicted"
	case EndEOF:
		return "eof"
	case EndReuse:
		return "reuse"
	case EndSplit:
		return "split"
	}
	return "unknown"
}

// Config configures a Table. The zero value works: every zero field takes
// the default given in its comment. All durations are packet time.
type Config struct {
	// MaxFlows bounds the number of live flows; at the cap the least
	// recently active flow is evicted. Default 262144.
	MaxFlows int

	// TCPTimeout expires an established (or midstream) TCP flow idle this
	// long. Default 5m (Zeek's tcp_inactivity_timeout).
	TCPTimeout time.Duration
	// TCPAttemptTimeout expires a TCP flow whose SYN got no answer, idle
	// this long. Default 30s: longer than the gaps between a client's SYN
	// retransmissions, so one blackholed attempt stays one flow.
	TCPAttemptTimeout time.Duration
	// TCPClosedLinger keeps a closed flow (FIN both ways, or any RST) this
	// long after its last packet, so late packets — server data racing an
	// injected RST — still land in it. Default 5s (Zeek's tcp_close_delay).
	TCPClosedLinger time.Duration
	// UDPTimeout expires UDP (and other non-TCP, non-ICMP) flows. Default 1m.
	UDPTimeout time.Duration
	// ICMPTimeout expires ICMP flows. Default 1m.
	ICMPTimeout time.Duration

	// StreamBytes is how many bytes of each TCP direction are reassembled
	// for parsers (State.Stream). Default 16 KiB; negative disables.
	StreamBytes int

	// ServerPorts are the ports taken as "likely server" when deciding the
	// client of a flow whose first packet is not a SYN. Default
	// DefaultServerPorts.
	ServerPorts []uint16

	// OnEnd receives every flow that leaves the table. The State is valid
	// only during the call; it is recycled afterwards.
	OnEnd func(st *State, reason EndReason)
}

// DefaultServerPorts approximate Zeek's likely_server_ports: the ports its
// default protocol analyzers register.
var DefaultServerPorts = []uint16{
	20, 21, 22, 23, 25, 42, 53, 67, 69, 80, 81, 88, 102, 110, 111, 123, 135,
	137, 138, 139, 143, 161, 162, 179, 389, 443, 445, 465, 500, 502, 514,
	563, 585, 587, 593, 614, 636, 853, 989, 990, 992, 993, 994, 995, 1080,
	1194, 1433, 1434, 1701, 1723, 1812, 1813, 1883, 2049, 2123, 2152, 3128,
	3306, 3389, 3478, 4500, 4789, 5060, 5061, 5222, 5223, 5353, 5355, 5432,
	5900, 6081, 6379, 6443, 6666, 6667, 6668, 6669, 8000, 8080, 8443, 8888,
	9092, 9200, 27017,
}

// DefaultTCPTimeout is Config.TCPTimeout's default.
const DefaultTCPTimeout = 5 * time.Minute

const (
	defaultMaxFlows     = 262144
	defaultTCPTimeout   = DefaultTCPTimeout
	defaultTCPAttempt   = 30 * time.Second
	defaultClosedLinger = 5 * time.Second
	defaultUDPTimeout   = time.Minute
	defaultICMPTimeout  = time.Minute
	defaultStreamBytes  = 16 << 10
)

func (c Config) withDefaults() Config {
	if c.MaxFlows <= 0 {
		c.MaxFlows = defaultMaxFlows
	}
	if c.TCPTimeout <= 0 {
		c.TCPTimeout = defaultTCPTimeout
	}
	if c.TCPAttemptTimeout <= 0 {
		c.TCPAttemptTimeout = defaultTCPAttempt
	}
	if c.TCPClosedLinger <= 0 {
		c.TCPClosedLinger = defaultClosedLinger
	}
	if c.UDPTimeout <= 0 {
		c.UDPTimeout = defaultUDPTimeout
	}
	if c.ICMPTimeout <= 0 {
		c.ICMPTimeout = defaultICMPTimeout
	}
	switch {
	case c.StreamBytes == 0:
		c.StreamBytes = defaultStreamBytes
	case c.StreamBytes < 0:
		c.StreamBytes = 0
	}
	if c.ServerPorts == nil {
		c.ServerPorts = DefaultServerPorts
	}
	return c
}

// Stats are the table's counters since it was created.
type Stats struct {
	Packets        uint64 // packets given to Update
	Invalid        uint64 // packets without usable addresses, skipped
	Flows          uint64 // flows created
	Active         int    // flows in the table now
	Ended          [EndSplit + 1]uint64
	Evicted        uint64 // same as Ended[EndEvicted]
	Reused         uint64 // 4-tuples reused by a new SYN
	FragLater      uint64 // IP later-fragments seen
	FragAttributed uint64 // of those, counted on their flow by IP ID
	ICMPErrors     uint64 // ICMP errors attributed to the flow they quote
	StreamDrops    uint64 // TCP segments not placed in a stream buffer (too many holes)
	Resumed        uint64 // packets dropped because a split record written before holds them (Table.Resume)
}
