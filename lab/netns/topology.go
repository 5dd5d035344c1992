package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
)

// Interface names inside the namespaces and their fixed MAC addresses; fixed
// MACs let the injector build Ethernet frames without ARP.
const (
	ClientIf       = "c0"
	RouterClientIf = "rc"
	RouterServerIf = "rs"
	ServerIf       = "s0"
)

var (
	ClientMAC       = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	RouterClientMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
	RouterServerMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x03}
	ServerMAC       = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x04}
)

// Addresses of the links. Server addresses handed to Up must lie in
// ServerNet4 / ServerNet6 so the router reaches them on-link.
var (
	ClientAddr4       = netip.MustParseAddr("198.18.0.1")
	RouterClientAddr4 = netip.MustParseAddr("198.18.0.254")
	RouterServerAddr4 = netip.MustParseAddr("198.19.255.254")
	ServerNet4        = netip.MustParsePrefix("198.19.0.0/16")
	ClientAddr6       = netip.MustParseAddr("fd00:7473:1::1")
	RouterClientAddr6 = netip.MustParseAddr("fd00:7473:1::fe")
	RouterServerAddr6 = netip.MustParseAddr("fd00:7473:2::fe")
	ServerNet6        = netip.MustParsePrefix("fd00:7473:2::/64")
)

var seq atomic.Uint32

// Topology is one client <-> router <-> server lab. Its zero value is not
// usable; build it with Up and always call Down.
type Topology struct {
	Client, Router, Server string // namespace names
	ServerAddrs            []netip.Addr
}

// Up creates the three namespaces, the veth pairs and the addresses, enables
// forwarding on the router, switches offloads off and warms neighbour
// discovery. On error it removes whatever it created.
func Up(ctx context.Context, serverAddrs []netip.Addr) (t *Topology, err error) {
	base := Prefix + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(int(seq.Add(1)))
	t = &Topology{Client: base + "-c", Router: base + "-r", Server: base + "-s", ServerAddrs: serverAddrs}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Down(context.WithoutCancel(ctx)))
			t = nil
		}
	}()
	for _, a := range serverAddrs {
		if !ServerNet4.Contains(a) && !ServerNet6.Contains(a) {
			return t, fmt.Errorf("set up topology: server address %s outside %s and %s", a, ServerNet4, ServerNet6)
		}
	}
	for _, ns := range []string{t.Client, t.Router, t.Server} {
		if _, err := Run(ctx, "ip", "netns", "add", ns); err != nil {
			return t, fmt.Errorf("set up topology: %w", err)
		}
		// Link-local addresses would otherwise stay tentative for a while.
		if _, err := Exec(ctx, ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"); err != nil {
			return t, fmt.Errorf("set up topology: %w", err)
		}
	}
	steps := [][]string{
		{"-n", t.Client, "link", "add", ClientIf, "address", ClientMAC.String(), "type", "veth", "peer", "name", RouterClientIf, "address", RouterClientMAC.String(), "netns", t.Router},
		{"-n", t.Server, "link", "add", ServerIf, "address", ServerMAC.String(), "type", "veth", "peer", "name", RouterServerIf, "address", RouterServerMAC.String(), "netns", t.Router},
		{"-n", t.Client, "addr", "add", ClientAddr4.String() + "/24", "dev", ClientIf},
		{"-n", t.Client, "addr", "add", ClientAddr6.String() + "/64", "dev", ClientIf, "nodad"},
		{"-n", t.Router, "addr", "add", RouterClientAddr4.String() + "/24", "dev", RouterClientIf},
		{"-n", t.Router, "addr", "add", RouterClientAddr6.String() + "/64", "dev", RouterClientIf, "nodad"},
		{"-n", t.Router, "addr", "add", RouterServerAddr4.String() + "/16", "dev", RouterServerIf},
		{"-n", t.Router, "addr", "add", RouterServerAddr6.String() + "/64", "dev", RouterServerIf, "nodad"},
	}
	for _, a := range serverAddrs {
		bits := 16
		if a.Is6() {
			bits = 64
		}
		steps = append(steps, []string{"-n", t.Server, "addr", "add", netip.PrefixFrom(a, bits).String(), "dev", ServerIf, "nodad"})
	}
	for _, l := range []struct{ ns, dev string }{{t.Client, ClientIf}, {t.Client, "lo"}, {t.Router, RouterClientIf}, {t.Router, RouterServerIf}, {t.Router, "lo"}, {t.Server, ServerIf}, {t.Server, "lo"}} {
		steps = append(steps, []string{"-n", l.ns, "link", "set", l.dev, "up"})
	}
	steps = append(steps,
		[]string{"-n", t.Client, "route", "add", "default", "via", RouterClientAddr4.String()},
		[]string{"-n", t.Client, "-6", "route", "add", "default", "via", RouterClientAddr6.String()},
		[]string{"-n", t.Server, "route", "add", "default", "via", RouterServerAddr4.String()},
		[]string{"-n", t.Server, "-6", "route", "add", "default", "via", RouterServerAddr6.String()},
	)
	for _, s := range steps {
		if _, err := Run(ctx, "ip", s...); err != nil {
			return t, fmt.Errorf("set up topology: %w", err)
		}
	}
	for _, s := range []struct{ ns, key string }{
		{t.Router, "net.ipv4.ip_forward=1"},
		{t.Router, "net.ipv6.conf.all.forwarding=1"},
		// A censor answers every blocked packet; the kernel's default
		// ICMP rate limit would turn most rejections into timeouts.
		{t.Router, "net.ipv4.icmp_ratelimit=0"},
		{t.Router, "net.ipv6.icmp.ratelimit=0"},
	} {
		if _, err := Exec(ctx, s.ns, "sysctl", "-q", "-w", s.key); err != nil {
			return t, fmt.Errorf("set up topology: %w", err)
		}
	}
	for _, l := range []struct{ ns, dev string }{{t.Client, ClientIf}, {t.Router, RouterClientIf}, {t.Router, RouterServerIf}, {t.Server, ServerIf}} {
		if _, err := Exec(ctx, l.ns, "ethtool", "-K", l.dev, "tso", "off", "gso", "off", "gro", "off"); err != nil {
			return t, fmt.Errorf("set up topology: %w", err)
		}
	}
	// The first IPv6 connection otherwise loses a second or two to
	// neighbour discovery, which would read as tampering in a short
	// scenario. Warm every address at once.
	errs := make([]error, len(serverAddrs))
	var wg sync.WaitGroup
	for i, a := range serverAddrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"-c1", "-W5", a.String()}
			if a.Is6() {
				args = append([]string{"-6"}, args...)
			}
			if _, err := Exec(ctx, t.Client, "ping", args...); err != nil {
				errs[i] = fmt.Errorf("warm %s: %w", a, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return t, fmt.Errorf("set up topology: %w", err)
	}
	return t, nil
}

// Down removes the namespaces, killing every process left inside them. It
// is safe to call on a partly built topology and more than once.
func (t *Topology) Down(ctx context.Context) error {
	var errs []error
	for _, ns := range []string{t.Client, t.Router, t.Server} {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		errs = append(errs, Delete(ctx, ns))
	}
	return errors.Join(errs...)
}
