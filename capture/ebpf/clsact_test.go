package ebpf

import (
	"context"
	"testing"
	"time"

	"github.com/tamperscope/tamperscope/bpf"
	"github.com/tamperscope/tamperscope/lab/netns"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport/inproc"
)

// TestClsactFallback attaches through netlink as on kernels without TCX,
// records ICMP both ways, and leaves no filter behind.
func TestClsactFallback(t *testing.T) {
	needLab(t)
	l := newLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pipe := inproc.New(16)
	coll, done := collect(pipe)
	errc := make(chan error, 1)
	attached := make(chan bpf.AttachMode, 1)
	go func() {
		err := netns.Do(l.cli, func() error {
			_, err := Run(ctx, cliIf, pipe, Config{Attach: bpf.AttachClsact, FlushInterval: 20 * time.Millisecond,
				Attached: func(m bpf.AttachMode) error { attached <- m; return nil }})
			return err
		})
		pipe.Close()
		errc <- err
	}()
	select {
	case m := <-attached:
		if m != bpf.AttachClsact {
			t.Fatalf("attached with %v, want clsact", m)
		}
	case err := <-errc:
		t.Fatal(err)
	}
	if _, err := netns.Exec(ctx, l.cli, "ping", "-c", "2", "-i", "0.05", srv4); err != nil {
		t.Fatal(err)
	}
	if err := netns.Do(l.cli, func() error { return sendUDP(srv4, markerPort, []byte("m")) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-coll.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("marker never recorded")
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	<-done
	var req, rep int
	for _, p := range coll.pkts {
		if p.Proto == schemas.ProtoICMP && p.ICMPType == 8 {
			req++
		}
		if p.Proto == schemas.ProtoICMP && p.ICMPType == 0 {
			rep++
		}
	}
	if req != 2 || rep != 2 {
		t.Errorf("recorded %d echo requests and %d replies, want 2 and 2", req, rep)
	}
	out, err := netns.Exec(context.Background(), l.cli, "tc", "filter", "show", "dev", cliIf, "ingress")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 {
		t.Errorf("filters left on %s after the run:\n%s", cliIf, out)
	}
}
