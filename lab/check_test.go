package lab

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/tamperscope/tamperscope/lab/netns"
	"github.com/tamperscope/tamperscope/lab/prober"
	"github.com/tamperscope/tamperscope/schemas"
)

// tuple identifies a flow from the client's side.
type tuple struct {
	udp    bool
	client netip.AddrPort
	server netip.AddrPort
}

type rst struct {
	ttl      uint8
	ipID     uint16
	ack      bool
	seq, num uint32
	window   uint16
}

// flowView is what the capture shows of one flow.
type flowView struct {
	syns, synAcks          int
	serverRSTs, clientRSTs []rst
	serverTTLs             []uint8
	serverBytes            int
	firstData, lastData    time.Time
	firstDataBytes         int
	clientDatagrams        int
	serverDatagrams        int
	serverFlights          int // server datagrams big enough to carry a ServerHello
	icmpProhibited         int
	// Client packets: the first, the first carrying data, the last.
	firstClient, firstClientData, lastClient time.Time
}

// nameAddr is one name-to-address mapping of a DNS answer.
type nameAddr struct{ name, addr string }

// dnsView is what the capture's DNS exchanges show.
type dnsView struct {
	queries, answers int
	answered         map[nameAddr]time.Time // first answer holding the mapping
}

func (f *flowView) String() string {
	return fmt.Sprintf("syn %d synack %d serverRST %d clientRST %d serverBytes %d udp %d/%d icmp %d",
		f.syns, f.synAcks, len(f.serverRSTs), len(f.clientRSTs), f.serverBytes, f.clientDatagrams, f.serverDatagrams, f.icmpProhibited)
}

// readCapture summarises every flow and the DNS answers of a lab capture.
func readCapture(t *testing.T, path string) (map[tuple]*flowView, *dnsView) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		ip6     layers.IPv6
		tcp     layers.TCP
		udp     layers.UDP
		icmp4   layers.ICMPv4
		icmp6   layers.ICMPv6
		payload gopacket.Payload
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &tcp, &udp, &icmp4, &icmp6, &payload)
	parser.IgnoreUnsupported = true
	decoded := []gopacket.LayerType{}
	flows := map[tuple]*flowView{}
	dns := &dnsView{answered: map[nameAddr]time.Time{}}
	get := func(k tuple) *flowView {
		if flows[k] == nil {
			flows[k] = &flowView{}
		}
		return flows[k]
	}
	var ts time.Time
	fromClient := func(v *flowView, data bool) {
		if v.firstClient.IsZero() {
			v.firstClient = ts
		}
		if data && v.firstClientData.IsZero() {
			v.firstClientData = ts
		}
		v.lastClient = ts
	}
	client := func(a netip.Addr) bool { return a == netns.ClientAddr4 || a == netns.ClientAddr6 }
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if err := parser.DecodeLayers(data, &decoded); err != nil && len(decoded) == 0 {
			continue
		}
		ts = ci.Timestamp
		var src, dst netip.Addr
		var ttl uint8
		var id uint16
		for _, lt := range decoded {
			switch lt {
			case layers.LayerTypeIPv4:
				src, _ = netip.AddrFromSlice(ip4.SrcIP.To4())
				dst, _ = netip.AddrFromSlice(ip4.DstIP.To4())
				ttl, id = ip4.TTL, ip4.Id
			case layers.LayerTypeIPv6:
				src, _ = netip.AddrFromSlice(ip6.SrcIP)
				dst, _ = netip.AddrFromSlice(ip6.DstIP)
				ttl = ip6.HopLimit
			case layers.LayerTypeTCP:
				sp, dp := netip.AddrPortFrom(src, uint16(tcp.SrcPort)), netip.AddrPortFrom(dst, uint16(tcp.DstPort))
				if client(src) {
					v := get(tuple{false, sp, dp})
					fromClient(v, len(tcp.Payload) > 0)
					if tcp.SYN && !tcp.ACK {
						v.syns++
					}
					if tcp.RST {
						v.clientRSTs = append(v.clientRSTs, rst{ttl, id, tcp.ACK, tcp.Seq, tcp.Ack, tcp.Window})
					}
					continue
				}
				v := get(tuple{false, dp, sp})
				switch {
				case tcp.RST:
					v.serverRSTs = append(v.serverRSTs, rst{ttl, id, tcp.ACK, tcp.Seq, tcp.Ack, tcp.Window})
				case tcp.SYN && tcp.ACK:
					v.synAcks++
					v.serverTTLs = append(v.serverTTLs, ttl)
				default:
					v.serverTTLs = append(v.serverTTLs, ttl)
				}
				if n := len(tcp.Payload); n > 0 && !tcp.RST {
					if v.firstData.IsZero() {
						v.firstData, v.firstDataBytes = ci.Timestamp, n
					}
					v.lastData = ci.Timestamp
					v.serverBytes += n
				}
			case layers.LayerTypeUDP:
				sp, dp := netip.AddrPortFrom(src, uint16(udp.SrcPort)), netip.AddrPortFrom(dst, uint16(udp.DstPort))
				switch {
				case client(src) && dp.Port() == dnsPort:
					dns.queries++
				case client(dst) && sp.Port() == dnsPort:
					dns.addAnswer(udp.Payload, ts)
				case client(src):
					v := get(tuple{true, sp, dp})
					v.clientDatagrams++
					fromClient(v, true)
				default:
					v := get(tuple{true, dp, sp})
					v.serverDatagrams++
					if len(udp.Payload) > 200 {
						v.serverFlights++
					}
				}
			case layers.LayerTypeICMPv4:
				if icmp4.TypeCode == layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeCommAdminProhibited) {
					if k, ok := quoted(icmp4.Payload, false); ok {
						get(k).icmpProhibited++
					}
				}
			case layers.LayerTypeICMPv6:
				if icmp6.TypeCode == layers.CreateICMPv6TypeCode(layers.ICMPv6TypeDestinationUnreachable, layers.ICMPv6CodeAdminProhibited) {
					if k, ok := quoted(icmp6.Payload, true); ok {
						get(k).icmpProhibited++
					}
				}
			}
		}
	}
	return flows, dns
}

// addAnswer records the A and AAAA records of a DNS response.
func (d *dnsView) addAnswer(b []byte, ts time.Time) {
	var m dnsmessage.Message
	if m.Unpack(b) != nil || !m.Response || len(m.Questions) != 1 {
		return
	}
	d.answers++
	name := strings.TrimSuffix(m.Questions[0].Name.String(), ".")
	for _, r := range m.Answers {
		var a netip.Addr
		switch body := r.Body.(type) {
		case *dnsmessage.AResource:
			a = netip.AddrFrom4(body.A)
		case *dnsmessage.AAAAResource:
			a = netip.AddrFrom16(body.AAAA)
		default:
			continue
		}
		k := nameAddr{name, a.String()}
		if _, ok := d.answered[k]; !ok {
			d.answered[k] = ts
		}
	}
}

// quoted reads the TCP 4-tuple an ICMP error quotes.
func quoted(b []byte, v6 bool) (tuple, bool) {
	if v6 {
		if len(b) < 4+40+4 {
			return tuple{}, false
		}
		b = b[4:] // unused word
		src, _ := netip.AddrFromSlice(b[8:24])
		dst, _ := netip.AddrFromSlice(b[24:40])
		return tuple{false, netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[40:])), netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[42:]))}, true
	}
	if len(b) < 20 {
		return tuple{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	if len(b) < ihl+4 {
		return tuple{}, false
	}
	src, _ := netip.AddrFromSlice(b[12:16])
	dst, _ := netip.AddrFromSlice(b[16:20])
	return tuple{false, netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[ihl:])), netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[ihl+2:]))}, true
}

// checkScenario asserts that a scenario's truth is self-consistent and that
// its capture holds the packets each label promises.
func checkScenario(t *testing.T, dir string) {
	t.Helper()
	truth, err := ReadTruth(filepath.Join(dir, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ms := Mismatches(truth); len(ms) > 0 {
		t.Errorf("client outcomes differ from the scenario:\n%s", ms)
	}
	if len(truth.Attempts) < 2 {
		t.Fatalf("%d attempts, want a scenario's worth", len(truth.Attempts))
	}
	checkFindings(t, truth)
	flows, dns := readCapture(t, filepath.Join(dir, "capture.pcap"))
	if dns.queries == 0 || dns.answers != dns.queries {
		t.Errorf("%d DNS queries, %d answers: want every query answered", dns.queries, dns.answers)
	}
	for _, f := range truth.Findings {
		for _, n := range f.Collateral {
			if _, ok := dns.answered[nameAddr{n, f.TargetIP}]; !ok {
				t.Errorf("%s on %s: collateral %s is in no DNS answer for that address", f.Kind, f.TargetIP, n)
			}
		}
	}
	for _, a := range truth.Attempts {
		k := tuple{a.Transport == "udp",
			netip.AddrPortFrom(netip.MustParseAddr(a.ClientIP), a.ClientPort),
			netip.AddrPortFrom(netip.MustParseAddr(a.ServerIP), a.ServerPort)}
		v := flows[k]
		if v == nil {
			t.Errorf("attempt %d (%s %s %s): not in the capture", a.ID, a.Proto, a.Name, a.Label)
			continue
		}
		// A real client resolves before it connects.
		if at, ok := dns.answered[nameAddr{a.Name, a.ServerIP}]; !ok || at.After(v.firstClient) {
			t.Errorf("attempt %d (%s %s %s): no DNS answer mapping the name to %s before the first packet", a.ID, a.Proto, a.Name, a.Label, a.ServerIP)
		}
		if err := checkAttempt(truth.Scenario, a, v); err != nil {
			t.Errorf("attempt %d (%s %s:%d %s %s/%s): %v; capture: %v", a.ID, a.Proto, a.ServerIP, a.ServerPort, a.Name, a.Label, a.Benign, err, v)
		}
	}
}

func checkFindings(t *testing.T, truth Truth) {
	t.Helper()
	labelled := map[string]bool{}
	for _, a := range truth.Attempts {
		labelled[a.Label] = true
	}
	for _, f := range truth.Findings {
		if f.Trigger == TriggerPath {
			if f.Targeted {
				t.Errorf("path-wide slowness marked targeted: %+v", f)
			}
			continue
		}
		if !labelled[f.Kind] {
			t.Errorf("finding %s on %s has no attempt labelled with it", f.Kind, f.TargetIP)
		}
		if f.Kind == schemas.KindIPBlocking && len(f.Collateral) < 10 {
			t.Errorf("IP block on %s lists %d collateral names, want the shared-hosting many", f.TargetIP, len(f.Collateral))
		}
		if f.Kind == schemas.KindThrottling && f.RateBps == 0 {
			t.Errorf("throttling finding without a rate: %+v", f)
		}
	}
}

// minSilence is the unanswered retrying a passive observer needs before it
// calls a flow timed out (Cloudflare's 3 s).
const minSilence = 3 * time.Second

// checkAttempt asserts the packet-level signature of one attempt's label.
func checkAttempt(scenario string, a AttemptTruth, v *flowView) error {
	if a.Transport == "tcp" && v.syns == 0 {
		return fmt.Errorf("no SYN")
	}
	if a.Expect == prober.Timeout {
		// Retries run from the first unanswered packet: the SYN, or the
		// first data once the handshake went through.
		from := v.firstClient
		if v.synAcks > 0 {
			from = v.firstClientData
		}
		if d := v.lastClient.Sub(from); from.IsZero() || d < minSilence {
			return fmt.Errorf("client retried for %s, want >= %s before giving up", d, minSilence)
		}
	}
	switch {
	case a.Label == schemas.KindQUICBlocking:
		// The server's ACK of the first Initial may pass before the
		// block is in place; its handshake flight must not.
		if v.clientDatagrams < 2 || v.serverFlights != 0 {
			return fmt.Errorf("want retransmitted client Initials and no server handshake flight")
		}
	case a.Proto == prober.QUIC:
		if v.serverFlights == 0 {
			return fmt.Errorf("want server datagrams")
		}
	case a.Label == schemas.KindIPBlocking:
		switch a.Expect {
		case prober.Timeout:
			if v.synAcks != 0 || v.syns < 2 {
				return fmt.Errorf("want retransmitted SYNs and no SYN-ACK")
			}
		case prober.Refused:
			if v.synAcks != 0 || len(v.serverRSTs) == 0 || !v.serverRSTs[0].ack {
				return fmt.Errorf("want a RST+ACK answering the SYN")
			}
		case prober.Unreachable:
			if v.synAcks != 0 || v.icmpProhibited == 0 {
				return fmt.Errorf("want ICMP administratively prohibited")
			}
		}
	case a.Label == schemas.KindSNIBlackhole:
		if v.synAcks == 0 || v.serverBytes != 0 || len(v.serverRSTs) != 0 {
			return fmt.Errorf("want a handshake, then silence from the server")
		}
	case a.Label == schemas.KindSNIRSTInjection || a.Label == schemas.KindResidualBlock:
		if len(v.serverRSTs) == 0 {
			return fmt.Errorf("want a RST from the server's address")
		}
		return checkInjector(scenario, v)
	case a.Label == schemas.KindThrottling || a.Benign == BenignPathSlow:
		if a.ExpectRateBps > 0 {
			d := v.lastData.Sub(v.firstData).Seconds()
			rate := float64(v.serverBytes-v.firstDataBytes) * 8 / d
			if d <= 0 || rate < a.ExpectRateBps*(1-RateTolerance) || rate > a.ExpectRateBps*(1+RateTolerance) {
				return fmt.Errorf("capture rate %.0f bit/s, want %.0f +-%.0f%%", rate, a.ExpectRateBps, RateTolerance*100)
			}
		}
	case a.Benign == BenignServerReset:
		if a.Bytes == 0 || len(v.serverRSTs) == 0 || a.ServerClose != "reset" {
			return fmt.Errorf("want a full response, then a server RST")
		}
	case a.Benign == BenignClosedPort:
		if len(v.serverRSTs) == 0 || v.synAcks != 0 {
			return fmt.Errorf("want a RST answering the SYN")
		}
	case a.Benign == BenignClientAbort, a.Benign == BenignHappyEyeballs:
		if len(v.clientRSTs) == 0 {
			return fmt.Errorf("want a client RST")
		}
	case a.Label == LabelBenign:
		if len(v.serverRSTs) != 0 || v.serverBytes == 0 {
			return fmt.Errorf("control: want server data and no server RST")
		}
	}
	return nil
}

// checkInjector asserts each censor's tell-tale forgery.
func checkInjector(scenario string, v *flowView) error {
	first := v.serverRSTs[0]
	switch scenario {
	case "sni-reset":
		// REJECT --reject-with tcp-reset: TTL 64 from the router itself
		// (server packets arrive with 63), IP ID 0 on IPv4, no ACK.
		if first.ttl != 64 || first.ipID != 0 || first.ack {
			return fmt.Errorf("REJECT reset ttl %d id %d ack %v, want ttl 64, id 0, no ACK", first.ttl, first.ipID, first.ack)
		}
	case "gfw-inject", "residual":
		seqs := map[uint32]bool{}
		ack0 := false
		for _, r := range v.serverRSTs {
			seqs[r.seq] = true
			ack0 = ack0 || (!r.ack && r.num == 0)
			if r.ttl == 63 {
				return fmt.Errorf("burst RST with the server's own TTL 63, want a foreign one")
			}
		}
		if len(v.serverRSTs) < 4 || len(seqs) < 3 || !ack0 {
			return fmt.Errorf("want a burst: >= 4 RSTs, >= 3 sequence numbers, one RST with ack 0")
		}
	case "copy-inject":
		if first.ttl != 63 || !first.ack || !slices.Contains(v.serverTTLs, first.ttl) {
			return fmt.Errorf("copied RST ttl %d ack %v, want the server's TTL 63 with ACK", first.ttl, first.ack)
		}
	}
	return nil
}

func TestTestdata(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "*-seed*"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			truth, err := ReadTruth(filepath.Join(dir, "truth.json"))
			if err != nil {
				t.Fatal(err)
			}
			seen[fmt.Sprintf("%s-seed%d", truth.Scenario, truth.Seed)] = true
			checkScenario(t, dir)
		})
	}
	for _, s := range Scenarios() {
		for _, seed := range []int64{1, 2, 3} {
			if !seen[fmt.Sprintf("%s-seed%d", s, seed)] {
				t.Errorf("testdata lacks scenario %s for seed %d: regenerate with make lab", s, seed)
			}
		}
	}
}
