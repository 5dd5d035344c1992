package lab

import (
	"time"

	"github.com/tamperscope/tamperscope/lab/injector"
)

// Benign reasons, the Benign field of attempts labelled LabelBenign.
const (
	LabelBenign = "benign"

	BenignControl       = "control"                     // same IP or name as a target, not censored
	BenignServerReset   = "server_reset_after_response" // server RST once the body was acknowledged
	BenignClosedPort    = "closed_port"                 // RST to the SYN from the server's own kernel
	BenignClientAbort   = "client_abort"                // client RST after a partial read
	BenignHappyEyeballs = "happy_eyeballs_loser"        // connection the client raced and dropped
	BenignPathSlow      = "path_slow"                   // every flow on the path is slow
)

// TriggerPath marks a throttling finding that is not targeted: the whole
// path is slow for everyone.
const TriggerPath = "path"

// Truth is the ground truth of one scenario run.
type Truth struct {
	Scenario    string   `json:"scenario"`
	Seed        int64    `json:"seed"`
	Description string   `json:"description"`
	ClientAddrs []string `json:"client_addrs"`
	// Resolver is the scenario's DNS server; Zone its records, every name
	// mapped to all the addresses hosting it.
	Resolver string              `json:"resolver"`
	Zone     map[string][]string `json:"zone"`
	Findings []ExpectedFinding   `json:"findings"`
	Attempts []AttemptTruth      `json:"attempts"`
	Injector []injector.Event    `json:"injector_events,omitempty"`
	Rules    []string            `json:"rules"` // censor commands run on the router
}

// ExpectedFinding is what a detector should report for a scenario. Field
// names follow schemas.Finding.
type ExpectedFinding struct {
	Kind       string   `json:"kind"`
	TargetIP   string   `json:"target_ip"`
	TargetPort uint16   `json:"target_port"` // 0: any port
	TargetName string   `json:"target_name,omitempty"`
	Trigger    string   `json:"trigger"` // sni, quic_sni, ip or path
	Method     string   `json:"method"`  // rst, drop, icmp, throttle
	RateBps    float64  `json:"rate_bps,omitempty"`
	Targeted   bool     `json:"targeted"`
	Collateral []string `json:"collateral,omitempty"`
	// Censor names the device: iptables-reject (TTL 64, IP ID 0, no ACK),
	// gfw-burst, copy, or htb.
	Censor string `json:"censor,omitempty"`
	Note   string `json:"note,omitempty"`
}

// AttemptTruth is one client attempt.
type AttemptTruth struct {
	ID         int    `json:"id"`
	Proto      string `json:"proto"`     // tls, http or quic
	Transport  string `json:"transport"` // tcp or udp
	ClientIP   string `json:"client_ip"`
	ClientPort uint16 `json:"client_port"`
	ServerIP   string `json:"server_ip"`
	ServerPort uint16 `json:"server_port"`
	Name       string `json:"name"`
	TLS12      bool   `json:"tls12,omitempty"`

	Label  string `json:"label"`            // expected finding kind, or "benign"
	Benign string `json:"benign,omitempty"` // reason, for benign attempts
	Expect string `json:"expect"`           // outcome the scenario should cause

	StartNs    int64   `json:"start_ns"`
	DurationNs int64   `json:"duration_ns"`
	Outcome    string  `json:"outcome"` // what the client saw
	Error      string  `json:"error,omitempty"`
	Bytes      int     `json:"bytes"`
	RateBps    float64 `json:"rate_bps,omitempty"`
	// ServerClose is how the server ended a complete exchange: fin, reset
	// or empty.
	ServerClose string `json:"server_close,omitempty"`
	// ExpectRateBps, when set, is the rate the client should measure.
	ExpectRateBps float64 `json:"expect_rate_bps,omitempty"`
	// Resolved lists the addresses the client's DNS query for Name
	// returned before it connected.
	Resolved []string `json:"resolved,omitempty"`
}

// Start returns the attempt's start time.
func (a AttemptTruth) Start() time.Time { return time.Unix(0, a.StartNs) }
