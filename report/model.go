package report

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/columnar"
	"github.com/tamperscope/tamperscope/sink"
)

// Options configures Build. The zero value works.
type Options struct {
	// Title heads the page. The default is "tamperscope report".
	Title string
	// TimeBuckets is the number of columns of the timeline; the bucket
	// width is rounded up to a whole step (1s, 5s, ... 1d). The default is
	// 96.
	TimeBuckets int
	// MinThroughputBytes leaves flows with less server payload out of the
	// throughput distributions: short transfers measure the round trip,
	// not the rate. The default is 16 KiB.
	MinThroughputBytes uint64
	// TopSignatures is the number of signature rows listed; the rest are
	// summed in one row. The default is 30.
	TopSignatures int
}

func (o *Options) setDefaults() {
	if o.Title == "" {
		o.Title = "tamperscope report"
	}
	if o.TimeBuckets <= 0 {
		o.TimeBuckets = 96
	}
	if o.MinThroughputBytes == 0 {
		o.MinThroughputBytes = 16 << 10
	}
	if o.TopSignatures <= 0 {
		o.TopSignatures = 30
	}
}

// Report is the data model of one report: everything the page shows,
// computed from a dataset directory.
type Report struct {
	Title        string
	Dir          string
	Summary      Summary
	Timeline     Timeline
	Collateral   []IPCollateral
	Throughput   Throughput
	Fingerprints []FingerprintGroup
	Findings     []schemas.Finding // by window start
	Mix          SignatureMix
	// Problems lists files that could not be read; the report covers the
	// rest.
	Problems []string
}

// Count is a value and how often it occurred.
type Count struct {
	Key string
	N   int64
}

// Summary is the header of the report.
type Summary struct {
	Start, End     time.Time // first flow start, last flow end (UTC)
	Flows          int64
	FailedFlows    int64 // outcome reset, timeout or icmp_unreachable
	ServerIPs      int
	Names          int // distinct SNI / HTTP Host values
	Findings       int
	FindingsByKind []Count
	Vantages       []string
	Versions       []string // tamperscope versions that wrote the files
	FlowFiles      int
	FindingFiles   int
}

// Timeline counts failed flows over time: for the whole dataset by
// outcome, and for each finding target (lane).
type Timeline struct {
	Start    time.Time
	Bucket   time.Duration
	Buckets  int
	All      []int64            // flows per bucket
	Failures map[string][]int64 // failed flows per bucket, by outcome
	Lanes    []Lane
}

// Lane is one finding target on the timeline: a kind and its target as
// one vantage saw it, the windows of its findings, and the flows it
// affected per bucket (failed flows; for throttling and TLS interception
// every matching flow). Vantages get lanes apart: an address blocked on
// one vantage's path may answer another's.
type Lane struct {
	Vantage  string
	Kind     string
	IP       string
	Port     uint16
	Name     string
	Findings int
	Windows  [][2]time.Time
	Buckets  []int64
	Affected int64
}

// Target renders the lane's target as name@ip:port.
func (l *Lane) Target() string { return target(l.Name, l.IP, l.Port) }

func target(name, ip string, port uint16) string {
	s := ip
	if port != 0 {
		if slices.Contains([]byte(ip), ':') {
			s = "[" + ip + "]"
		}
		s += ":" + strconv.Itoa(int(port))
	}
	if name != "" {
		return name + " @ " + s
	}
	return s
}

// IPCollateral is an IP-blocked address and the names the block took
// down with it.
type IPCollateral struct {
	IP         string
	Methods    []string
	Start, End time.Time // finding windows
	Flows      int64     // flows to the address
	Failed     int64
	Names      []NameOnIP
}

// NameOnIP is one name seen on a blocked address.
type NameOnIP struct {
	Name        string
	Flows       int64 // flows to the blocked address naming it
	Failed      int64
	OKElsewhere int64 // successful flows naming it on other addresses
	Listed      bool  // named in the finding's collateral
}

// Throughput compares the goodput of flows to throttled targets with all
// other flows that moved at least MinBytes of server payload.
type Throughput struct {
	MinBytes  uint64
	Throttled Dist
	Normal    Dist
	Caps      []Cap
}

// Dist is a distribution of goodput values (bit/s).
type Dist struct {
	Values           []float64 // sorted
	P10, Median, P90 float64
}

// Cap is the rate a throttling finding estimated.
type Cap struct {
	Target   string
	RateBps  float64
	Shape    string
	Targeted bool
	Flows    uint32
}

// FingerprintGroup is one censor fingerprint: the findings that carry it
// and the flows whose resets match it. Fingerprint "" groups findings
// without one (drops, throttling).
type FingerprintGroup struct {
	Fingerprint string
	Findings    int
	Kinds       []Count
	Methods     []string
	Targets     []string
	Days        []string // UTC dates of its findings' windows
	FailedFlows int64    // sum over its findings
	Flows       int64    // flow records carrying the fingerprint
	First, Last time.Time
}

// SignatureMix counts flows by outcome, stage and signature, and the
// injection evidence on flows with resets.
type SignatureMix struct {
	Outcomes   []Count
	Stages     []Count
	Signatures []SignatureRow
	Others     int64 // flows with signatures beyond the listed rows
	ResetFlows int64 // flows with at least one RST
	Evidence   []Count
}

// SignatureRow is one signature with the outcome and stage it implies.
type SignatureRow struct {
	Signature, Outcome, Stage string
	N                         int64
}

// Build reads the flows and findings datasets under dir and computes the
// report. A missing or empty findings dataset is not an error; a missing
// flows dataset is. Unreadable files are listed in Report.Problems.
func Build(ctx context.Context, dir string, opts Options) (*Report, error) {
	opts.setDefaults()
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open dataset directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("open dataset directory %s: %w: not a directory", dir, ErrNotDataset)
	}
	if _, err := os.Stat(filepath.Join(dir, columnar.Flows)); err != nil {
		return nil, fmt.Errorf("open dataset directory %s: %w: no %s/ inside", dir, ErrNotDataset, columnar.Flows)
	}
	flowFiles, err := sink.CommittedFiles(dir, columnar.Flows)
	if err != nil {
		return nil, err
	}
	findingFiles, err := sink.CommittedFiles(dir, columnar.Findings)
	if err != nil {
		return nil, err
	}

	r := &Report{Title: opts.Title, Dir: dir}
	r.Summary.FlowFiles, r.Summary.FindingFiles = len(flowFiles), len(findingFiles)
	versions := map[string]bool{}
	bad := map[string]bool{}
	for _, p := range findingFiles {
		fs, meta, err := readFindings(ctx, p)
		if err != nil {
			r.Problems = append(r.Problems, err.Error())
			continue
		}
		versions[meta.version] = true
		r.Findings = append(r.Findings, fs...)
	}
	slices.SortStableFunc(r.Findings, func(a, b schemas.Finding) int {
		return cmp.Or(cmp.Compare(a.WindowStartNs, b.WindowStartNs), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.TargetIP, b.TargetIP))
	})

	// Pass 1: the span, so that pass 2 can bucket flows in time.
	var lo, hi int64 = math.MaxInt64, math.MinInt64
	for _, p := range flowFiles {
		_, err := readFile(ctx, p, []string{"start_ns", "end_ns"}, func(rec arrow.RecordBatch) error {
			start, end := intCol(rec, "start_ns"), intCol(rec, "end_ns")
			for i := range int(rec.NumRows()) {
				lo = min(lo, start(i))
				hi = max(hi, end(i), start(i))
			}
			return nil
		})
		if err != nil {
			r.Problems = append(r.Problems, err.Error())
			bad[p] = true
		}
	}
	for _, f := range r.Findings {
		lo, hi = min(lo, f.WindowStartNs), max(hi, f.WindowEndNs, f.WindowStartNs)
	}
	if lo > hi {
		lo, hi = 0, 0
	}

	a := newAggregator(r, opts, lo, hi)
	for _, p := range flowFiles {
		if bad[p] {
			continue
		}
		meta, err := readFlows(ctx, p, a.addFlow)
		if err != nil {
			r.Problems = append(r.Problems, err.Error())
			continue
		}
		versions[meta.version] = true
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.finish()
	delete(versions, "")
	r.Summary.Versions = slices.Sorted(maps.Keys(versions))
	return r, nil
}

// Failed reports whether an outcome is a failure that tampering explains:
// a reset, a timeout or an ICMP error. Incomplete flows and flows with
// insufficient evidence are not counted as failed.
func Failed(outcome string) bool {
	return outcome == "reset" || outcome == "timeout" || outcome == "icmp_unreachable"
}

// flowName is the name a flow asked for.
func flowName(r *schemas.FlowRecord) string {
	if r.SNI != "" {
		return r.SNI
	}
	return r.HTTPHost
}

// aggregator folds flow records into the report in one pass, keeping
// counts and only the goodput values of the throughput charts.
type aggregator struct {
	r    *Report
	opts Options

	lo, bucketNs int64
	laneList     []*Lane            // in order of first finding
	lanes        map[string][]*Lane // by server IP
	throttles    map[string][]*Lane // throttling lanes by server IP

	ips, names    map[string]bool
	vantages      map[string]bool
	nameFlows     map[string]int64 // all flows by name
	nameOK        map[string]int64 // successful flows by name
	blocked       map[string]*ipStats
	fpFlows       map[string]int64
	outcomes      map[string]int64
	stages        map[string]int64
	signatures    map[SignatureRow]int64
	evidence      map[string]int64
	throttled     []float64
	normal        []float64
	blockedWindow map[string][2]int64
}

type ipStats struct {
	flows, failed int64
	names         map[string]*NameOnIP
	methods       map[string]bool
}

func newAggregator(r *Report, opts Options, lo, hi int64) *aggregator {
	a := &aggregator{
		r: r, opts: opts,
		lanes: map[string][]*Lane{}, throttles: map[string][]*Lane{},
		ips: map[string]bool{}, names: map[string]bool{}, vantages: map[string]bool{},
		nameFlows: map[string]int64{}, nameOK: map[string]int64{},
		blocked: map[string]*ipStats{}, fpFlows: map[string]int64{},
		outcomes: map[string]int64{}, stages: map[string]int64{},
		signatures: map[SignatureRow]int64{}, evidence: map[string]int64{},
		blockedWindow: map[string][2]int64{},
	}
	step := bucketStep(time.Duration(hi-lo) / time.Duration(opts.TimeBuckets))
	a.bucketNs = int64(step)
	a.lo = lo - lo%a.bucketNs
	n := int((hi-a.lo)/a.bucketNs) + 1
	r.Timeline = Timeline{Start: time.Unix(0, a.lo).UTC(), Bucket: step, Buckets: n, All: make([]int64, n), Failures: map[string][]int64{}}

	byKey := map[string]*Lane{}
	for _, f := range r.Findings {
		key := f.Vantage + "\x00" + f.Kind + "\x00" + f.TargetIP + "\x00" + strconv.Itoa(int(f.TargetPort)) + "\x00" + f.TargetName
		l := byKey[key]
		if l == nil {
			l = &Lane{Vantage: f.Vantage, Kind: f.Kind, IP: f.TargetIP, Port: f.TargetPort, Name: f.TargetName, Buckets: make([]int64, n)}
			byKey[key] = l
			a.laneList = append(a.laneList, l)
			a.lanes[f.TargetIP] = append(a.lanes[f.TargetIP], l)
			if f.Kind == schemas.KindThrottling {
				a.throttles[f.TargetIP] = append(a.throttles[f.TargetIP], l)
			}
		}
		l.Findings++
		l.Windows = append(l.Windows, [2]time.Time{time.Unix(0, f.WindowStartNs).UTC(), time.Unix(0, f.WindowEndNs).UTC()})
		if f.Kind == schemas.KindIPBlocking {
			st := a.blocked[f.TargetIP]
			if st == nil {
				st = &ipStats{names: map[string]*NameOnIP{}, methods: map[string]bool{}}
				a.blocked[f.TargetIP] = st
				a.blockedWindow[f.TargetIP] = [2]int64{f.WindowStartNs, f.WindowEndNs}
			}
			w := a.blockedWindow[f.TargetIP]
			a.blockedWindow[f.TargetIP] = [2]int64{min(w[0], f.WindowStartNs), max(w[1], f.WindowEndNs)}
			st.methods[f.Method] = true
			for _, name := range f.Collateral {
				st.name(name).Listed = true
			}
		}
	}
	return a
}

func (s *ipStats) name(n string) *NameOnIP {
	e := s.names[n]
	if e == nil {
		e = &NameOnIP{Name: n}
		s.names[n] = e
	}
	return e
}

// bucketStep rounds d up to a step a reader can count in.
func bucketStep(d time.Duration) time.Duration {
	for _, s := range []time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	} {
		if d <= s {
			return s
		}
	}
	return (d + 24*time.Hour - 1) / (24 * time.Hour) * 24 * time.Hour
}

// matches reports whether a flow counts for a lane.
func (l *Lane) matches(r *schemas.FlowRecord, name string, failed bool) bool {
	if l.Vantage != r.Vantage || l.Port != 0 && l.Port != r.ServerPort {
		return false
	}
	switch l.Kind {
	case schemas.KindIPBlocking:
		return failed
	case schemas.KindResidualBlock:
		// The trigger's own failures belong to its SNI lane; residual
		// blocking is about the innocent flows after it.
		return failed && name != l.Name
	case schemas.KindThrottling, schemas.KindTLSInterception:
		return l.Name == "" || l.Name == name
	}
	return failed && (l.Name == "" || l.Name == name)
}

func (a *aggregator) bucket(ns int64) int {
	return min(max(int((ns-a.lo)/a.bucketNs), 0), a.r.Timeline.Buckets-1)
}

func (a *aggregator) addFlow(r *schemas.FlowRecord) {
	s := &a.r.Summary
	s.Flows++
	failed := Failed(r.Outcome)
	name := flowName(r)
	b := a.bucket(r.StartNs)
	tl := &a.r.Timeline
	tl.All[b]++
	if failed {
		s.FailedFlows++
		fs := tl.Failures[r.Outcome]
		if fs == nil {
			fs = make([]int64, tl.Buckets)
			tl.Failures[r.Outcome] = fs
		}
		fs[b]++
	}
	a.ips[r.ServerIP] = true
	a.vantages[r.Vantage] = true
	if name != "" {
		a.names[name] = true
		a.nameFlows[name]++
		if r.Outcome == "ok" {
			a.nameOK[name]++
		}
	}
	for _, l := range a.lanes[r.ServerIP] {
		if l.matches(r, name, failed) {
			l.Buckets[b]++
			l.Affected++
		}
	}
	if st := a.blocked[r.ServerIP]; st != nil {
		st.flows++
		if failed {
			st.failed++
		}
		if name != "" {
			e := st.name(name)
			e.Flows++
			if failed {
				e.Failed++
			}
		}
	}
	if r.Fingerprint != "" {
		a.fpFlows[r.Fingerprint]++
	}
	a.outcomes[cmp.Or(r.Outcome, "(none)")]++
	a.stages[cmp.Or(r.Stage, "(none)")]++
	a.signatures[SignatureRow{Signature: cmp.Or(r.Signature, "(none)"), Outcome: r.Outcome, Stage: r.Stage}]++
	if r.RSTs > 0 {
		a.r.Mix.ResetFlows++
		for _, e := range []struct {
			on   bool
			name string
		}{
			{r.RSTRace, "race"}, {r.RSTSeqChange, "seq_change"}, {r.RSTAckChange, "ack_change"},
			{r.RSTTTLDelta >= 2, "ttl_delta"}, {r.RSTIPIDJump, "ipid_jump"}, {r.RSTSeqBad, "seq_bad"},
			{r.RSTAck0, "ack0"}, {r.RSTBurst, "burst"}, {r.RSTWindow0, "window0"}, {r.RSTNoAck, "no_ack"},
		} {
			if e.on {
				a.evidence[e.name]++
			}
		}
	}
	if r.ServerPayload >= a.opts.MinThroughputBytes && r.GoodputBps > 0 {
		throttled := false
		for _, l := range a.throttles[r.ServerIP] {
			throttled = throttled || l.matches(r, name, failed)
		}
		if throttled {
			a.throttled = append(a.throttled, r.GoodputBps)
		} else {
			a.normal = append(a.normal, r.GoodputBps)
		}
	}
}

func (a *aggregator) finish() {
	r := a.r
	s := &r.Summary
	s.ServerIPs, s.Names = len(a.ips), len(a.names)
	delete(a.vantages, "")
	s.Vantages = slices.Sorted(maps.Keys(a.vantages))
	s.Findings = len(r.Findings)
	if s.Flows > 0 || len(r.Findings) > 0 {
		s.Start = time.Unix(0, a.lo).UTC()
		s.End = s.Start.Add(time.Duration(r.Timeline.Buckets) * r.Timeline.Bucket)
	}
	kinds := map[string]int64{}
	for _, f := range r.Findings {
		kinds[f.Kind]++
	}
	s.FindingsByKind = sortedCounts(kinds)

	for _, l := range a.laneList {
		r.Timeline.Lanes = append(r.Timeline.Lanes, *l)
	}
	slices.SortStableFunc(r.Timeline.Lanes, func(x, y Lane) int {
		return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Name, y.Name), cmp.Compare(x.IP, y.IP))
	})

	for ip, st := range a.blocked {
		c := IPCollateral{IP: ip, Methods: slices.Sorted(maps.Keys(st.methods)), Flows: st.flows, Failed: st.failed}
		w := a.blockedWindow[ip]
		c.Start, c.End = time.Unix(0, w[0]).UTC(), time.Unix(0, w[1]).UTC()
		for _, n := range st.names {
			// Successful flows naming it on this address are not
			// "elsewhere"; they are few on a blocked address but possible
			// before the block began.
			n.OKElsewhere = a.nameOK[n.Name] - (n.Flows - n.Failed)
			if n.OKElsewhere < 0 {
				n.OKElsewhere = 0
			}
			c.Names = append(c.Names, *n)
		}
		slices.SortFunc(c.Names, func(x, y NameOnIP) int {
			return cmp.Or(cmp.Compare(y.Failed, x.Failed), cmp.Compare(x.Name, y.Name))
		})
		r.Collateral = append(r.Collateral, c)
	}
	slices.SortFunc(r.Collateral, func(x, y IPCollateral) int {
		return cmp.Or(cmp.Compare(len(y.Names), len(x.Names)), cmp.Compare(y.Failed, x.Failed), cmp.Compare(x.IP, y.IP))
	})

	r.Throughput = Throughput{MinBytes: a.opts.MinThroughputBytes, Throttled: newDist(a.throttled), Normal: newDist(a.normal)}
	for _, f := range r.Findings {
		if f.Kind == schemas.KindThrottling {
			r.Throughput.Caps = append(r.Throughput.Caps, Cap{Target: target(f.TargetName, f.TargetIP, f.TargetPort), RateBps: f.RateBps, Shape: f.Shape, Targeted: f.Targeted, Flows: f.Flows})
		}
	}

	r.Fingerprints = a.fingerprints()

	m := &r.Mix
	m.Outcomes, m.Stages, m.Evidence = sortedCounts(a.outcomes), sortedCounts(a.stages), sortedCounts(a.evidence)
	for row, n := range a.signatures {
		row.N = n
		m.Signatures = append(m.Signatures, row)
	}
	slices.SortFunc(m.Signatures, func(x, y SignatureRow) int {
		return cmp.Or(cmp.Compare(y.N, x.N), cmp.Compare(x.Signature, y.Signature), cmp.Compare(x.Outcome, y.Outcome))
	})
	if len(m.Signatures) > a.opts.TopSignatures {
		for _, row := range m.Signatures[a.opts.TopSignatures:] {
			m.Others += row.N
		}
		m.Signatures = m.Signatures[:a.opts.TopSignatures]
	}
}

func (a *aggregator) fingerprints() []FingerprintGroup {
	type acc struct {
		g               FingerprintGroup
		kinds           map[string]int64
		methods, target map[string]bool
		days            map[string]bool
	}
	groups := map[string]*acc{}
	get := func(fp string) *acc {
		g := groups[fp]
		if g == nil {
			g = &acc{g: FingerprintGroup{Fingerprint: fp}, kinds: map[string]int64{}, methods: map[string]bool{}, target: map[string]bool{}, days: map[string]bool{}}
			groups[fp] = g
		}
		return g
	}
	for _, f := range a.r.Findings {
		g := get(f.Fingerprint)
		g.g.Findings++
		g.kinds[f.Kind]++
		g.methods[f.Method] = true
		g.target[target(f.TargetName, f.TargetIP, f.TargetPort)] = true
		start, end := time.Unix(0, f.WindowStartNs).UTC(), time.Unix(0, f.WindowEndNs).UTC()
		g.days[start.Format(time.DateOnly)] = true
		g.g.FailedFlows += int64(f.FailedFlows)
		if g.g.First.IsZero() || start.Before(g.g.First) {
			g.g.First = start
		}
		if end.After(g.g.Last) {
			g.g.Last = end
		}
	}
	for fp, n := range a.fpFlows {
		get(fp).g.Flows = n
	}
	out := make([]FingerprintGroup, 0, len(groups))
	for _, g := range groups {
		g.g.Kinds = sortedCounts(g.kinds)
		delete(g.methods, "")
		g.g.Methods = slices.Sorted(maps.Keys(g.methods))
		g.g.Targets = slices.Sorted(maps.Keys(g.target))
		g.g.Days = slices.Sorted(maps.Keys(g.days))
		out = append(out, g.g)
	}
	slices.SortFunc(out, func(x, y FingerprintGroup) int {
		// Findings without a fingerprint go last: they are not one device.
		return cmp.Or(cmp.Compare(unnamed(x.Fingerprint), unnamed(y.Fingerprint)), cmp.Compare(y.Findings, x.Findings), cmp.Compare(y.Flows, x.Flows), cmp.Compare(x.Fingerprint, y.Fingerprint))
	})
	return out
}

func unnamed(fp string) int {
	if fp == "" {
		return 1
	}
	return 0
}

func sortedCounts(m map[string]int64) []Count {
	out := make([]Count, 0, len(m))
	for k, n := range m {
		out = append(out, Count{k, n})
	}
	slices.SortFunc(out, func(x, y Count) int { return cmp.Or(cmp.Compare(y.N, x.N), cmp.Compare(x.Key, y.Key)) })
	return out
}

func newDist(v []float64) Dist {
	slices.Sort(v)
	d := Dist{Values: v}
	if len(v) > 0 {
		d.P10, d.Median, d.P90 = quantile(v, 0.1), quantile(v, 0.5), quantile(v, 0.9)
	}
	return d
}

// quantile of sorted values, nearest rank.
func quantile(v []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(i, 0), len(v)-1)]
}
