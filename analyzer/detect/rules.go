package detect

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tamperscope/tamperscope/schemas"
)

// rule is one cross-flow detector. Rules run in order for every server
// address of a window; a rule may mark flows consumed so that later rules
// do not explain them twice (residual blocking before IP blocking).
type rule struct {
	name string
	run  func(j *judgement, ip string, flows []*summary)
	// cross: the rule compares the address with the window's other
	// addresses (Facts), so a partitioned stream defers it to Aggregate.
	// Only rules that consume nothing may be cross.
	cross bool
}

// rules is the registry of cross-flow detectors.
var rules = []rule{
	{"residual_block", residualRule, false},
	{"name_filtering", nameRule, false},
	{"ip_blocking", ipBlockRule, true},
	{"throttling", throttleRule, true},
	{"tls_interception", interceptionRule, false},
}

// judgement is the state of judging one window.
type judgement struct {
	cfg      *Config
	win      *window
	consumed map[*summary]bool
	emit     func(*schemas.Finding)
	// collateral lists the names known on an address.
	collateral func(ip string) []string
	// facts are what every address of the window shows: the
	// cross-address rules read other addresses here, never in win.
	facts *Facts
}

func byStart(a, b *summary) int {
	return cmp.Or(cmp.Compare(a.startNs, b.startNs), cmp.Compare(a.id, b.id))
}

// judge runs the rules over a window that has closed. When the Set defers
// cross-address rules, it runs the others and hands the window's Digest
// over instead. The addresses of a large window are judged on several
// goroutines (judgeWorkers); their findings and digest entries come out in
// address order all the same.
func (s *Set) judge(w *window, emit func(*schemas.Finding)) {
	ips := w.ips()
	workers := 1
	if len(ips) >= parallelIPs {
		workers = min(runtime.GOMAXPROCS(0), judgeWorkers)
	}
	facts := Facts{OKNames: map[string][]string{}, Rates: map[string][]float64{}}
	each := make([]ipFacts, len(ips))
	base := judgement{cfg: &s.cfg, win: w, collateral: s.collateral, facts: &facts}
	forEach(len(ips), workers, func(_, k int) {
		fs := w.byIP[ips[k]]
		slices.SortFunc(fs, byStart)
		each[k] = base.factsOfIP(fs)
	})
	for k, ip := range ips {
		facts.add(ip, &each[k])
	}
	defer_ := s.deferTo != nil
	out := make([]ipJudged, len(ips))
	js := make([]judgement, workers)
	for i := range js {
		js[i] = base
		js[i].consumed = map[*summary]bool{}
	}
	forEach(len(ips), workers, func(worker, k int) {
		j := &js[worker]
		ip, fs := ips[k], w.byIP[ips[k]]
		j.emit = func(f *schemas.Finding) { out[k].findings = append(out[k].findings, f) }
		for _, r := range rules {
			if !r.cross || !defer_ {
				r.run(j, ip, fs)
			}
		}
		if defer_ {
			if pf := j.pendingFlows(fs); len(pf) > 0 {
				out[k].pending = &PendingAddress{IP: ip, Collateral: s.collateral(ip), Flows: pf}
			}
		}
	})
	var d *Digest
	if defer_ {
		d = &Digest{WindowStartNs: w.startNs, Vantage: w.vantage, Facts: facts}
	}
	for k := range out {
		for _, f := range out[k].findings {
			emit(f)
		}
		if out[k].pending != nil {
			d.Addresses = append(d.Addresses, *out[k].pending)
		}
	}
	if d != nil {
		s.deferTo(d)
	}
}

// A window of parallelIPs addresses or more is judged by up to
// judgeWorkers goroutines: at the end of a capture every window left is
// judged at once, with nothing else left to run on the other cores.
const (
	parallelIPs  = 256
	judgeWorkers = 4
)

// ipJudged is what judging one address made.
type ipJudged struct {
	findings []*schemas.Finding
	pending  *PendingAddress
}

// forEach calls fn(worker, k) for k from 0 to n-1 on workers goroutines
// (the caller's when 1), and returns when every call has.
func forEach(n, workers int, fn func(worker, k int)) {
	if workers <= 1 {
		for k := range n {
			fn(0, k)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for worker := range workers {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < n; k = int(next.Add(1) - 1) {
				fn(worker, k)
			}
		})
	}
	wg.Wait()
}

// finding starts a finding about flows; ex are the flows it is about.
func (j *judgement) finding(kind, ip string, port uint16, name string, ex []*summary) *schemas.Finding {
	f := &schemas.Finding{Kind: kind, TargetIP: ip, TargetPort: port, TargetName: name}
	f.WindowStartNs, f.WindowEndNs = ex[0].startNs, ex[0].endNs
	fps := map[string]int{}
	for _, s := range ex {
		f.WindowStartNs = min(f.WindowStartNs, s.startNs)
		f.WindowEndNs = max(f.WindowEndNs, s.endNs)
		if len(f.ExampleFlows) < 5 {
			f.ExampleFlows = append(f.ExampleFlows, s.id)
		}
		if s.fp != "" {
			fps[s.fp]++
		}
	}
	best := 0
	for fp, n := range fps {
		if n > best || n == best && fp < f.Fingerprint {
			f.Fingerprint, best = fp, n
		}
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%d|%s|%d", kind, ip, port, name, j.win.startNs)
	if j.win.vantage != "" { // ids of captures without a vantage stay as they were
		fmt.Fprintf(h, "|%s", j.win.vantage)
	}
	f.Vantage = j.win.vantage
	f.FindingID = fmt.Sprintf("F%016x", h.Sum64())
	return f
}

// control: a transfer big enough that its rate says what the path can do,
// however fast it finished.
func (j *judgement) control(s *summary) bool {
	return s.bytes >= j.cfg.ThrottleMinBytes && s.rateBps > 0
}

// candidate: a bulk transfer long enough to show a plateau, sent in
// full-size segments (an application trickling small writes is slow by
// itself, not by the network).
func (j *judgement) candidate(s *summary) bool {
	return j.control(s) && s.dataNs >= 1e9 && s.avgSeg >= 1000
}

// residualRule: after a flow to server:port is cut for naming X, later
// flows to the same server:port that fail at the handshake within the
// residual window are the censor's memory, not separate blocks (Clayton
// 2006; GFW 90-180 s). All triggers of one name on one server:port make
// one finding.
func residualRule(j *judgement, ip string, flows []*summary) {
	rw := int64(j.cfg.ResidualWindow)
	type key struct {
		port uint16
		name string
	}
	type group struct {
		trigs, hits []*summary
	}
	groups := map[key]*group{}
	var order []key
	for i, trig := range flows {
		if !trig.failedContent() || trig.name == "" || j.consumed[trig] {
			continue
		}
		var hit []*summary
		for _, f := range flows[i+1:] {
			if f.startNs-trig.startNs > rw {
				break
			}
			if f.serverPort != trig.serverPort || j.consumed[f] || f.proto != trig.proto {
				continue
			}
			// Content failures naming something else are triggers of
			// their own, left to the name rule.
			if f.failedHandshake() {
				hit = append(hit, f)
				j.consumed[f] = true
			}
		}
		if len(hit) == 0 {
			continue
		}
		k := key{trig.serverPort, trig.name}
		if groups[k] == nil {
			groups[k] = &group{}
			order = append(order, k)
		}
		groups[k].trigs = append(groups[k].trigs, trig)
		groups[k].hits = append(groups[k].hits, hit...)
	}
	for _, k := range order {
		g := groups[k]
		trig := g.trigs[0]
		fd := j.finding(schemas.KindResidualBlock, ip, k.port, k.name, append(slices.Clone(g.trigs), g.hits...))
		fd.Trigger, fd.Method = trig.trigger, method(g.hits)
		fd.Flows = uint32(len(g.trigs) + len(g.hits))
		fd.FailedFlows = uint32(len(g.hits))
		fd.Confidence = conf(0.6, len(g.hits), 0)
		fd.Verdict = "confirmed"
		if len(g.hits) == 1 && trig.injection < 0.5 {
			fd.Verdict = "likely"
		}
		fd.Evidence = fmt.Sprintf("after %d flow(s) naming %s were cut (%s), %d later flow(s) to %s:%d failed at the handshake within %s (%s)",
			len(g.trigs), k.name, trig.stage, len(g.hits), ip, k.port, j.cfg.ResidualWindow, outcomeMix(g.hits))
		j.emit(fd)
	}
}

// nameRule: flows naming X (SNI, Host, QUIC SNI) fail right after naming
// it, while flows to the same address naming other hosts succeed.
func nameRule(j *judgement, ip string, flows []*summary) {
	// A name is judged per protocol: QUIC to a name can be blocked while
	// TLS over TCP to it works, and the other way round.
	type target struct{ trigger, name string }
	byName := map[target][]*summary{}
	var targets []target
	for _, f := range flows {
		if f.name == "" && f.trigger != "esni" || j.consumed[f] {
			continue
		}
		k := target{f.trigger, f.name}
		if byName[k] == nil {
			targets = append(targets, k)
		}
		byName[k] = append(byName[k], f)
	}
	slices.SortFunc(targets, func(a, b target) int { return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.trigger, b.trigger)) })
	for _, tg := range targets {
		name, fs := tg.name, byName[tg]
		var failed []*summary
		okSame := 0
		for _, f := range fs {
			switch {
			case f.failedContent():
				failed = append(failed, f)
			case f.ok():
				okSame++
			}
		}
		if len(failed) == 0 || okSame > len(failed) {
			continue
		}
		controls, controlNames := 0, map[string]bool{}
		for _, f := range flows {
			if f.name != name && f.name != "" && f.ok() {
				controls++
				controlNames[f.name] = true
			}
		}
		resets, inj := 0, 0.0
		for _, f := range failed {
			if f.outcome == OutcomeReset {
				resets++
				inj += f.injection
			}
		}
		// Without a same-address control or forged-looking resets, a
		// pattern needs repetition: one or two failures are what servers
		// and captures do by themselves. Their flow records still say
		// what happened.
		if controls == 0 && inj/float64(max(resets, 1)) < 0.6 && len(failed) < 3 {
			continue
		}
		kind := schemas.KindSNIBlackhole
		method := "drop"
		if resets*2 >= len(failed) && resets > 0 {
			kind, method = schemas.KindSNIRSTInjection, "rst"
			inj /= float64(resets)
		}
		if failed[0].trigger == "quic_sni" {
			kind = schemas.KindQUICBlocking
		}
		fd := j.finding(kind, ip, failed[0].serverPort, name, failed)
		fd.Trigger, fd.Method = failed[0].trigger, method
		fd.Flows = uint32(len(fs))
		fd.FailedFlows = uint32(len(failed))
		fd.ControlFlows = uint32(controls)
		switch {
		case controls > 0:
			fd.Verdict = "confirmed"
		case method == "rst" && inj >= 0.6:
			fd.Verdict = "confirmed"
		case len(failed) >= 2:
			fd.Verdict = "likely"
		default:
			fd.Verdict = "insufficient_evidence"
		}
		fd.Confidence = conf(0.4+0.3*inj, len(failed), controls)
		var ev strings.Builder
		what := "naming " + name
		if name == "" {
			what = "hiding their name (ESNI/ECH without SNI)"
		}
		fmt.Fprintf(&ev, "%d of %d flows %s (%s) failed at %s (%s)", len(failed), len(fs), what, failed[0].trigger, failed[0].stage, outcomeMix(failed))
		if controls > 0 {
			fmt.Fprintf(&ev, "; %d flows to the same address naming %d other hosts succeeded", controls, len(controlNames))
		} else {
			ev.WriteString("; no same-address control succeeded")
		}
		if method == "rst" {
			fmt.Fprintf(&ev, "; injection score %.2f, evidence: %s", inj, evidenceMix(failed))
		}
		fd.Evidence = ev.String()
		j.emit(fd)
	}
}

// maxBlockPorts: flows to more ports of one address than this are a scan.
const maxBlockPorts = 16

// blockable returns the flows to an address that failed at the handshake,
// and their ports, when nothing else reached it: the makings of an IP
// block.
func (j *judgement) blockable(flows []*summary) (failed []*summary, ports map[uint16]bool, ok bool) {
	ports = map[uint16]bool{}
	for _, f := range flows {
		if j.consumed[f] {
			continue
		}
		if f.ok() || f.stage == StagePostPSH || f.stage == StageLater {
			return nil, nil, false // something got through: not blocked at the IP level
		}
		if f.failedHandshake() {
			failed = append(failed, f)
			ports[f.serverPort] = true
		}
	}
	// Too few to call, or a port scan rather than users.
	return failed, ports, len(failed) >= j.cfg.MinBlockFlows && len(ports) <= maxBlockPorts
}

// ipBlockRule: every flow to the address fails at the handshake, whatever
// it would have named; the finding lists the collateral.
func ipBlockRule(j *judgement, ip string, flows []*summary) {
	failed, ports, ok := j.blockable(flows)
	if !ok {
		return
	}
	port := uint16(0)
	if len(ports) == 1 {
		port = failed[0].serverPort
	}
	fd := j.finding(schemas.KindIPBlocking, ip, port, "", failed)
	fd.Trigger, fd.Method = "ip", method(failed)
	fd.Flows, fd.FailedFlows = uint32(len(failed)), uint32(len(failed))
	fd.Collateral = j.collateral(ip)
	if len(fd.Collateral) == 0 && fd.Method != "icmp" {
		// Nothing anyone wanted is known to live there: a dead or
		// closed host looks the same. An administratively-prohibited
		// ICMP is a statement of its own.
		return
	}
	// Names of the collateral that work on other addresses show the block
	// is on the address, not the name.
	elsewhere := 0
	for _, n := range fd.Collateral {
		if j.okElsewhere(n, ip) {
			elsewhere++
		}
	}
	synSeen := 0
	for _, f := range failed {
		if f.synSeen {
			synSeen++
		}
	}
	switch {
	case synSeen == 0:
		fd.Verdict = "insufficient_evidence"
	case fd.Method == "icmp" || len(fd.Collateral) >= 2 || elsewhere > 0:
		fd.Verdict = "confirmed"
	default:
		fd.Verdict = "likely"
	}
	fd.Confidence = conf(0.5, len(failed), elsewhere)
	fd.Evidence = fmt.Sprintf("all %d flows to %s failed at the handshake (%s) on %d port(s), none succeeded; %d names seen on it, %d of them reachable on other addresses",
		len(failed), ip, outcomeMix(failed), len(ports), len(fd.Collateral), elsewhere)
	j.emit(fd)
}

func (j *judgement) okElsewhere(name, ip string) bool {
	for other, names := range j.facts.OKNames {
		if _, found := slices.BinarySearch(names, name); found && other != ip {
			return true
		}
	}
	return false
}

// throttleRule: bulk transfers naming X (or to this address) run at a
// plateau far below the same address's other names (or other addresses):
// a targeted cap. Without any faster control, a plateau below
// Config.SlowPathBps is reported as a path slow for everyone (Targeted
// false), which is no censorship verdict.
func throttleRule(j *judgement, ip string, flows []*summary) {
	byName := map[string][]*summary{}
	ctlByName := map[string][]float64{}
	var names []string
	var all []*summary
	for _, f := range flows {
		if j.consumed[f] {
			continue
		}
		if j.control(f) {
			ctlByName[f.name] = append(ctlByName[f.name], f.rateBps)
		}
		if !j.candidate(f) {
			continue
		}
		all = append(all, f)
		if byName[f.name] == nil {
			names = append(names, f.name)
		}
		byName[f.name] = append(byName[f.name], f)
	}
	if len(all) == 0 {
		return
	}
	ratio := j.cfg.ThrottleRatio
	slices.Sort(names)
	targeted := 0
	for _, name := range names {
		fs := byName[name]
		var others []float64
		for n, rs := range ctlByName {
			if n != name {
				others = append(others, rs...)
			}
		}
		mine := rates(fs)
		if name == "" || len(others) == 0 || median(others) < ratio*median(mine) {
			continue
		}
		targeted++
		j.emitThrottle(ip, name, fs, median(mine), median(others), "other names on the same address", true)
	}
	if targeted > 0 {
		return
	}
	var elsewhere []float64
	for other, rs := range j.facts.Rates {
		if other != ip {
			elsewhere = append(elsewhere, rs...)
		}
	}
	mine := median(rates(all))
	switch {
	case len(elsewhere) > 0 && median(elsewhere) >= ratio*mine:
		j.emitThrottle(ip, "", all, mine, median(elsewhere), "other addresses", true)
	case mine < j.cfg.SlowPathBps && !j.fasterAnywhere(mine) && j.facts.Candidates >= 2:
		j.emitThrottle(ip, "", all, mine, 0, "", false)
	}
}

// fasterAnywhere reports whether any bulk transfer in the window ran well
// above rate: then a slow address is not a slow path.
func (j *judgement) fasterAnywhere(rate float64) bool {
	for _, rs := range j.facts.Rates {
		for _, r := range rs {
			if r >= j.cfg.ThrottleRatio*rate {
				return true
			}
		}
	}
	return false
}

func rates(fs []*summary) []float64 {
	out := make([]float64, len(fs))
	for i, f := range fs {
		out[i] = f.rateBps
	}
	return out
}

func (j *judgement) emitThrottle(ip, name string, fs []*summary, rate, control float64, what string, targeted bool) {
	port := uint16(0)
	if name != "" {
		port = fs[0].serverPort
	}
	fd := j.finding(schemas.KindThrottling, ip, port, name, fs)
	fd.Trigger = "ip"
	switch {
	case !targeted:
		fd.Trigger = "path"
	case name != "":
		fd.Trigger = fs[0].trigger
	}
	fd.Method = "throttle"
	fd.RateBps = rate
	fd.Targeted = targeted
	if name == "" {
		fd.Collateral = j.collateral(ip)
	}
	var retrans float64
	for _, f := range fs {
		retrans += f.retrans
	}
	retrans /= float64(len(fs))
	fd.Shape = "shaping"
	if retrans >= 0.02 {
		fd.Shape = "policing"
	}
	fd.Flows, fd.FailedFlows = uint32(len(fs)), uint32(len(fs))
	fd.Verdict = "confirmed"
	if len(fs) < 2 {
		fd.Verdict = "likely"
	}
	fd.Confidence = conf(0.5, len(fs), 1)
	fd.Evidence = fmt.Sprintf("%d bulk flow(s) plateau at %.0f kbit/s (%s, %.1f%% retransmitted) while %s run at %.0f kbit/s",
		len(fs), rate/1000, fd.Shape, retrans*100, what, control/1000)
	if !targeted {
		fd.Verdict = "path_limited"
		fd.Confidence = conf(0.3, len(fs), 0)
		fd.Evidence = fmt.Sprintf("%d bulk flow(s) plateau at %.0f kbit/s (%s) and no transfer in the window ran faster: the path is slow for everyone, not a targeted cap",
			len(fs), rate/1000, fd.Shape)
	}
	j.emit(fd)
}

// interceptionRule: a TLS <= 1.2 certificate chains to a known
// interception root.
func interceptionRule(j *judgement, ip string, flows []*summary) {
	byIssuer := map[string][]*summary{}
	var issuers []string
	for _, f := range flows {
		if f.issuer == "" {
			continue
		}
		for _, s := range j.cfg.InterceptionIssuers {
			if strings.Contains(f.issuer, s) {
				if byIssuer[f.issuer] == nil {
					issuers = append(issuers, f.issuer)
				}
				byIssuer[f.issuer] = append(byIssuer[f.issuer], f)
			}
		}
	}
	slices.Sort(issuers)
	for _, iss := range issuers {
		fs := byIssuer[iss]
		fd := j.finding(schemas.KindTLSInterception, ip, fs[0].serverPort, fs[0].name, fs)
		fd.Trigger, fd.Method, fd.Issuer = "sni", "mitm", iss
		fd.Flows, fd.FailedFlows = uint32(len(fs)), uint32(len(fs))
		fd.Verdict = "confirmed"
		fd.Confidence = conf(0.8, len(fs), 0)
		fd.Evidence = fmt.Sprintf("%d flow(s) got a certificate issued by %q, a known interception root", len(fs), iss)
		j.emit(fd)
	}
}

// conf grows with failed flows and controls, from base, below 0.99.
func conf(base float64, failed, controls int) float64 {
	c := base + 0.1*float64(min(failed, 3)) + 0.1*float64(min(controls, 2))
	return min(0.99, float64(int(c*100))/100)
}

func method(fs []*summary) string {
	n := map[string]int{}
	for _, f := range fs {
		switch f.outcome {
		case OutcomeReset:
			n["rst"]++
		case OutcomeICMP:
			n["icmp"]++
		default:
			n["drop"]++
		}
	}
	best := ""
	for _, m := range []string{"rst", "icmp", "drop"} {
		if best == "" || n[m] > n[best] {
			best = m
		}
	}
	return best
}

func outcomeMix(fs []*summary) string {
	n := map[string]int{}
	for _, f := range fs {
		n[f.outcome]++
	}
	return mix(n)
}

func evidenceMix(fs []*summary) string {
	n := map[string]int{}
	for _, f := range fs {
		for _, e := range f.evidence {
			n[e]++
		}
	}
	if len(n) == 0 {
		return "none"
	}
	return mix(n)
}

func mix(n map[string]int) string {
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, n[k])
	}
	return strings.Join(parts, ", ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
