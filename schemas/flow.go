package schemas

// FlowRecord is one flow, written when it ends (FIN/RST close, idle
// timeout, eviction or end of input). "Client" is the side that sent the
// first SYN (or, without a SYN, the side with the higher port; see
// docs/datasets.md). All times come from packet timestamps.
type FlowRecord struct {
	FlowID  string `json:"flow_id" doc:"stable flow identifier: hash of the 5-tuple and start time"`
	Vantage string `json:"vantage" doc:"vantage identifier of the flow's first packet"`
	StartNs int64  `json:"start_ns" doc:"first packet, ns since the Unix epoch"`
	EndNs   int64  `json:"end_ns" doc:"last packet, ns since the Unix epoch"`

	Proto      string `json:"proto" doc:"tcp, udp, icmp or icmpv6"`
	IPVersion  uint8  `json:"ip_version" doc:"4 or 6"`
	ClientIP   string `json:"client_ip" doc:"originator address"`
	ClientPort uint16 `json:"client_port" doc:"originator port"`
	ServerIP   string `json:"server_ip" doc:"responder address"`
	ServerPort uint16 `json:"server_port" doc:"responder port"`

	ClientPkts    uint64 `json:"client_pkts" doc:"packets sent by the client"`
	ClientBytes   uint64 `json:"client_bytes" doc:"IP bytes sent by the client"`
	ClientPayload uint64 `json:"client_payload" doc:"transport payload bytes sent by the client"`
	ServerPkts    uint64 `json:"server_pkts" doc:"packets sent by the server"`
	ServerBytes   uint64 `json:"server_bytes" doc:"IP bytes sent by the server"`
	ServerPayload uint64 `json:"server_payload" doc:"transport payload bytes sent by the server"`

	ConnState      string `json:"conn_state" doc:"Zeek conn_state (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH)"`
	History        string `json:"history" doc:"Zeek history letters (upper case: client)"`
	EndReason      string `json:"end_reason" doc:"fin, rst, idle, evicted, eof, reuse (a new connection took the 4-tuple) or split (distributed mode: open longer than --max-open at a checkpoint, continued in a new flow)"`
	HandshakeRTTNs int64  `json:"handshake_rtt_ns" doc:"SYN to ACK of SYN-ACK as seen at the vantage; 0 when unknown"`
	SynRTTNs       int64  `json:"syn_rtt_ns" doc:"SYN to SYN-ACK; 0 when unknown"`
	ClientRetrans  uint32 `json:"client_retrans" doc:"client segments retransmitted"`
	ServerRetrans  uint32 `json:"server_retrans" doc:"server segments retransmitted"`
	ClientOOO      uint32 `json:"client_ooo" doc:"client segments out of order"`
	ServerOOO      uint32 `json:"server_ooo" doc:"server segments out of order"`
	ClientSyns     uint32 `json:"client_syns" doc:"SYNs sent by the client"`
	ClientTTL      uint8  `json:"client_ttl" doc:"TTL / hop limit of the client's first packet"`
	ServerTTL      uint8  `json:"server_ttl" doc:"TTL / hop limit of the server's first packet"`

	AppProto    string `json:"app_proto" doc:"tls, quic, http or empty"`
	SNI         string `json:"sni" doc:"server name from a TLS ClientHello or QUIC Initial"`
	ALPN        string `json:"alpn" doc:"ALPN protocols offered, comma-separated"`
	TLSVersion  string `json:"tls_version" doc:"highest TLS version offered by the client"`
	JA4         string `json:"ja4" doc:"JA4 client fingerprint"`
	ECH         bool   `json:"ech" doc:"ClientHello carries encrypted_client_hello (0xfe0d) or ESNI (0xffce)"`
	HTTPHost    string `json:"http_host" doc:"Host of the first HTTP/1.x request"`
	HTTPMethod  string `json:"http_method" doc:"method of the first HTTP/1.x request"`
	QUICVersion string `json:"quic_version" doc:"QUIC version of the client's Initial (hex)"`
	QUIC1RTT    bool   `json:"quic_1rtt" doc:"the QUIC client sent short-header (1-RTT) packets: its handshake completed"`

	ServerTLSVersion string `json:"server_tls_version" doc:"TLS version chosen by the server"`
	ServerCipher     string `json:"server_cipher" doc:"cipher suite chosen by the server (hex)"`
	CertSubject      string `json:"cert_subject" doc:"leaf certificate subject (TLS <= 1.2 only)"`
	CertIssuer       string `json:"cert_issuer" doc:"leaf certificate issuer (TLS <= 1.2 only)"`

	Outcome   string `json:"outcome" doc:"ok, reset, timeout, icmp_unreachable, incomplete or insufficient_evidence"`
	Stage     string `json:"stage" doc:"where the flow failed: post_syn, post_ack, post_psh, later_in_flow or empty"`
	Signature string `json:"signature" doc:"Cloudflare-style tampering signature, e.g. post_psh:rst+ack;rst+ack"`

	RSTs          uint32  `json:"rsts" doc:"RST segments seen"`
	RSTFromServer uint32  `json:"rst_from_server" doc:"RSTs that claim to come from the server"`
	RSTTTLDelta   int16   `json:"rst_ttl_delta" doc:"largest |TTL(RST) - TTL(server's earlier packets)|"`
	RSTIPIDJump   bool    `json:"rst_ipid_jump" doc:"an RST's IP ID breaks the server's IP ID sequence"`
	RSTSeqChange  bool    `json:"rst_seq_change" doc:"several RSTs with different seq (Weaver's RST SEQ CHANGE)"`
	RSTAckChange  bool    `json:"rst_ack_change" doc:"several RSTs with different ack"`
	RSTAck0       bool    `json:"rst_ack0" doc:"an RST with ack number 0"`
	RSTRace       bool    `json:"rst_race" doc:"server data or ACKs arrive after its own RST"`
	RSTWindow0    bool    `json:"rst_window0" doc:"RST+ACK with window 0 where the server's window was open"`
	RSTNoAck      bool    `json:"rst_no_ack" doc:"RST without the ACK flag after the handshake"`
	RSTSeqBad     bool    `json:"rst_seq_bad" doc:"RST seq or ack inconsistent with the server's stream"`
	RSTBurst      bool    `json:"rst_burst" doc:"RST and RST+ACK mixed in one burst (GFW shape)"`
	RSTDelayNs    int64   `json:"rst_delay_ns" doc:"time from the triggering client packet to the first RST"`
	Injection     float64 `json:"injection" doc:"injection score 0..1 from the evidence above"`
	Fingerprint   string  `json:"fingerprint" doc:"censor fingerprint of the reset pattern"`

	ICMPType uint8 `json:"icmp_type" doc:"type of an ICMP error quoting this flow"`
	ICMPCode uint8 `json:"icmp_code" doc:"code of an ICMP error quoting this flow"`

	GoodputBps  float64 `json:"goodput_bps" doc:"server-to-client payload rate over the data phase, bit/s"`
	DataPhaseNs int64   `json:"data_phase_ns" doc:"first to last server payload byte"`
	MaxGapNs    int64   `json:"max_gap_ns" doc:"longest pause between server data segments"`
}
