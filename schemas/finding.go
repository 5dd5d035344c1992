package schemas

// Finding kinds.
const (
	KindSNIRSTInjection = "sni_rst_injection"
	KindSNIBlackhole    = "sni_blackhole"
	KindIPBlocking      = "ip_blocking"
	KindThrottling      = "throttling"
	KindResidualBlock   = "residual_block"
	KindQUICBlocking    = "quic_blocking"
	KindTLSInterception = "tls_interception"
)

// Finding is one detection: what was tampered with, how, and why
// tamperscope believes it.
type Finding struct {
	FindingID string `json:"finding_id" doc:"stable identifier: hash of kind, target and window"`
	Vantage   string `json:"vantage" doc:"vantage whose flows the finding is about: each vantage's flows are judged apart"`
	Kind      string `json:"kind" doc:"sni_rst_injection, sni_blackhole, ip_blocking, throttling, residual_block, quic_blocking, tls_interception"`
	Verdict   string `json:"verdict" doc:"confirmed, likely, insufficient_evidence, or path_limited (throttling of a path slow for everyone)"`

	TargetIP   string `json:"target_ip" doc:"server address"`
	TargetPort uint16 `json:"target_port" doc:"server port (0: any)"`
	TargetName string `json:"target_name" doc:"SNI or HTTP Host the finding is about (empty for IP-level findings)"`
	Trigger    string `json:"trigger" doc:"what triggered the censor: sni, http_host, quic_sni, esni (a ClientHello hiding its name), ip, path (throttling of a path slow for everyone)"`
	Method     string `json:"method" doc:"how: rst, drop, icmp, throttle, mitm"`

	WindowStartNs int64 `json:"window_start_ns" doc:"first flow considered"`
	WindowEndNs   int64 `json:"window_end_ns" doc:"last flow considered"`

	Flows        uint32   `json:"flows" doc:"flows that match the target"`
	FailedFlows  uint32   `json:"failed_flows" doc:"of those, flows that failed in the way this finding describes"`
	ControlFlows uint32   `json:"control_flows" doc:"same-IP flows with other names that succeeded"`
	Confidence   float64  `json:"confidence" doc:"0..1"`
	Evidence     string   `json:"evidence" doc:"human-readable summary of why"`
	ExampleFlows []string `json:"example_flows" doc:"up to 5 flow_id values"`
	Collateral   []string `json:"collateral" doc:"names seen on the target IP (ip_blocking, IP-level throttling)"`
	Fingerprint  string   `json:"fingerprint" doc:"censor fingerprint: stable hash of the injector's behaviour"`

	RateBps  float64 `json:"rate_bps" doc:"estimated throttling rate, bit/s"`
	Shape    string  `json:"shape" doc:"policing or shaping (throttling)"`
	Targeted bool    `json:"targeted" doc:"throttling applies to this target only, not to the whole path"`
	Issuer   string  `json:"issuer" doc:"certificate issuer (tls_interception)"`
}

// WindowDigest is one window of packet time as one partition of a stream
// judged it without the cross-address detectors (ip_blocking, throttling),
// which need every partition's addresses: `tamperscope aggregate` merges
// the digests of every partition into their findings.
type WindowDigest struct {
	DigestID      string `json:"digest_id" doc:"<topic>-p<partition>-w<window_start_ns>-<n>: n counts the judgements of the window (a long flow ending after its window was judged makes another)"`
	WindowStartNs int64  `json:"window_start_ns" doc:"start of the window of packet time"`
	Digest        string `json:"digest" doc:"JSON: the window's facts (successful names and transfer rates per address) and the addresses a cross-address detector could report, with their flows and collateral"`
}
