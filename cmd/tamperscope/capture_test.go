package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/internal/testenv"
	"github.com/tamperscope/tamperscope/lab/netns"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
)

const (
	ckHost4, ckSrv4 = "198.18.9.1", "198.18.9.2"
	ckHost6, ckSrv6 = "fd00:7473:9::1", "fd00:7473:9::2"
)

// captureLab is a namespace holding the servers, joined by a veth pair to
// the root namespace, where the capture runs: the private broker listens
// on the root namespace's loopback, which a capture inside another
// namespace could not reach.
type captureLab struct{ ns, hostIf string }

func newCaptureLab(t *testing.T) *captureLab {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Need(t, "live capture needs root")
	}
	ctx := context.Background()
	_ = netns.CleanupStale(ctx)
	l := &captureLab{ns: fmt.Sprintf("%s%d-ck", netns.Prefix, os.Getpid()), hostIf: fmt.Sprintf("tsk%d", os.Getpid())}
	t.Cleanup(func() {
		_, _ = netns.Run(context.Background(), "ip", "link", "del", l.hostIf)
		_ = netns.Delete(context.Background(), l.ns)
	})
	for _, s := range [][]string{
		{"ip", "netns", "add", l.ns},
		{"ip", "link", "add", l.hostIf, "type", "veth", "peer", "name", "s0", "netns", l.ns},
		{"ip", "addr", "add", ckHost4 + "/24", "dev", l.hostIf},
		{"ip", "addr", "add", ckHost6 + "/64", "dev", l.hostIf, "nodad"},
		{"ip", "link", "set", l.hostIf, "up"},
	} {
		if _, err := netns.Run(ctx, s[0], s[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", ckSrv4 + "/24", "dev", "s0"},
		{"ip", "addr", "add", ckSrv6 + "/64", "dev", "s0", "nodad"},
		{"ip", "link", "set", "s0", "up"},
	} {
		if _, err := netns.Exec(ctx, l.ns, s[0], s[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	// Neighbours resolved before the capture starts, so the traffic is
	// the connections alone.
	for _, a := range []string{ckSrv4, ckSrv6} {
		if _, err := netns.Run(ctx, "ping", "-c1", "-W2", a); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// conn is one connection the test made, as the client saw it.
type conn struct {
	client, server netip.AddrPort
	sni            string
}

// tlsTraffic serves TLS inside the lab's namespace, on both address
// families, and makes one connection per SNI to each: a handshake, a
// request, a reply and an orderly close.
func tlsTraffic(t *testing.T, l *captureLab, snis []string) []conn {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{testenv.ServerCert(t, "lab")}}
	var lns []net.Listener
	err := netns.Do(l.ns, func() error {
		for _, a := range []string{ckSrv4, ckSrv6} {
			ln, err := net.Listen("tcp", net.JoinHostPort(a, "443"))
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, len(lns)*len(snis))
	for _, ln := range lns {
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { served <- echoOnce(tls.Server(c, cfg)) }()
			}
		}()
	}
	var out []conn
	for _, a := range []string{ckSrv4, ckSrv6} {
		for _, sni := range snis {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(a, "443"),
				&tls.Config{ServerName: sni, InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, conn{
				client: c.LocalAddr().(*net.TCPAddr).AddrPort(),
				server: c.RemoteAddr().(*net.TCPAddr).AddrPort(),
				sni:    sni,
			})
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, "hello\n"); err != nil {
				t.Fatal(err)
			}
			if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hello\n" {
				t.Fatalf("reply %q: %v", line, err)
			}
			// close_notify first and the socket only once the server has
			// closed: neither side has data in flight when its peer closes,
			// so the connection ends in FINs, not a reset.
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
				t.Fatalf("after close_notify: %d bytes, %v", n, err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range out {
		select {
		case err := <-served:
			if err != nil {
				t.Fatalf("server: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server never finished a connection")
		}
	}
	return out
}

// echoOnce echoes one line and closes once the client has sent
// close_notify.
func echoOnce(c *tls.Conn) error {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if _, err := io.WriteString(c, line); err != nil {
		return fmt.Errorf("write reply: %w", err)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return fmt.Errorf("wait for the client's close_notify: %v", err)
	}
	return nil
}

// lineWriter closes ready at the first write containing want; the
// capture's log lines arrive whole.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	ready chan struct{}
}

// String returns what was written so far.
func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if w.ready != nil && bytes.Contains(b, []byte(w.want)) {
		close(w.ready)
		w.ready = nil
	}
	return len(b), nil
}

var publishedRe = regexp.MustCompile(`(\d+) rows published to \S+ \((\d+) dropped, (\d+) failed\)`)

// TestCaptureKafkaLive captures TLS connections on a live interface with
// `capture --kafka`, from each source, then analyzes the topic with
// `analyze --kafka`: every connection comes out as a flow with its
// handshake and its SNI, and the capture accounts for every row as
// acknowledged.
func TestCaptureKafkaLive(t *testing.T) {
	l := newCaptureLab(t)
	b := startPrivateBroker(t)
	for _, source := range []string{"ebpf", "afpacket"} {
		t.Run(source, func(t *testing.T) {
			topic := uniqueTopic("capture")
			stop, log := startCapture(t, "--iface", l.hostIf, "--source", source, "--kafka", b.addr, "--topic", topic, "--no-pseudonymize",
				"--report", "1h", "--metrics", "127.0.0.1:0")
			conns := tlsTraffic(t, l, []string{"censored.example", "allowed.example"})
			checkMetric(t, log.String(), "kafka_acked_rows_total", "capture")
			summary := strings.TrimSpace(stop())
			t.Logf("capture: %s", summary)
			m := publishedRe.FindStringSubmatch(summary)
			if m == nil {
				t.Fatalf("capture summary %q does not report published rows", summary)
			}
			if rows, _ := strconv.Atoi(m[1]); rows == 0 || m[2] != "0" || m[3] != "0" {
				t.Errorf("capture published %s rows, %s dropped, %s failed: want rows, none dropped or failed", m[1], m[2], m[3])
			}
			if !strings.HasPrefix(summary, source+":") || !strings.Contains(summary, " 0 drops") {
				t.Errorf("want the %s source and no drops: %s", source, summary)
			}

			out := t.TempDir()
			runBin(t, "analyze", "--kafka", b.addr, "--topic", topic, "--group", uniqueTopic("g"), "--out", out,
				"--idle-exit", "3s", "--findings-topic", "-", "--quiet")
			got := readDataset(t, out)
			noDuplicates(t, got)
			checkConns(t, got.flows, conns)
		})
	}
}

// startCapture starts `tamperscope capture` with args and waits until it
// captures; stop stops the capture with SIGINT, as an operator does, and
// returns its stdout once it has exited; log is its log so far.
func startCapture(t *testing.T, args ...string) (stop func() string, log *lineWriter) {
	t.Helper()
	capLog := &lineWriter{want: "capture started", ready: make(chan struct{})}
	ready := capLog.ready
	var capOut bytes.Buffer
	capCmd := exec.Command(filepath.Join(binDir, "tamperscope"), append([]string{"capture"}, args...)...)
	capCmd.Stdout, capCmd.Stderr = &capOut, capLog
	if err := capCmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- capCmd.Wait() }()
	t.Cleanup(func() {
		if capCmd.ProcessState == nil {
			_ = capCmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("capture stdout:\n%s\ncapture log:\n%s", capOut.String(), capLog.String())
		}
	})
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("capture exited before it started: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("capture did not start within 30s")
	}
	return func() string {
		t.Helper()
		if err := capCmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("capture: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("capture did not stop within 30s of SIGINT")
		}
		return capOut.String()
	}, capLog
}

// checkConns checks that every connection made is one TCP flow of flows,
// with its handshake, its close and its SNI.
func checkConns(t *testing.T, flows []schemas.FlowRecord, conns []conn) {
	t.Helper()
	byTuple := map[[2]netip.AddrPort]schemas.FlowRecord{}
	for _, f := range flows {
		if f.Proto != "tcp" {
			continue
		}
		k := [2]netip.AddrPort{addrPort(t, f.ClientIP, f.ClientPort), addrPort(t, f.ServerIP, f.ServerPort)}
		byTuple[k] = f
	}
	if len(byTuple) != len(conns) {
		t.Errorf("%d TCP flows, want the %d connections made", len(byTuple), len(conns))
	}
	for _, c := range conns {
		f, ok := byTuple[[2]netip.AddrPort{c.client, c.server}]
		if !ok {
			t.Errorf("no flow for %v > %v (SNI %s)", c.client, c.server, c.sni)
			continue
		}
		if !strings.HasPrefix(f.History, "ShA") || f.ConnState != "SF" {
			t.Errorf("%v > %v: history %q, state %s: want a complete handshake and close (ShA..., SF)", c.client, c.server, f.History, f.ConnState)
		}
		if f.AppProto != "tls" || f.SNI != c.sni {
			t.Errorf("%v > %v: app %q SNI %q, want tls with SNI %q", c.client, c.server, f.AppProto, f.SNI, c.sni)
		}
	}
}

func addrPort(t *testing.T, ip string, port uint16) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("flow address %q: %v", ip, err)
	}
	return netip.AddrPortFrom(a.Unmap(), port)
}

// TestCaptureLive captures TLS connections on a live interface with the
// analyzer in the same process, from each source: every connection comes
// out as a flow with its handshake, its close and its SNI, in the JSON
// lines and, the same, in the --out datasets; the frames AF_PACKET wrote
// to --pcap replay to those very flows and packet rows; and the --metrics
// endpoint counts the packets while the capture runs.
func TestCaptureLive(t *testing.T) {
	l := newCaptureLab(t)
	for _, source := range []string{"afpacket", "ebpf"} {
		t.Run(source, func(t *testing.T) {
			dir := t.TempDir()
			out, pcap := filepath.Join(dir, "out"), filepath.Join(dir, "capture.pcap")
			args := []string{"--iface", l.hostIf, "--source", source, "--format", "json", "--out", out, "--packets",
				"--metrics", "127.0.0.1:0", "--no-pseudonymize", "--report", "1h"}
			if source == "afpacket" {
				args = append(args, "--pcap", pcap)
			}
			stop, log := startCapture(t, args...)
			conns := tlsTraffic(t, l, []string{"censored.example", "allowed.example"})
			checkPacketsMetric(t, log.String())
			flows := jsonFlows(t, stop())
			checkConns(t, flows, conns)
			if d := cmp.Diff(flows, readDataset(t, out).flows); d != "" {
				t.Errorf("--out flows differ from the JSON lines (-json +dataset):\n%s", d)
			}
			if source == "afpacket" {
				again := filepath.Join(dir, "again")
				replayed := jsonFlows(t, runBin(t, "replay", "--format", "json", "--out", again, "--packets", pcap))
				if d := cmp.Diff(flows, replayed); d != "" {
					t.Errorf("the --pcap file replays to other flows (-live +replay):\n%s", d)
				}
				if live, file := packetRows(t, out), packetRows(t, again); live == 0 || live != file {
					t.Errorf("%d packet rows live, %d from the --pcap file", live, file)
				}
			}
		})
	}
}

// checkPacketsMetric: the capture's metrics count the packets it has seen.
func checkPacketsMetric(t *testing.T, log string) {
	t.Helper()
	checkMetric(t, log, "packets_total", "capture")
}

// checkMetric finds the metrics endpoint in a log and waits, a few seconds
// at most, for the sample tamperscope_<name> of role to be above 0 (the
// counters are published once a second).
func checkMetric(t *testing.T, log, name, role string) {
	t.Helper()
	m := regexp.MustCompile(`url=(http://\S+/metrics)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no metrics URL in the log:\n%s", log)
	}
	re := regexp.MustCompile(`(?m)^tamperscope_` + name + `\{[^}]*role="` + role + `"[^}]*\} (\d+)$`)
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if n := re.FindStringSubmatch(body); n != nil && n[1] != "0" {
			return
		}
	}
	t.Errorf("%s never counted tamperscope_%s:\n%s", m[1], name, body)
}

// packetRows counts the rows of the packets/ dataset under dir.
func packetRows(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	if err := sink.ReadRecords(dir, "packets", nil, func(*schemas.PacketMeta) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// jsonFlows returns the flow records of JSON lines, sorted by flow id.
func jsonFlows(t *testing.T, out string) []schemas.FlowRecord {
	t.Helper()
	var flows []schemas.FlowRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Record string `json:"record"`
			schemas.FlowRecord
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("stdout line %q: %v", sc.Text(), err)
		}
		if r.Record == "flow" {
			flows = append(flows, r.FlowRecord)
		}
	}
	slices.SortFunc(flows, func(a, b schemas.FlowRecord) int { return strings.Compare(a.FlowID, b.FlowID) })
	return flows
}

// TestCaptureRefusals: wrong flags are refused with a usage error before
// any interface is touched.
func TestCaptureRefusals(t *testing.T) {
	checkExits(t, []exitCase{
		{"no interface", []string{"capture"}, exitUsage, "--iface"},
		{"report interval 0", []string{"capture", "--iface", "lo", "--report", "0"}, exitUsage, "--report"},
		{"negative report interval", []string{"capture", "--iface", "lo", "--report", "-1s"}, exitUsage, "--report"},
		{"unknown source", []string{"capture", "--iface", "lo", "--source", "pcap"}, exitUsage, "--source"},
		{"pcap from eBPF", []string{"capture", "--iface", "lo", "--source", "ebpf", "--pcap", "x.pcap"}, exitUsage, "--pcap"},
		{"packets without out", []string{"capture", "--iface", "lo", "--packets"}, exitUsage, "--packets"},
	})
}
