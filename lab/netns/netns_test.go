package netns_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/tamperscope/tamperscope/lab/internal/labtest"
	"github.com/tamperscope/tamperscope/lab/netns"
)

func TestUpDown(t *testing.T) {
	labtest.RequireRoot(t)
	ctx := context.Background()
	addrs := []netip.Addr{netip.MustParseAddr("198.19.1.1"), netip.MustParseAddr("fd00:7473:2::1:1")}
	topo, err := netns.Up(ctx, addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Down(ctx)

	// Inside the client namespace the only non-loopback interface is the
	// lab's, with offloads off.
	var ifNames []string
	if err := netns.Do(topo.Client, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			ifNames = append(ifNames, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(ifNames) != 2 {
		t.Errorf("client interfaces %v, want lo and %s", ifNames, netns.ClientIf)
	}
	out, err := netns.Exec(ctx, topo.Router, "ethtool", "-k", netns.RouterClientIf)
	if err != nil {
		t.Fatal(err)
	}
	for _, feature := range []string{"tcp-segmentation-offload: off", "generic-segmentation-offload: off", "generic-receive-offload: off"} {
		if !strings.Contains(string(out), feature) {
			t.Errorf("router interface: want %q", feature)
		}
	}
	// Both families reach the server through the router.
	for _, a := range addrs {
		if _, err := netns.Exec(ctx, topo.Client, "ping", "-c1", "-W2", a.String()); err != nil {
			t.Errorf("ping %s: %v", a, err)
		}
	}
	// The calling thread left the namespace: the host's interfaces differ.
	if _, err := net.InterfaceByName(netns.ClientIf); err == nil {
		t.Error("client interface visible outside its namespace")
	}

	if err := topo.Down(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{topo.Client, topo.Router, topo.Server} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s survived Down", ns)
		}
	}
}

func TestUpRejectsForeignAddress(t *testing.T) {
	labtest.RequireRoot(t)
	if _, err := netns.Up(context.Background(), []netip.Addr{netip.MustParseAddr("192.0.2.1")}); err == nil {
		t.Fatal("want an error for an address outside the server networks")
	}
}
