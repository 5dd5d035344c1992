package detect

import "time"

// What the detectors remember of an address beyond its windows (the names
// seen on it, the TTL of its SYN-ACKs; the engine's DNS answers likewise)
// is forgotten when the address has not been seen for between
// AddressMemory and twice that, or sooner when more than MaxAddresses
// addresses were seen within AddressMemory: months of capture then hold
// at most 2*MaxAddresses of each (internal/recent).
const (
	AddressMemory = 24 * time.Hour
	MaxAddresses  = 1 << 18
)

// Config tunes the detectors. The zero value works; every zero field takes
// the default in its comment.
type Config struct {
	// Timeout is the silence after which an unanswered flow counts as
	// timed out. Default 3s, as in Cloudflare's study.
	Timeout time.Duration
	// Window is the span of packet time over which flows to one address
	// are compared. Default 10m.
	Window time.Duration
	// ResidualWindow is how long after a trigger failures to the same
	// server:port count as residual blocking. Default 180s (GFW: 90-180s).
	ResidualWindow time.Duration
	// IPIDJump is the smallest IP ID step taken as a jump. Default 1024.
	IPIDJump uint32
	// MinRTTForTiming is the smallest SYN RTT for which reset timing is
	// evidence (below it, clock noise dominates). Default 2ms.
	MinRTTForTiming time.Duration
	// MinBlockFlows is the number of failed flows an IP needs before it is
	// reported as blocked. Default 2.
	MinBlockFlows int
	// ThrottleMinBytes is the server payload a flow needs to count for
	// throughput. Default 48 KiB.
	ThrottleMinBytes uint64
	// ThrottleRatio is how many times slower than its controls a target
	// must be to count as throttled. Default 4.
	ThrottleRatio float64
	// SlowPathBps is the plateau below which bulk transfers with no faster
	// control anywhere are reported as a path slow for everyone. Default
	// 2 Mbit/s.
	SlowPathBps float64
	// InterceptionIssuers are certificate issuer substrings of known
	// interception roots. Default DefaultInterceptionIssuers.
	InterceptionIssuers []string
}

// DefaultInterceptionIssuers name roots used for state interception.
var DefaultInterceptionIssuers = []string{
	"Qaznet Trust Network", // Kazakhstan 2019, 2020
}

// WindowStart returns the start of the window of packet time that a flow
// starting at ns belongs to.
func (c Config) WindowStart(ns int64) int64 {
	w := int64(c.withDefaults().Window)
	return ns - ns%w
}

// Effective returns c with every default filled in: what the detectors
// run with, and what datasets record as their detector configuration.
func (c Config) Effective() Config { return c.withDefaults() }

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Minute
	}
	if c.ResidualWindow <= 0 {
		c.ResidualWindow = 180 * time.Second
	}
	if c.IPIDJump == 0 {
		c.IPIDJump = 1024
	}
	if c.MinRTTForTiming <= 0 {
		c.MinRTTForTiming = 2 * time.Millisecond
	}
	if c.MinBlockFlows <= 0 {
		c.MinBlockFlows = 2
	}
	if c.ThrottleMinBytes == 0 {
		c.ThrottleMinBytes = 48 << 10
	}
	if c.ThrottleRatio <= 0 {
		c.ThrottleRatio = 4
	}
	if c.SlowPathBps <= 0 {
		c.SlowPathBps = 2e6
	}
	if c.InterceptionIssuers == nil {
		c.InterceptionIssuers = DefaultInterceptionIssuers
	}
	return c
}
