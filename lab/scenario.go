package lab

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/tamperscope/tamperscope/lab/injector"
	"github.com/tamperscope/tamperscope/lab/labdns"
	"github.com/tamperscope/tamperscope/lab/netns"
	"github.com/tamperscope/tamperscope/lab/prober"
	"github.com/tamperscope/tamperscope/schemas"
)

// Ports the lab server listens on, and one it leaves closed.
const (
	portTLS    = 443
	portHTTP   = 80
	portClosed = 8443
)

// bigBody is the download size for throttled transfers: about 3.5 s at
// 150 kbit/s, enough to estimate a rate.
const bigBody = 64 << 10

// step is one attempt, or a Happy-Eyeballs pair when alt is set.
type step struct {
	req    prober.Request
	alt    *prober.Request
	label  string
	benign string
	expect string
	rate   float64
}

// plan is one scenario made concrete by a seed.
type plan struct {
	name, desc string
	resolver   netip.Addr // the scenario's own DNS server
	addrs      []netip.Addr
	names      []string // every name the server must hold a certificate for
	rules      [][]string
	inject     *injector.Config
	resetAddrs []netip.Addr
	// phases run one after the other; the steps of a phase run at once,
	// in shuffled order. wait, if set, comes before the phase.
	phases   [][]step
	waits    []time.Duration
	findings []ExpectedFinding
}

type scenarioDef struct {
	name  string
	build func(b *builder) *plan
}

// scenarioDefs is the registry of scenarios, in run order.
var scenarioDefs = []scenarioDef{
	{"sni-reset", buildSNIReset},
	{"sni-drop", buildSNIDrop},
	{"ip-drop", buildIPDrop},
	{"ip-rst", buildIPRST},
	{"ip-icmp", buildIPICMP},
	{"throttle-ip", buildThrottleIP},
	{"throttle-sni", buildThrottleSNI},
	{"gfw-inject", buildGFWInject},
	{"copy-inject", buildCopyInject},
	{"residual", buildResidual},
	{"quic-sni", buildQUICSNI},
	{"benign", buildBenign},
	{"slow-path", buildSlowPath},
}

// resolverAddr is scenario i's DNS server: in the server namespace but
// outside every scenario's address block, so no censor rule touches it.
func resolverAddr(i int) netip.Addr {
	a := netns.ServerNet4.Addr().As4()
	a[2], a[3] = 53, byte(i+1)
	return netip.AddrFrom4(a)
}

// zone maps every name the plan's attempts use to every address they
// reach it on: the records its DNS server holds.
func (p *plan) zone() labdns.Zone {
	z := labdns.Zone{}
	add := func(r prober.Request) {
		if a := r.Remote.Addr(); !slices.Contains(z[r.Name], a) {
			z[r.Name] = append(z[r.Name], a)
		}
	}
	for _, ph := range p.phases {
		for _, s := range ph {
			add(s.req)
			if s.alt != nil {
				add(*s.alt)
			}
		}
	}
	for _, addrs := range z {
		slices.SortFunc(addrs, netip.Addr.Compare)
	}
	return z
}

// Scenarios lists the scenario names Run knows, in run order.
func Scenarios() []string {
	var names []string
	for _, d := range scenarioDefs {
		names = append(names, d.name)
	}
	return names
}

// builder hands out seed-dependent addresses, names and client ports.
type builder struct {
	rng       *rand.Rand
	index     int // scenario position, selects the address block
	hostSeen  map[uint16]bool
	nameSeen  map[string]bool
	nextPort  *uint16
	nextClass *int
}

var tlds = []string{"lab.test", "example.test", "hosting.test", "shop.test", "news.test"}

func (b *builder) name() string {
	for {
		n := "site" + strconv.Itoa(b.rng.IntN(10000)) + "." + tlds[b.rng.IntN(len(tlds))]
		if !b.nameSeen[n] {
			b.nameSeen[n] = true
			return n
		}
	}
}

func (b *builder) nameList(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = b.name()
	}
	return out
}

// addr returns a fresh server address of the scenario's own block.
func (b *builder) addr(v6 bool) netip.Addr {
	var h uint16
	for {
		h = uint16(1 + b.rng.IntN(250))
		if !b.hostSeen[h] {
			b.hostSeen[h] = true
			break
		}
	}
	if v6 {
		a := netns.ServerNet6.Addr().As16()
		a[13] = byte(b.index + 1)
		a[15] = byte(h)
		return netip.AddrFrom16(a)
	}
	a := netns.ServerNet4.Addr().As4()
	a[2] = byte(16 + b.index)
	a[3] = byte(h)
	return netip.AddrFrom4(a)
}

func (b *builder) local(v6 bool) netip.AddrPort {
	*b.nextPort++
	if v6 {
		return netip.AddrPortFrom(netns.ClientAddr6, *b.nextPort)
	}
	return netip.AddrPortFrom(netns.ClientAddr4, *b.nextPort)
}

// attempt builds one step to addr:port naming name.
func (b *builder) attempt(proto string, addr netip.Addr, port uint16, name, label, benign, expect string) step {
	size := 1024 + b.rng.IntN(8<<10)
	return step{
		req:    prober.Request{Proto: proto, Local: b.local(addr.Is6()), Remote: netip.AddrPortFrom(addr, port), Name: name, Size: size},
		label:  label,
		benign: benign,
		expect: expect,
	}
}

// repeat adds n attempts per (addr, name), occasionally capped at TLS 1.2.
func (b *builder) repeat(steps []step, n int, proto string, addrs []netip.Addr, port uint16, names []string, label, benign, expect string) []step {
	for _, a := range addrs {
		for _, nm := range names {
			for range n {
				s := b.attempt(proto, a, port, nm, label, benign, expect)
				s.req.TLS12 = proto == prober.TLS && b.rng.IntN(4) == 0
				steps = append(steps, s)
			}
		}
	}
	return steps
}

func (b *builder) count(lo, hi int) int { return lo + b.rng.IntN(hi-lo+1) }

// rateKbit picks a throttling rate around the 130-150 kbit/s seen in Russia.
func (b *builder) rateKbit() int { return []int{128, 140, 150, 160}[b.rng.IntN(4)] }

func (b *builder) class() string {
	*b.nextClass++
	return "1:" + strconv.Itoa(*b.nextClass)
}

// both returns the command for addr's family: iptables or ip6tables.
func ipt(addr netip.Addr) string {
	if addr.Is6() {
		return "ip6tables"
	}
	return "iptables"
}

func stringRule(addr netip.Addr, port uint16, name string, target ...string) []string {
	r := []string{ipt(addr), "-A", "FORWARD", "-p", "tcp", "-d", addr.String(), "--dport", strconv.Itoa(int(port)),
		"-m", "string", "--algo", "bm", "--string", name, "-j"}
	return append(r, target...)
}

func sniFindings(addrs []netip.Addr, name, kind, method, censor string) []ExpectedFinding {
	var out []ExpectedFinding
	for _, a := range addrs {
		out = append(out, ExpectedFinding{Kind: kind, TargetIP: a.String(), TargetPort: portTLS, TargetName: name,
			Trigger: "sni", Method: method, Targeted: true, Censor: censor})
	}
	return out
}

// sniPlan is the shape shared by the SNI scenarios: one blocked name and
// controls on a v4 and a v6 address.
func sniPlan(b *builder, name, desc, kind, expect string) (p *plan, blocked string) {
	addrs := []netip.Addr{b.addr(false), b.addr(true)}
	blocked = b.name()
	controls := b.nameList(b.count(2, 4))
	var steps []step
	steps = b.repeat(steps, b.count(2, 3), prober.TLS, addrs, portTLS, []string{blocked}, kind, "", expect)
	steps = b.repeat(steps, b.count(1, 2), prober.TLS, addrs, portTLS, controls, LabelBenign, BenignControl, prober.OK)
	steps = b.repeat(steps, 1, prober.HTTP, addrs, portHTTP, controls[:1], LabelBenign, BenignControl, prober.OK)
	return &plan{name: name, desc: desc, addrs: addrs, names: append([]string{blocked}, controls...), phases: [][]step{steps}}, blocked
}

func buildSNIReset(b *builder) *plan {
	p, blocked := sniPlan(b, "sni-reset", "in-path SNI filter answering the ClientHello with REJECT --reject-with tcp-reset", schemas.KindSNIRSTInjection, prober.Reset)
	for _, a := range p.addrs {
		p.rules = append(p.rules, stringRule(a, portTLS, blocked, "REJECT", "--reject-with", "tcp-reset"))
	}
	p.findings = sniFindings(p.addrs, blocked, schemas.KindSNIRSTInjection, "rst", "iptables-reject")
	return p
}

func buildSNIDrop(b *builder) *plan {
	p, blocked := sniPlan(b, "sni-drop", "in-path SNI filter dropping the ClientHello and the rest of the flow", schemas.KindSNIBlackhole, prober.Timeout)
	for _, a := range p.addrs {
		// The string matches only the ClientHello; the connmark drops every
		// later packet of the flow too, as a stateful filter does.
		p.rules = append(p.rules,
			stringRule(a, portTLS, blocked, "CONNMARK", "--set-mark", "0x5e"),
			[]string{ipt(a), "-A", "FORWARD", "-p", "tcp", "-d", a.String(), "--dport", "443", "-m", "connmark", "--mark", "0x5e", "-j", "DROP"})
	}
	p.findings = sniFindings(p.addrs, blocked, schemas.KindSNIBlackhole, "drop", "iptables-drop")
	return p
}

// ipBlockPlan is the Tilda case: one address hosting many names is blocked
// while a neighbour hosting some of the same names keeps working.
func ipBlockPlan(b *builder, name, desc string, v6 bool, expect, method string) *plan {
	blocked, neighbour := b.addr(v6), b.addr(v6)
	hosted := b.nameList(b.count(12, 20))
	shared := hosted[:b.count(3, 5)]
	var steps []step
	steps = b.repeat(steps, 1, prober.TLS, []netip.Addr{blocked}, portTLS, hosted, schemas.KindIPBlocking, "", expect)
	steps = b.repeat(steps, 1, prober.HTTP, []netip.Addr{blocked}, portHTTP, hosted[:2], schemas.KindIPBlocking, "", expect)
	steps = b.repeat(steps, 2, prober.TLS, []netip.Addr{neighbour}, portTLS, shared, LabelBenign, BenignControl, prober.OK)
	collateral := slices.Clone(hosted)
	slices.Sort(collateral)
	return &plan{
		name: name, desc: desc,
		addrs:  []netip.Addr{blocked, neighbour},
		names:  hosted,
		phases: [][]step{steps},
		findings: []ExpectedFinding{{Kind: schemas.KindIPBlocking, TargetIP: blocked.String(), Trigger: "ip", Method: method,
			Targeted: true, Collateral: collateral, Note: fmt.Sprintf("neighbour %s hosts %d of the names and works", neighbour, len(shared))}},
	}
}

func buildIPDrop(b *builder) *plan {
	p := ipBlockPlan(b, "ip-drop", "IP block by DROP of every packet to a shared-hosting address", false, prober.Timeout, "drop")
	p.rules = [][]string{{"iptables", "-A", "FORWARD", "-d", p.addrs[0].String(), "-j", "DROP"}}
	p.findings[0].Censor = "iptables-drop"
	return p
}

func buildIPRST(b *builder) *plan {
	p := ipBlockPlan(b, "ip-rst", "IP block by a reset answering every SYN to a shared-hosting address", true, prober.Refused, "rst")
	p.rules = [][]string{{"ip6tables", "-A", "FORWARD", "-p", "tcp", "--syn", "-d", p.addrs[0].String(), "-j", "REJECT", "--reject-with", "tcp-reset"}}
	p.findings[0].Censor = "iptables-reject"
	return p
}

func buildIPICMP(b *builder) *plan {
	p := ipBlockPlan(b, "ip-icmp", "IP block by ICMP administratively-prohibited for every packet to a shared-hosting address", b.rng.IntN(2) == 0, prober.Unreachable, "icmp")
	reject := "icmp-admin-prohibited"
	if p.addrs[0].Is6() {
		reject = "icmp6-adm-prohibited"
	}
	p.rules = [][]string{{ipt(p.addrs[0]), "-A", "FORWARD", "-d", p.addrs[0].String(), "-j", "REJECT", "--reject-with", reject}}
	p.findings[0].Censor = "iptables-reject"
	return p
}

// htbClass returns the commands creating a rate-limited class.
func htbClass(class string, kbit int) [][]string {
	rate := strconv.Itoa(kbit) + "kbit"
	return [][]string{{"tc", "class", "add", "dev", netns.RouterClientIf, "parent", "1:", "classid", class, "htb", "rate", rate, "ceil", rate}}
}

func classifyByIP(a netip.Addr, class string) []string {
	return []string{ipt(a), "-t", "mangle", "-A", "POSTROUTING", "-o", netns.RouterClientIf, "-s", a.String(), "-j", "CLASSIFY", "--set-class", class}
}

func buildThrottleIP(b *builder) *plan {
	slow, fast := b.addr(false), b.addr(false)
	names := b.nameList(b.count(3, 4))
	kbit := b.rateKbit()
	class := b.class()
	var warm []step
	warm = b.repeat(warm, 1, prober.TLS, []netip.Addr{slow}, portTLS, names[1:], schemas.KindThrottling, "", prober.OK)
	warm = b.repeat(warm, 1, prober.TLS, []netip.Addr{fast}, portTLS, names, LabelBenign, BenignControl, prober.OK)
	big := []step{
		b.attempt(prober.TLS, slow, portTLS, names[0], schemas.KindThrottling, "", prober.OK),
		b.attempt(prober.TLS, fast, portTLS, names[0], LabelBenign, BenignControl, prober.OK),
	}
	for i := range big {
		big[i].req.Size, big[i].req.Timeout = bigBody, 10*time.Second
	}
	big[0].rate = float64(kbit) * 1000
	p := &plan{
		name: "throttle-ip", desc: fmt.Sprintf("HTB class at %d kbit/s on everything from one address", kbit),
		addrs: []netip.Addr{slow, fast}, names: names,
		phases: [][]step{warm, big},
		findings: []ExpectedFinding{{Kind: schemas.KindThrottling, TargetIP: slow.String(), Trigger: "ip", Method: "throttle",
			RateBps: float64(kbit) * 1000, Targeted: true, Collateral: sortedCopy(names), Censor: "htb", Note: "shaping (HTB queue), not policing"}},
	}
	p.rules = append(htbClass(class, kbit), classifyByIP(slow, class))
	return p
}

func buildThrottleSNI(b *builder) *plan {
	addr := b.addr(b.rng.IntN(2) == 0)
	target := b.name()
	controls := b.nameList(b.count(2, 3))
	kbit := b.rateKbit()
	class := b.class()
	mark := "0x" + strconv.FormatInt(int64(*b.nextClass), 16)
	var warm []step
	warm = b.repeat(warm, 1, prober.TLS, []netip.Addr{addr}, portTLS, []string{target}, schemas.KindThrottling, "", prober.OK)
	warm = b.repeat(warm, 1, prober.TLS, []netip.Addr{addr}, portTLS, controls, LabelBenign, BenignControl, prober.OK)
	big := []step{
		b.attempt(prober.TLS, addr, portTLS, target, schemas.KindThrottling, "", prober.OK),
		b.attempt(prober.TLS, addr, portTLS, controls[0], LabelBenign, BenignControl, prober.OK),
	}
	for i := range big {
		big[i].req.Size, big[i].req.Timeout = bigBody, 10*time.Second
	}
	big[0].rate = float64(kbit) * 1000
	p := &plan{
		name: "throttle-sni", desc: fmt.Sprintf("HTB class at %d kbit/s for connections whose ClientHello names one host (connmark)", kbit),
		addrs: []netip.Addr{addr}, names: append([]string{target}, controls...),
		phases: [][]step{warm, big},
		findings: []ExpectedFinding{{Kind: schemas.KindThrottling, TargetIP: addr.String(), TargetPort: portTLS, TargetName: target,
			Trigger: "sni", Method: "throttle", RateBps: float64(kbit) * 1000, Targeted: true, Censor: "htb"}},
	}
	p.rules = append(htbClass(class, kbit),
		[]string{ipt(addr), "-t", "mangle", "-A", "FORWARD", "-p", "tcp", "-d", addr.String(), "--dport", "443",
			"-m", "string", "--algo", "bm", "--string", target, "-j", "CONNMARK", "--set-mark", mark},
		[]string{ipt(addr), "-t", "mangle", "-A", "POSTROUTING", "-o", netns.RouterClientIf, "-m", "connmark", "--mark", mark,
			"-j", "CLASSIFY", "--set-class", class})
	return p
}

func injectPlan(b *builder, name, desc string, mode injector.Mode, censor string) *plan {
	p, blocked := sniPlan(b, name, desc, schemas.KindSNIRSTInjection, prober.Reset)
	p.inject = &injector.Config{Mode: mode, Names: []string{blocked}, Targets: p.addrs, Port: portTLS}
	p.findings = sniFindings(p.addrs, blocked, schemas.KindSNIRSTInjection, "rst", censor)
	return p
}

func buildGFWInject(b *builder) *plan {
	return injectPlan(b, "gfw-inject", "on-path injector: GFW-style burst of RSTs (RST ack 0, 3 RST+ACK, shifted seq, foreign TTL, random IP ID) towards both ends", injector.Burst, "gfw-burst")
}

func buildCopyInject(b *builder) *plan {
	return injectPlan(b, "copy-inject", "on-path injector: one RST+ACK per direction copying the imitated packet's TTL and continuing its IP ID", injector.Copy, "copy")
}

func buildResidual(b *builder) *plan {
	addr := b.addr(false)
	trigger := b.name()
	innocent := b.nameList(b.count(2, 3))
	residual := time.Duration(2000+b.rng.IntN(1000)) * time.Millisecond
	before := b.repeat(nil, 1, prober.TLS, []netip.Addr{addr}, portTLS, innocent, LabelBenign, BenignControl, prober.OK)
	trig := b.repeat(nil, 1, prober.TLS, []netip.Addr{addr}, portTLS, []string{trigger}, schemas.KindSNIRSTInjection, "", prober.Reset)
	during := b.repeat(nil, b.count(1, 2), prober.TLS, []netip.Addr{addr}, portTLS, innocent, schemas.KindResidualBlock, "", prober.Reset)
	during = b.repeat(during, 1, prober.HTTP, []netip.Addr{addr}, portHTTP, innocent[:1], LabelBenign, BenignControl, prober.OK)
	after := b.repeat(nil, 1, prober.TLS, []netip.Addr{addr}, portTLS, innocent, LabelBenign, BenignControl, prober.OK)
	return &plan{
		name: "residual", desc: fmt.Sprintf("on-path injector resets the trigger flow, then every new flow to the same server:443 for %s", residual),
		addrs: []netip.Addr{addr}, names: append([]string{trigger}, innocent...),
		inject: &injector.Config{Mode: injector.Burst, Names: []string{trigger}, Targets: []netip.Addr{addr}, Port: portTLS, Residual: residual},
		phases: [][]step{before, trig, during, after},
		// The last phase waits out the residual window, measured from the
		// end of the trigger phase.
		waits: []time.Duration{0, 0, 0, residual + 500*time.Millisecond},
		findings: append(sniFindings([]netip.Addr{addr}, trigger, schemas.KindSNIRSTInjection, "rst", "gfw-burst"),
			ExpectedFinding{Kind: schemas.KindResidualBlock, TargetIP: addr.String(), TargetPort: portTLS, TargetName: trigger,
				Trigger: "sni", Method: "rst", Targeted: true, Censor: "gfw-burst",
				Note: fmt.Sprintf("residual window %s after the trigger; port 80 unaffected", residual)}),
	}
}

// quicBlackholeWait is how long a QUIC client waits for a blackholed
// handshake, as browsers wait up to 10 s. quic-go's probe timeouts double
// from 200 ms, so its Initials go out at 0, 0.2, 0.6, 1.4, 3.0 and 6.2 s:
// waiting past 6.2 s makes the unanswered retries span 6 s rather than a
// bare 3.
const quicBlackholeWait = 7 * time.Second

func buildQUICSNI(b *builder) *plan {
	addrs := []netip.Addr{b.addr(false), b.addr(true)}
	blocked := b.name()
	controls := b.nameList(b.count(2, 3))
	var steps []step
	steps = b.repeat(steps, b.count(1, 2), prober.QUIC, addrs, portTLS, []string{blocked}, schemas.KindQUICBlocking, "", prober.Timeout)
	for i := range steps {
		steps[i].req.Timeout = quicBlackholeWait
	}
	steps = b.repeat(steps, 1, prober.QUIC, addrs, portTLS, controls, LabelBenign, BenignControl, prober.OK)
	steps = b.repeat(steps, 1, prober.TLS, addrs, portTLS, []string{blocked}, LabelBenign, BenignControl, prober.OK)
	var findings []ExpectedFinding
	for _, a := range addrs {
		findings = append(findings, ExpectedFinding{Kind: schemas.KindQUICBlocking, TargetIP: a.String(), TargetPort: portTLS, TargetName: blocked,
			Trigger: "quic_sni", Method: "drop", Targeted: true, Censor: "quic-initial-decrypt",
			Note: "UDP 4-tuple dropped both ways once the matching Initial is decrypted (the server's ACK-only Initial may pass first); TCP/TLS to the same name works"})
	}
	return &plan{
		name: "quic-sni", desc: "censor decrypts QUIC Initials and blackholes the UDP 4-tuple when the SNI matches",
		addrs: addrs, names: append([]string{blocked}, controls...),
		inject:   &injector.Config{Mode: injector.QUIC, Names: []string{blocked}, Targets: addrs, Port: portTLS},
		phases:   [][]step{steps},
		findings: findings,
	}
}

func buildBenign(b *builder) *plan {
	rstAddr, plain := b.addr(false), b.addr(false)
	he4, he6 := b.addr(false), b.addr(true)
	names := b.nameList(b.count(3, 4))
	var steps []step
	steps = b.repeat(steps, 2, prober.TLS, []netip.Addr{rstAddr}, portTLS, names[:2], LabelBenign, BenignServerReset, prober.OK)
	steps = b.repeat(steps, 1, prober.HTTP, []netip.Addr{rstAddr}, portHTTP, names[:1], LabelBenign, BenignServerReset, prober.OK)
	steps = b.repeat(steps, 2, prober.TLS, []netip.Addr{plain}, portClosed, names[:1], LabelBenign, BenignClosedPort, prober.Refused)
	for range b.count(2, 3) {
		s := b.attempt(prober.TLS, plain, portTLS, names[b.rng.IntN(len(names))], LabelBenign, BenignClientAbort, prober.Aborted)
		s.req.Size, s.req.AbortAfter = 48<<10, 4096
		steps = append(steps, s)
	}
	for range b.count(2, 3) {
		n := names[b.rng.IntN(len(names))]
		s := b.attempt(prober.TLS, he6, portTLS, n, LabelBenign, "", prober.OK)
		alt := b.attempt(prober.TLS, he4, portTLS, n, LabelBenign, "", prober.OK).req
		s.alt = &alt
		steps = append(steps, s)
	}
	return &plan{
		name: "benign", desc: "benign look-alikes: server RST after a complete response, closed port, client aborts, Happy-Eyeballs losers",
		addrs: []netip.Addr{rstAddr, plain, he4, he6}, names: names,
		resetAddrs: []netip.Addr{rstAddr},
		phases:     [][]step{steps},
	}
}

func buildSlowPath(b *builder) *plan {
	addrs := []netip.Addr{b.addr(false), b.addr(false)}
	names := b.nameList(2)
	kbit := 2 * b.rateKbit()
	var rules [][]string
	var big []step
	var findings []ExpectedFinding
	for i, a := range addrs {
		class := b.class()
		rules = append(rules, htbClass(class, kbit)...)
		rules = append(rules, classifyByIP(a, class))
		s := b.attempt(prober.TLS, a, portTLS, names[i], LabelBenign, BenignPathSlow, prober.OK)
		s.req.Size, s.req.Timeout, s.rate = bigBody, 10*time.Second, float64(kbit)*1000
		big = append(big, s)
		findings = append(findings, ExpectedFinding{Kind: schemas.KindThrottling, TargetIP: a.String(), Trigger: TriggerPath, Method: "throttle",
			RateBps: float64(kbit) * 1000, Targeted: false, Censor: "htb", Note: "path slow for everyone: every address and name on this path gets the same rate"})
	}
	return &plan{
		name: "slow-path", desc: fmt.Sprintf("control: every server on the path shaped to %d kbit/s, for every name", kbit),
		addrs: addrs, names: names, rules: rules, phases: [][]step{big}, findings: findings,
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
