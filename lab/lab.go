package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tamperscope/tamperscope/internal/certs"
	"github.com/tamperscope/tamperscope/lab/injector"
	"github.com/tamperscope/tamperscope/lab/labdns"
	"github.com/tamperscope/tamperscope/lab/netns"
	"github.com/tamperscope/tamperscope/lab/prober"
	"github.com/tamperscope/tamperscope/lab/server"
)

// Config selects what Run does. The zero value runs every scenario with
// seed 0 into the current directory.
type Config struct {
	// Seed picks names, addresses, counts and rates.
	Seed int64
	// Scenarios to run, by name (see Scenarios). The default is all.
	Scenarios []string
	// OutDir receives <scenario>-seed<N>/capture.pcap and truth.json. The
	// default is the current directory.
	OutDir string
	// RouterCapture adds router.pcap, taken on the router's server-side
	// interface, beside each client capture.
	RouterCapture bool
	// ThinkDelay is how long the server waits before its first TLS or
	// QUIC flight, standing in for a server further away than the censor;
	// without it a one-hop server can outrun the injector, whose QUIC
	// blocks go through iptables. The default is 100 ms.
	ThinkDelay time.Duration
	// Log receives progress; the default discards it.
	Log *slog.Logger
}

// Result is what Run produced.
type Result struct {
	Scenarios []ScenarioResult
}

// ScenarioResult is one scenario's output.
type ScenarioResult struct {
	Name  string
	Dir   string // holds capture.pcap and truth.json
	Truth Truth
	// Mismatches lists attempts whose client-observed outcome or rate
	// differs from what the scenario should cause; empty when the lab
	// behaved as designed.
	Mismatches []string
}

// dnsPort is where the scenarios' DNS servers listen.
const dnsPort = 53

// ErrNotRoot is returned when Run lacks the privileges it needs.
var ErrNotRoot = errors.New("the censor lab needs root")

// Check reports whether Run can work here: root and every tool present.
func Check() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	var missing []string
	for _, t := range netns.Tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("check lab tools: missing %s (run lab/setup.sh)", strings.Join(missing, ", "))
	}
	return nil
}

// Run builds the lab, runs the scenarios one after the other and tears
// everything down, whatever happens.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if err := Check(); err != nil {
		return res, err
	}
	if cfg.OutDir == "" {
		cfg.OutDir = "."
	}
	if cfg.ThinkDelay == 0 {
		cfg.ThinkDelay = 100 * time.Millisecond
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	plans, err := buildPlans(cfg.Seed, cfg.Scenarios)
	if err != nil {
		return res, err
	}
	if err := netns.CleanupStale(ctx); err != nil {
		return res, fmt.Errorf("remove stale lab namespaces: %w", err)
	}

	var addrs []netip.Addr
	var names []string
	var resetAddrs []netip.Addr
	zones := map[netip.AddrPort]labdns.Zone{}
	for _, p := range plans {
		addrs = append(addrs, p.resolver)
		zones[netip.AddrPortFrom(p.resolver, dnsPort)] = p.zone()
		addrs = append(addrs, p.addrs...)
		names = append(names, p.names...)
		resetAddrs = append(resetAddrs, p.resetAddrs...)
	}
	log.Info("building topology", "addresses", len(addrs))
	topo, err := netns.Up(ctx, addrs)
	if err != nil {
		return res, err
	}
	defer func() {
		if derr := topo.Down(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, fmt.Errorf("tear down lab: %w", derr))
		}
	}()
	for _, c := range [][]string{
		{"tc", "qdisc", "add", "dev", netns.RouterClientIf, "root", "handle", "1:", "htb", "default", "1"},
		{"tc", "class", "add", "dev", netns.RouterClientIf, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit"},
	} {
		if _, err := netns.Exec(ctx, topo.Router, c[0], c[1:]...); err != nil {
			return res, fmt.Errorf("set up shaping: %w", err)
		}
	}

	ca, err := certs.NewCA("tamperscope lab CA")
	if err != nil {
		return res, err
	}
	var srv *server.Server
	if err := netns.Do(topo.Server, func() error {
		var err error
		srv, err = server.Start(server.Config{CA: ca, Names: names, ThinkDelay: cfg.ThinkDelay, ResetAfterResponse: resetAddrs})
		return err
	}); err != nil {
		return res, err
	}
	defer srv.Close()
	var dns *labdns.Server
	if err := netns.Do(topo.Server, func() error {
		var err error
		dns, err = labdns.Start(zones)
		return err
	}); err != nil {
		return res, err
	}
	defer dns.Close()

	for _, p := range plans {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		log.Info("running scenario", "scenario", p.name)
		pr := &prober.Prober{Roots: ca.Pool, Enter: func(fn func() error) error { return netns.Do(topo.Client, fn) },
			Resolver: netip.AddrPortFrom(p.resolver, dnsPort)}
		sr, err := runScenario(ctx, cfg, topo, pr, p)
		if err != nil {
			return res, fmt.Errorf("run scenario %s: %w", p.name, err)
		}
		log.Info("scenario done", "scenario", p.name, "attempts", len(sr.Truth.Attempts), "mismatches", len(sr.Mismatches))
		res.Scenarios = append(res.Scenarios, sr)
	}
	return res, nil
}

func buildPlans(seed int64, want []string) ([]*plan, error) {
	for _, w := range want {
		if !slices.Contains(Scenarios(), w) {
			return nil, fmt.Errorf("build scenarios: unknown scenario %q (have %s)", w, strings.Join(Scenarios(), ", "))
		}
	}
	var plans []*plan
	// Every scenario gets its own generator, address block, client port
	// range and HTB class range, so one scenario's plan does not depend on
	// which others run.
	for i, d := range scenarioDefs {
		port := uint16(20000 + 500*i)
		class := 1 + 10*i
		b := &builder{
			rng:       rand.New(rand.NewPCG(uint64(seed), uint64(i))),
			index:     i,
			hostSeen:  map[uint16]bool{},
			nameSeen:  map[string]bool{},
			nextPort:  &port,
			nextClass: &class,
		}
		p := d.build(b)
		p.resolver = resolverAddr(i)
		if len(want) == 0 || slices.Contains(want, d.name) {
			plans = append(plans, p)
		}
	}
	return plans, nil
}

func runScenario(ctx context.Context, cfg Config, topo *netns.Topology, pr *prober.Prober, p *plan) (sr ScenarioResult, err error) {
	dir := filepath.Join(cfg.OutDir, fmt.Sprintf("%s-seed%d", p.name, cfg.Seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sr, fmt.Errorf("create output dir: %w", err)
	}
	truth := Truth{Scenario: p.name, Seed: cfg.Seed, Description: p.desc, Findings: p.findings,
		ClientAddrs: []string{netns.ClientAddr4.String(), netns.ClientAddr6.String()},
		Resolver:    p.resolver.String(), Zone: map[string][]string{}}
	for n, addrs := range p.zone() {
		for _, a := range addrs {
			truth.Zone[n] = append(truth.Zone[n], a.String())
		}
	}
	if truth.Findings == nil {
		truth.Findings = []ExpectedFinding{}
	}
	for _, r := range p.rules {
		truth.Rules = append(truth.Rules, strings.Join(r, " "))
		if _, err := netns.Exec(ctx, topo.Router, r[0], r[1:]...); err != nil {
			return sr, fmt.Errorf("install censor: %w", err)
		}
	}

	filter := make([]string, 0, len(p.addrs)+3)
	for _, a := range append([]netip.Addr{p.resolver}, p.addrs...) {
		filter = append(filter, "host "+a.String())
	}
	// ICMP errors come from the router's address; keep them, but not the
	// neighbour discovery chatter (ICMPv6 type 1 is destination
	// unreachable).
	filter = append(filter, "icmp", "(icmp6 and ip6[40] == 1)")
	captures := []*capture{}
	defer func() {
		for _, c := range captures {
			err = errors.Join(err, c.stop())
		}
	}()
	c, err := startCapture(ctx, topo.Client, netns.ClientIf, filepath.Join(dir, "capture.pcap"), strings.Join(filter, " or "))
	if err != nil {
		return sr, err
	}
	captures = append(captures, c)
	if cfg.RouterCapture {
		c, err := startCapture(ctx, topo.Router, netns.RouterServerIf, filepath.Join(dir, "router.pcap"), strings.Join(filter, " or "))
		if err != nil {
			return sr, err
		}
		captures = append(captures, c)
	}

	var inj *injector.Injector
	if p.inject != nil {
		ic := *p.inject
		ic.Seed, ic.RouterNS = cfg.Seed, topo.Router
		ic.ClientIf, ic.ServerIf = netns.RouterClientIf, netns.RouterServerIf
		ic.ClientMAC, ic.ServerMAC = netns.ClientMAC, netns.ServerMAC
		ic.RouterClientMAC, ic.RouterServerMAC = netns.RouterClientMAC, netns.RouterServerMAC
		if err := netns.Do(topo.Router, func() error {
			var err error
			inj, err = injector.Start(ic)
			return err
		}); err != nil {
			return sr, err
		}
		defer func() {
			if inj != nil {
				_, cerr := inj.Close()
				err = errors.Join(err, cerr)
			}
		}()
	}

	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))
	var phaseEnd time.Time
	for i, phase := range p.phases {
		if i < len(p.waits) && p.waits[i] > 0 {
			if err := sleepUntil(ctx, phaseEnd.Add(p.waits[i])); err != nil {
				return sr, err
			}
		}
		order := slices.Clone(phase)
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		truth.Attempts = append(truth.Attempts, runPhase(ctx, pr, order)...)
		phaseEnd = time.Now()
	}
	if err := ctx.Err(); err != nil {
		return sr, err
	}
	if inj != nil {
		events, cerr := inj.Close()
		inj = nil
		if cerr != nil {
			return sr, cerr
		}
		truth.Injector = events
	}
	// Let the last FINs and resets reach the capture.
	if err := sleepUntil(ctx, time.Now().Add(300*time.Millisecond)); err != nil {
		return sr, err
	}
	for i := range truth.Attempts {
		truth.Attempts[i].ID = i
	}
	sr = ScenarioResult{Name: p.name, Dir: dir, Truth: truth, Mismatches: Mismatches(truth)}
	if err := writeTruth(filepath.Join(dir, "truth.json"), truth); err != nil {
		return sr, err
	}
	return sr, nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// stagger spaces the starts of one phase's attempts, so they interleave
// without all racing for the same instant.
const stagger = 15 * time.Millisecond

func runPhase(ctx context.Context, pr *prober.Prober, steps []step) []AttemptTruth {
	out := make([][]AttemptTruth, len(steps))
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.alt == nil {
				out[i] = []AttemptTruth{record(s.req, s.label, s.benign, s.expect, s.rate, pr.Do(ctx, s.req))}
				return
			}
			w, l, altWon := pr.HappyEyeballs(ctx, s.req, *s.alt)
			wreq, lreq := s.req, *s.alt
			if altWon {
				wreq, lreq = lreq, wreq
			}
			out[i] = []AttemptTruth{
				record(wreq, LabelBenign, BenignControl, prober.OK, 0, w),
				record(lreq, LabelBenign, BenignHappyEyeballs, prober.Abandoned, 0, l),
			}
		}()
		if sleepUntil(ctx, time.Now().Add(stagger)) != nil {
			break
		}
	}
	wg.Wait()
	var all []AttemptTruth
	for _, o := range out {
		all = append(all, o...)
	}
	return all
}

func record(req prober.Request, label, benign, expect string, rate float64, a prober.Attempt) AttemptTruth {
	transport := "tcp"
	if req.Proto == prober.QUIC {
		transport = "udp"
	}
	return AttemptTruth{
		Proto: req.Proto, Transport: transport,
		ClientIP: req.Local.Addr().String(), ClientPort: req.Local.Port(),
		ServerIP: req.Remote.Addr().String(), ServerPort: req.Remote.Port(),
		Name: req.Name, TLS12: req.TLS12,
		Label: label, Benign: benign, Expect: expect, ExpectRateBps: rate,
		StartNs: a.Start.UnixNano(), DurationNs: a.Duration.Nanoseconds(),
		Outcome: a.Outcome, Error: a.Error, Bytes: a.Bytes, RateBps: a.RateBps, ServerClose: a.ServerClose,
		Resolved: addrStrings(a.Resolved),
	}
}

func addrStrings(addrs []netip.Addr) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

// RateTolerance is how far a throttled transfer's client-measured rate may
// stray from the configured rate (HTB counts Ethernet, IP, TCP and TLS
// overhead that the client's goodput does not see).
const RateTolerance = 0.10

// Mismatches lists the attempts of t whose observed outcome or rate is not
// what the scenario should cause.
func Mismatches(t Truth) []string {
	var out []string
	for _, a := range t.Attempts {
		tuple := fmt.Sprintf("%s %s:%d -> %s:%d %s", a.Proto, a.ClientIP, a.ClientPort, a.ServerIP, a.ServerPort, a.Name)
		if a.Outcome != a.Expect {
			out = append(out, fmt.Sprintf("%s: %s: outcome %s, want %s (%s)", t.Scenario, tuple, a.Outcome, a.Expect, a.Error))
			continue
		}
		if a.ExpectRateBps > 0 && math.Abs(a.RateBps-a.ExpectRateBps) > RateTolerance*a.ExpectRateBps {
			out = append(out, fmt.Sprintf("%s: %s: rate %.0f bit/s, want %.0f +-%.0f%%", t.Scenario, tuple, a.RateBps, a.ExpectRateBps, RateTolerance*100))
		}
	}
	return out
}

func writeTruth(path string, t Truth) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("encode truth: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write truth: %w", err)
	}
	return nil
}

// ReadTruth loads a truth.json written by Run.
func ReadTruth(path string) (Truth, error) {
	var t Truth
	b, err := os.ReadFile(path)
	if err != nil {
		return t, fmt.Errorf("read truth: %w", err)
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("decode truth %s: %w", path, err)
	}
	return t, nil
}

// capture is one tcpdump process.
type capture struct {
	cmd  *exec.Cmd
	done chan error
	once sync.Once
	err  error
}

func startCapture(ctx context.Context, ns, ifName, path, filter string) (*capture, error) {
	// -Z root: tcpdump otherwise drops to its own user, which may not
	// write into the output directory.
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", ifName, "-U", "--immediate-mode", "-s", "0", "-n", "-Z", "root", "-w", path, filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("start capture: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start capture: %w", err)
	}
	c := &capture{cmd: cmd, done: make(chan error, 1)}
	ready := make(chan struct{})
	var tail strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "listening on") {
				close(ready)
				signalled = true
			} else if tail.Len() < 4096 {
				tail.WriteString(sc.Text() + "\n")
			}
		}
		c.done <- cmd.Wait()
	}()
	select {
	case <-ready:
		return c, nil
	case err := <-c.done:
		return nil, fmt.Errorf("start capture on %s: tcpdump exited: %v: %s", ifName, err, tail.String())
	case <-ctx.Done():
		_ = c.stop()
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		_ = c.stop()
		return nil, fmt.Errorf("start capture on %s: tcpdump not ready after 10s", ifName)
	}
}

// stop sends SIGINT, so tcpdump flushes the file, and waits for it.
func (c *capture) stop() error {
	c.once.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-c.done:
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				c.err = fmt.Errorf("stop capture: %w", err)
			}
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
			c.err = errors.New("stop capture: tcpdump ignored SIGINT")
		}
	})
	return c.err
}
