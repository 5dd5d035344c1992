package ebpf

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/analyzer/decode"
	"github.com/tamperscope/tamperscope/bpf"
	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/capture/afpacket"
	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/internal/testenv"
	"github.com/tamperscope/tamperscope/lab/netns"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport/inproc"
)

// needLab skips a test that needs root, network namespaces and tcpdump,
// or fails it when TAMPERSCOPE_REQUIRE_ALL=1.
func needLab(t testing.TB) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "live capture needs root"
	} else if _, err := exec.LookPath("tcpdump"); err != nil {
		reason = "live capture test needs tcpdump (scripts/setup.sh test)"
	}
	testenv.Need(t, reason)
}

const (
	cliIf, srvIf = "a0", "b0"
	cli4, srv4   = "198.18.7.1", "198.18.7.2"
	cli6, srv6   = "fd00:7473:7::1", "fd00:7473:7::2"
	markerPort   = 9999
)

// lab is two namespaces joined by a veth pair, offloads off as on a
// vantage that wants wire-sized frames.
type lab struct{ cli, srv string }

func newLab(t testing.TB) *lab {
	t.Helper()
	ctx := context.Background()
	_ = netns.CleanupStale(ctx)
	base := fmt.Sprintf("%s%d-cap", netns.Prefix, os.Getpid())
	l := &lab{cli: base + "-c", srv: base + "-s"}
	t.Cleanup(func() {
		_ = netns.Delete(context.Background(), l.cli)
		_ = netns.Delete(context.Background(), l.srv)
	})
	steps := [][]string{
		{"ip", "netns", "add", l.cli},
		{"ip", "netns", "add", l.srv},
		{"ip", "link", "add", cliIf, "netns", l.cli, "type", "veth", "peer", "name", srvIf, "netns", l.srv},
	}
	for _, s := range steps {
		if _, err := netns.Run(ctx, s[0], s[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, side := range []struct{ ns, ifc, a4, a6 string }{{l.cli, cliIf, cli4, cli6}, {l.srv, srvIf, srv4, srv6}} {
		for _, s := range [][]string{
			{"ip", "link", "set", "lo", "up"},
			{"ip", "addr", "add", side.a4 + "/24", "dev", side.ifc},
			{"ip", "addr", "add", side.a6 + "/64", "dev", side.ifc, "nodad"},
			{"ethtool", "-K", side.ifc, "tso", "off", "gso", "off", "gro", "off"},
			{"ip", "link", "set", side.ifc, "up"},
		} {
			if _, err := netns.Exec(ctx, side.ns, s[0], s[1:]...); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := netns.Exec(ctx, l.cli, "ping", "-6", "-c1", "-W2", srv6); err != nil {
		t.Fatal(err)
	}
	return l
}

// collect copies every packet published to pipe and closes seen when the
// marker datagram arrives.
type collector struct {
	mu     sync.Mutex
	pkts   []schemas.PacketMeta
	seen   chan struct{}
	marked bool
}

func collect(pipe *inproc.Pipe) (*collector, <-chan struct{}) {
	c := &collector{seen: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			d, err := pipe.Next(context.Background())
			if err != nil {
				return
			}
			c.mu.Lock()
			for _, p := range d.Batch.Packets {
				p.Payload = bytes.Clone(p.Payload)
				c.pkts = append(c.pkts, p)
				if !c.marked && p.Proto == schemas.ProtoUDP && p.DstPort == markerPort {
					c.marked = true
					close(c.seen)
				}
			}
			c.mu.Unlock()
			pipe.Release(d)
		}
	}()
	return c, done
}

func TestLiveCapture(t *testing.T) {
	needLab(t)
	l := newLab(t)
	dir := t.TempDir()
	pcapPath := filepath.Join(dir, "tcpdump.pcap")

	// tcpdump, the reference.
	td := exec.Command("ip", "netns", "exec", l.cli, "tcpdump", "-i", cliIf, "-U", "--immediate-mode", "-s", "0", "-w", pcapPath)
	tdErr, _ := td.StderrPipe()
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = td.Process.Kill(); _ = td.Wait() })
	waitLine(t, tdErr, "listening on")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// eBPF, attached inside the client namespace.
	ePipe := inproc.New(64)
	eColl, eDone := collect(ePipe)
	var eStats Stats
	eErr := make(chan error, 1)
	attached := make(chan struct{})
	go func() {
		err := netns.Do(l.cli, func() error {
			var err error
			eStats, err = Run(ctx, cliIf, ePipe, Config{FlushInterval: 20 * time.Millisecond, Attached: func(bpf.AttachMode) error { close(attached); return nil }})
			return err
		})
		ePipe.Close()
		eErr <- err
	}()
	select {
	case <-attached:
	case err := <-eErr:
		t.Fatalf("eBPF capture: %v", err)
	}

	// AF_PACKET through ingest.
	var src *afpacket.Source
	if err := netns.Do(l.cli, func() (err error) { src, err = afpacket.Open(cliIf, afpacket.Config{}); return err }); err != nil {
		t.Fatal(err)
	}
	aPipe := inproc.New(64)
	aColl, aDone := collect(aPipe)
	var aStats ingest.Stats
	aErr := make(chan error, 1)
	go func() {
		var err error
		// Stopped by src.Stop, not ctx, so the tail is published. Batches
		// of one: the marker must reach the collector while
		// the source still runs.
		aStats, err = ingest.Run(context.Background(), src, aPipe, ingest.Config{BatchSize: 1})
		aPipe.Close()
		aErr <- err
	}()

	traffic(t, l)

	// Every capture has seen everything once it has seen the marker,
	// sent last.
	if err := netns.Do(l.cli, func() error { return sendUDP(srv4, markerPort, []byte("marker")) }); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*collector{"ebpf": eColl, "afpacket": aColl} {
		select {
		case <-c.seen:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s capture never saw the marker", name)
		}
	}
	cancel()
	src.Stop()
	if err := <-eErr; err != nil {
		t.Fatalf("eBPF capture: %v", err)
	}
	if err := <-aErr; err != nil {
		t.Fatalf("AF_PACKET capture: %v", err)
	}
	<-eDone
	<-aDone
	src.Close()
	_ = td.Process.Signal(syscall.SIGINT)
	_ = td.Wait()

	t.Logf("eBPF: %d records, %d packets, %d split, kernel %+v", eStats.Records, eStats.Published, eStats.Split, eStats.Kernel)
	t.Logf("AF_PACKET: %d frames, %d drops", aStats.Source.Frames, aStats.Source.Drops)
	if eStats.Drops() != 0 || aStats.Source.Drops != 0 {
		t.Errorf("drops: eBPF %d, AF_PACKET %d", eStats.Drops(), aStats.Source.Drops)
	}
	if eStats.Split == 0 {
		t.Errorf("no GSO super-packet was split: the test does not exercise segmentation")
	}

	ref := readPcap(t, pcapPath)
	live := map[string][]schemas.PacketMeta{"ebpf": eColl.pkts, "afpacket": aColl.pkts}
	refFlows := flowsOf(t, ref)
	for name, pkts := range live {
		t.Run(name, func(t *testing.T) {
			want, got := perFlow(ref), perFlow(pkts)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("per-flow packets (flags, seq, ack, payload length) differ from tcpdump (-tcpdump +%s):\n%s", name, diff)
			}
			if diff := cmp.Diff(refFlows, flowsOf(t, pkts)); diff != "" {
				t.Errorf("flow records differ from a replay of tcpdump's capture (-replay +%s):\n%s", name, diff)
			}
		})
	}
	var snis []string
	for _, f := range refFlows {
		if f.SNI != "" {
			snis = append(snis, f.SNI)
		}
	}
	if !slices.Contains(snis, "censored.example") {
		t.Errorf("replayed flows name SNIs %v, want censored.example among them", snis)
	}
}

func waitLine(t *testing.T, r io.Reader, want string) {
	t.Helper()
	buf := make([]byte, 4096)
	var got []byte
	for !bytes.Contains(got, []byte(want)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("waiting for %q: %v (%s)", want, err, got)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
}

// traffic runs HTTP over TLS and plain HTTP with bulk responses over IPv4
// and IPv6, UDP request/response, and pings.
func traffic(t *testing.T, l *lab) {
	t.Helper()
	cert := testenv.ServerCert(t, "lab", "censored.example", "allowed.example")
	body := bytes.Repeat([]byte("x"), 200<<10)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	var lns []net.Listener
	err := netns.Do(l.srv, func() error {
		for _, a := range []string{srv4, srv6} {
			for _, port := range []string{"443", "80"} {
				ln, err := net.Listen("tcp", net.JoinHostPort(a, port))
				if err != nil {
					return err
				}
				lns = append(lns, ln)
				srv := &http.Server{Handler: h}
				if port == "443" {
					srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
					go func() { _ = srv.ServeTLS(ln, "", "") }()
				} else {
					go func() { _ = srv.Serve(ln) }()
				}
			}
			pc, err := net.ListenPacket("udp", net.JoinHostPort(a, "5353"))
			if err != nil {
				return err
			}
			go func() {
				b := make([]byte, 2048)
				for {
					n, from, err := pc.ReadFrom(b)
					if err != nil {
						return
					}
					_, _ = pc.WriteTo(b[:n], from)
				}
			}()
			t.Cleanup(func() { pc.Close() })
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
	})
	dial := func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = netns.Do(l.cli, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	for _, a := range []string{srv4, srv6} {
		for i, name := range []string{"censored.example", "allowed.example"} {
			tr := &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{ServerName: name, InsecureSkipVerify: true}, DisableKeepAlives: true}
			cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			url := "https://" + net.JoinHostPort(a, "443") + "/"
			if i == 1 {
				url = "http://" + net.JoinHostPort(a, "80") + "/"
			}
			resp, err := cl.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != int64(len(body)) {
				t.Fatalf("GET %s: %d bytes, want %d", url, n, len(body))
			}
		}
		err := netns.Do(l.cli, func() error {
			c, err := net.Dial("udp", net.JoinHostPort(a, "5353"))
			if err != nil {
				return err
			}
			defer c.Close()
			b := make([]byte, 2048)
			for i := range 3 {
				if _, err := c.Write(bytes.Repeat([]byte{byte(i)}, 100+i*400)); err != nil {
					return err
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := netns.Exec(context.Background(), l.cli, "ping", "-c", "3", "-i", "0.05", a); err != nil {
			t.Fatal(err)
		}
	}
}

func sendUDP(host string, port int, b []byte) error {
	c, err := net.Dial("udp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write(b)
	return err
}

func readPcap(t *testing.T, path string) []schemas.PacketMeta {
	t.Helper()
	r, err := pcapfile.Open(path, pcapfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dec := decode.New(decode.Options{})
	var out []schemas.PacketMeta
	var f capture.Frame
	for {
		if err := r.Next(&f); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return out
		}
		var p schemas.PacketMeta
		if err := dec.Decode(&f, &p); err != nil && !errors.Is(err, decode.ErrPartial) {
			continue
		}
		p.Payload = bytes.Clone(p.Payload)
		out = append(out, p)
	}
}

// noise says whether p is the marker or link-local chatter (neighbour
// discovery, MLD) whose timing the test does not control.
func noise(p *schemas.PacketMeta) bool {
	return (p.Proto == schemas.ProtoUDP && p.DstPort == markerPort) ||
		p.Dst.IsMulticast() || p.Src.IsLinkLocalUnicast() || p.Src.IsUnspecified() ||
		(p.Proto == schemas.ProtoICMPv6 && p.ICMPType >= 133 && p.ICMPType <= 137)
}

// pktSig is what must agree per packet between a live capture and tcpdump.
type pktSig struct {
	Flags              uint8
	Seq, Ack           uint32
	PayloadLen, IPLen  uint32
	TTL                uint8
	ICMPType, ICMPCode uint8
}

// perFlow groups packets by directed 5-tuple, sorted: the two captures
// timestamp at different hooks, so only order within one direction is
// comparable, and sorting by seq keeps even that out of the comparison.
func perFlow(pkts []schemas.PacketMeta) map[string][]pktSig {
	m := map[string][]pktSig{}
	for _, p := range pkts {
		if noise(&p) {
			continue
		}
		k := fmt.Sprintf("%d %s:%d > %s:%d", p.Proto, p.Src, p.SrcPort, p.Dst, p.DstPort)
		m[k] = append(m[k], pktSig{p.TCPFlags, p.Seq, p.Ack, p.PayloadLen, uint32(p.IPLen), p.TTL, p.ICMPType, p.ICMPCode})
	}
	for _, v := range m {
		slices.SortFunc(v, func(a, b pktSig) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	}
	return m
}

// flowSig is the part of a flow record that must not depend on the source.
// History leaves out Zeek's retransmission letters ('t', 'T'): two
// segments of one direction received at nearly the same moment can be
// handled on different CPUs, each running tcpdump's tap and then the TC
// hook for its own packet, so the two can see them in either order; a
// segment seen after a later one is a retransmission to Zeek. perFlow
// compares the packets themselves, every one.
type flowSig struct {
	Proto, Client, Server  string
	ClientPkts, ServerPkts uint64
	ConnState, History     string
	SNI, HTTPHost          string
}

type flowOut struct{ flows []flowSig }

func (o *flowOut) Flow(r *schemas.FlowRecord) error {
	o.flows = append(o.flows, flowSig{r.Proto, fmt.Sprintf("%s:%d", r.ClientIP, r.ClientPort), fmt.Sprintf("%s:%d", r.ServerIP, r.ServerPort),
		r.ClientPkts, r.ServerPkts, r.ConnState, strings.NewReplacer("t", "", "T", "").Replace(r.History), r.SNI, r.HTTPHost})
	return nil
}
func (o *flowOut) Finding(*schemas.Finding) error { return nil }

// flowsOf runs packets through the analyzer and returns its flow records
// sorted; noise is left out.
func flowsOf(t *testing.T, pkts []schemas.PacketMeta) []flowSig {
	t.Helper()
	out := &flowOut{}
	eng := analyzer.New(analyzer.Config{}, out)
	pkts = slices.DeleteFunc(slices.Clone(pkts), func(p schemas.PacketMeta) bool { return noise(&p) })
	if err := eng.Process(&schemas.PacketBatch{Packets: pkts}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	fs := out.flows
	slices.SortFunc(fs, func(a, b flowSig) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return fs
}
