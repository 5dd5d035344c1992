package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/analyzer/decode"
	"github.com/tamperscope/tamperscope/bpf"
	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/capture/afpacket"
	"github.com/tamperscope/tamperscope/capture/ebpf"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/metrics"
	"github.com/tamperscope/tamperscope/privacy"
	"github.com/tamperscope/tamperscope/transport"
)

const captureExamples = `  tamperscope capture --iface eth0 --out /var/lib/tamperscope
  tamperscope capture --iface eth0 --source afpacket --pcap seen.pcap
  tamperscope capture --iface eth0 --format json --ports 443,80 | jq 'select(.kind != null)'
  tamperscope capture --iface eth0 --kafka kafka1:9093 --kafka-tls --kafka-sasl scram-sha-512 --kafka-user vantage1 --kafka-password-file /etc/tamperscope/kafka.pw
`

type captureConfig struct {
	iface, out, pcap, source, vantage, format string
	packets, keepPayload                      bool
	filter                                    bpf.Filter
	snapBytes                                 int
	report                                    time.Duration
	pseudo                                    *privacy.Pseudonymizer // nil: addresses as captured
	metrics                                   string
	kafka                                     kafkaFlags
}

// defaultKeyFile holds the pseudonymization key of a vantage.
const defaultKeyFile = "/var/lib/tamperscope/pseudonymize.key"

func runCapture(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg captureConfig
	var ports, nets, exPorts, exNets string
	fs := newFlagSet("capture", "capture --iface IF [flags]", captureExamples, stderr)
	fs.StringVar(&cfg.iface, "iface", "", "capture on interface `IF` (required)")
	fs.StringVar(&cfg.out, "out", "", "write Parquet datasets (flows/, findings/) under `DIR`")
	fs.StringVar(&cfg.pcap, "pcap", "", "also write the captured frames to pcap `FILE` (AF_PACKET only: auto picks it)")
	fs.StringVar(&cfg.source, "source", "auto", "packet source: ebpf, afpacket, or auto (eBPF when it loads)")
	fs.StringVar(&cfg.vantage, "vantage", "", "vantage identifier recorded in every record")
	fs.StringVar(&cfg.format, "format", "table", "stdout output: table (findings at the end) or json (flow records and findings as JSON lines)")
	fs.BoolVar(&cfg.packets, "packets", false, "also write the packets/ dataset under --out")
	fs.StringVar(&ports, "ports", "", "record only TCP/UDP packets with one of these comma-separated ports")
	fs.StringVar(&nets, "nets", "", "record only packets from or to these comma-separated CIDRs")
	fs.StringVar(&exPorts, "exclude-ports", "22", "never record TCP/UDP packets with these ports (management traffic)")
	fs.StringVar(&exNets, "exclude-nets", "", "never record packets from or to these CIDRs (e.g. the Kafka brokers)")
	fs.IntVar(&cfg.snapBytes, "snap-bytes", 0, "payload snapshot per flow direction, eBPF source (default 2048; AF_PACKET follows ingest's policy)")
	fs.DurationVar(&cfg.report, "report", 10*time.Second, "log packet, drop and flow counts to stderr this often")
	keyFile := fs.String("pseudonymize-key", defaultKeyFile, "Crypto-PAn key for pseudonymizing local addresses, created (mode 0600) if missing; see docs/privacy.md")
	localNets := fs.String("local-net", "", "comma-separated CIDRs whose addresses are pseudonymized (default: this host's addresses, RFC 1918, CGNAT, link-local, ULA)")
	noPseudo := fs.Bool("no-pseudonymize", false, "record local addresses as captured")
	fs.StringVar(&cfg.metrics, "metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics (e.g. 127.0.0.1:9108)")
	fs.BoolVar(&cfg.keepPayload, "keep-payload", false, "keep payload snapshots in the packets/ dataset (by default only the fields parsed from them are stored)")
	cfg.kafka.register(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.filter.Ports, err = parsePorts(ports); err == nil {
		if cfg.filter.ExcludePorts, err = parsePorts(exPorts); err == nil {
			if cfg.filter.Nets, err = privacy.ParsePrefixes(nets); err == nil {
				cfg.filter.ExcludeNets, err = privacy.ParsePrefixes(exNets)
			}
		}
	}
	var local []netip.Prefix
	if err == nil && !*noPseudo {
		local, err = privacy.ParsePrefixes(*localNets)
	}
	switch {
	case err != nil:
		return usageError{err}
	case cfg.iface == "":
		return usageError{errors.New("--iface is required")}
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	case cfg.source != "auto" && cfg.source != "ebpf" && cfg.source != "afpacket":
		return usageError{fmt.Errorf("unknown --source %q: want ebpf, afpacket or auto", cfg.source)}
	case cfg.pcap != "" && cfg.source == "ebpf":
		return usageError{errors.New("--pcap needs the frames, which the eBPF source does not keep: use --source afpacket or auto")}
	case cfg.format != "table" && cfg.format != "json":
		return usageError{fmt.Errorf("unknown --format %q: want table or json", cfg.format)}
	case cfg.packets && cfg.out == "":
		return usageError{errors.New("--packets needs --out")}
	case cfg.report <= 0:
		return usageError{fmt.Errorf("--report %v: want a positive interval", cfg.report)}
	case cfg.kafka.enabled() && (cfg.out != "" || cfg.packets || cfg.format != "table"):
		return usageError{errors.New("--kafka publishes the packets for tamperscope analyze: --out, --packets and --format belong there")}
	}
	if cfg.pcap != "" {
		cfg.source = "afpacket"
	}
	if !*noPseudo {
		// Before anything is captured: nothing leaves this process with
		// a local address in it.
		key, err := privacy.LoadOrCreateKey(*keyFile)
		if err != nil {
			return fmt.Errorf("pseudonymization key (or --no-pseudonymize): %w", err)
		}
		if local, err = privacy.LocalPrefixes(local); err != nil {
			return err
		}
		cfg.pseudo = privacy.NewPseudonymizer(key, local)
	}
	return captureLive(ctx, cfg, stdout, stderr)
}

func parsePorts(s string) ([]uint16, error) {
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("parse port %q: %w", f, err)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

// captureLive runs the chosen source into the in-process analyzer until
// ctx ends; the source then drains and the analyzer flushes, so nothing
// read is lost on SIGINT/SIGTERM.
func captureLive(ctx context.Context, cfg captureConfig, stdout, stderr io.Writer) error {
	if cfg.kafka.enabled() {
		return captureToKafka(ctx, cfg, stdout)
	}
	out, err := newOutput(stdout, cfg.format, cfg.out, "capture")
	if err != nil {
		return err
	}
	// A capture may run for months: its closing table shows the latest
	// findings, the datasets and JSON lines have them all.
	out.keep = captureTableFindings
	eng := analyzer.New(analyzer.Config{}, out)
	var counts atomic.Pointer[sourceCounts]
	counts.Store(&sourceCounts{})
	met, err := startMetrics(ctx, cfg.metrics, "capture", cfg.vantage, func() sourceCounts { return *counts.Load() })
	if err != nil {
		return err
	}
	var summary string
	var capErr error
	procErr := analyze(ctx, liveDepth, func(pub transport.Publisher) {
		summary, capErr = runSource(ctx, cfg, pub, eng, func() uint64 { return out.flowCount() }, &counts)
	}, eng, out, archiveOptions{packets: cfg.packets, keepPayload: cfg.keepPayload}, met.ticker(eng, out.ds), func() {})
	slog.Info("capture ended", "source", cfg.source, "summary", summary, "flows", out.flowCount(), "findings", out.found)
	if !out.json {
		shown := out.tableFindings()
		printFindings(stdout, shown)
		if len(shown) < out.found {
			fmt.Fprintf(stdout, "(the latest %d findings; --out and --format json keep every one)\n", len(shown))
		}
		fmt.Fprintf(stdout, "\n%s; %d flows, %d findings\n", summary, out.flowCount(), out.found)
	}
	return errors.Join(capErr, procErr)
}

// captureTableFindings is how many findings capture's closing table keeps.
const captureTableFindings = 1000

// captureToKafka publishes what the source captures to the packet topic
// until ctx ends. Capture never waits for the broker: what does not fit
// the publisher's buffer while the broker is away is dropped and counted.
func captureToKafka(ctx context.Context, cfg captureConfig, stdout io.Writer) error {
	pub, err := newKafkaPublisher(ctx, &cfg.kafka, false)
	if err != nil {
		return err
	}
	var counts atomic.Pointer[sourceCounts]
	counts.Store(&sourceCounts{})
	met, err := startMetrics(ctx, cfg.metrics, "capture", cfg.vantage, func() sourceCounts { return *counts.Load() })
	if err != nil {
		return err
	}
	stopMetrics := func() {}
	if met != nil {
		stopMetrics = every(time.Second, func() {
			met.publish(analyzer.Stats{}, nil, func(s *metrics.Snapshot) {
				st := pub.Stats()
				drops := map[string]uint64{"kafka_buffer": st.DroppedRows}
				for k, v := range s.Drops {
					drops[k] = v
				}
				s.Drops, s.KafkaErrors = drops, st.FailedMsgs
				s.KafkaBuffered, s.KafkaAckedRows = st.Buffered, st.AckedRows
			})
		})
	}
	summary, capErr := runSource(ctx, cfg, pub, nil, func() uint64 { return 0 }, &counts)
	stopMetrics()
	perr := closePublisher(pub)
	st := pub.Stats()
	slog.Info("capture ended", "source", cfg.source, "summary", summary, "topic", cfg.kafka.topic, "acked_rows", st.AckedRows)
	fmt.Fprintf(stdout, "%s; %d rows published to %s (%d dropped, %d failed)\n", summary, st.AckedRows, cfg.kafka.topic, st.DroppedRows, st.FailedRows)
	return errors.Join(capErr, perr)
}

// runSource captures from cfg.iface into pub until ctx ends: eBPF unless
// it cannot load or attach (with --source auto), AF_PACKET otherwise. It
// returns a one-line summary of what the source saw and lost. prep, when
// not nil, hears of each AF_PACKET packet as it is decoded (the eBPF
// source's batches are prepared whole as they are published).
func runSource(ctx context.Context, cfg captureConfig, pub transport.Publisher, prep ingest.Preparer, flows func() uint64, counts *atomic.Pointer[sourceCounts]) (string, error) {
	var anon ingest.Anonymizer
	if cfg.pseudo != nil {
		anon = cfg.pseudo
	}
	// The counts behind the metrics are refreshed every second; the log
	// line comes every --report.
	tick := min(cfg.report, time.Second)
	logged := time.Now()
	logDue := func() bool {
		if time.Since(logged) < cfg.report {
			return false
		}
		logged = time.Now()
		return true
	}
	if cfg.source != "afpacket" {
		attached := false
		ecfg := ebpf.Config{
			BPF:            bpf.Config{SnapBytes: cfg.snapBytes, Filter: cfg.filter},
			Vantage:        cfg.vantage,
			Anonymize:      anon,
			ReportInterval: tick,
			Attached: func(mode bpf.AttachMode) error {
				attached = true
				slog.Info("capture started", "source", "ebpf", "iface", cfg.iface, "attach", mode.String())
				var keep []uintptr
				if mode == bpf.AttachClsact {
					keep = append(keep, unix.CAP_NET_ADMIN) // to remove the cls_bpf filters at exit
				}
				dropCapabilities(keep...)
				return nil
			},
			Report: func(s ebpf.Stats) {
				counts.Store(&sourceCounts{packets: s.Published, drops: map[string]uint64{"ring": s.Kernel.RingDrops, "flow_map": s.Kernel.FlowDrops}})
				if logDue() {
					slog.Info("capture", "packets", s.Published, "records", s.Records, "drops", s.Drops(), "filtered", s.Kernel.Filtered, "flows", flows())
				}
			},
		}
		est, err := ebpf.Run(ctx, cfg.iface, pub, ecfg)
		if err == nil || attached || cfg.source == "ebpf" {
			return fmt.Sprintf("ebpf: %d packets (%d records, %d split), %d drops (ring %d, flow map %d), %d filtered, %d non-IP, %d malformed",
				est.Published, est.Records, est.Split, est.Drops(), est.Kernel.RingDrops, est.Kernel.FlowDrops, est.Kernel.Filtered, est.Kernel.NotIP, est.Kernel.Malformed), err
		}
		slog.Warn("eBPF source unavailable, falling back to AF_PACKET", "err", err)
	}
	src, err := afpacket.Open(cfg.iface, afpacket.Config{Filter: cfg.filter})
	if err != nil {
		return "", err
	}
	defer src.Close()
	var s capture.Source = src
	var pw *pcapWriter
	if cfg.pcap != "" {
		if pw, err = newPcapWriter(cfg.pcap, src); err != nil {
			return "", err
		}
		s = pw
	}
	dropCapabilities()
	slog.Info("capture started", "source", "afpacket", "iface", cfg.iface)
	stopReport := every(tick, func() {
		st := src.Stats()
		counts.Store(&sourceCounts{packets: st.Frames, bytes: st.Bytes, drops: map[string]uint64{"kernel": st.Drops}})
		if logDue() {
			slog.Info("capture", "packets", st.Frames, "drops", st.Drops, "filtered", st.Skips, "flows", flows())
		}
	})
	defer stopReport()
	go func() { <-ctx.Done(); src.Stop() }()
	// Stopped through src.Stop so the tail is still published.
	ist, err := ingest.Run(context.WithoutCancel(ctx), s, pub, ingest.Config{
		Decode:        decode.Options{Vantage: cfg.vantage},
		Anonymize:     anon,
		FlushInterval: 100 * time.Millisecond,
		Prepare:       prep,
	})
	if pw != nil {
		if cerr := pw.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return fmt.Sprintf("afpacket: %d packets (%d skipped), %d drops, %d filtered", ist.Source.Frames, ist.Skipped(), ist.Source.Drops, ist.Source.Skips), err
}

// every calls fn every d until the returned func is called.
func every(d time.Duration, fn func()) func() {
	t := time.NewTicker(d)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				fn()
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

// pcapWriter tees the frames a source yields into a pcap file.
type pcapWriter struct {
	capture.Source
	f  *os.File
	bw *bufio.Writer
	w  *pcapgo.Writer
}

func newPcapWriter(path string, src capture.Source) (*pcapWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create pcap: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		f.Close()
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &pcapWriter{Source: src, f: f, bw: bw, w: w}, nil
}

func (p *pcapWriter) Next(f *capture.Frame) error {
	if err := p.Source.Next(f); err != nil {
		return err
	}
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, f.TimestampNs), CaptureLength: len(f.Data), Length: int(f.WireLen), InterfaceIndex: int(f.Iface)}
	if err := p.w.WritePacket(ci, f.Data); err != nil {
		return fmt.Errorf("write pcap: %w", err)
	}
	return nil
}

func (p *pcapWriter) close() error {
	err := p.bw.Flush()
	return errors.Join(err, p.f.Close())
}

// dropCapabilities reduces every thread's capabilities, bounding set
// included, to keep, once sockets and BPF links are open: reading the
// ring, the counters map and an AF_PACKET ring needs none.
func dropCapabilities(keep ...uintptr) {
	var data [2]unix.CapUserData
	kept := map[uintptr]bool{}
	for _, c := range keep {
		kept[c] = true
		data[c/32].Effective |= 1 << (c % 32)
		data[c/32].Permitted |= 1 << (c % 32)
	}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e != 0 {
		if e == syscall.ENOTSUP {
			slog.Warn("capabilities not dropped: binary built with cgo (build with CGO_ENABLED=0); rely on the service's CapabilityBoundingSet")
			return
		}
		slog.Warn("capabilities not dropped", "err", e)
		return
	}
	for c := uintptr(0); c <= unix.CAP_LAST_CAP; c++ {
		if !kept[c] {
			// EINVAL: a capability this kernel does not know.
			_, _, _ = syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		slog.Warn("capabilities not dropped", "err", e)
		return
	}
	slog.Info("capabilities dropped", "kept", len(keep))
}
