package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/analyzer/decode"
	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/capture/merge"
	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport"
)

const replayExamples = `  tamperscope replay capture.pcapng
  tcpdump -i eth0 -w - | tamperscope replay -          # "-" reads a capture from stdin
  tamperscope replay --out datasets/ day1/*.pcap.gz
  tamperscope replay --format json capture.pcap | jq 'select(.record == "finding")'
  tamperscope replay --out archive/ --packets --keep-payload capture.pcap   # for tamperscope batch later
  tamperscope replay --kafka 127.0.0.1:9092 --topic tamperscope.packets day1/*.pcap.gz   # for tamperscope analyze
`

type replayConfig struct {
	files       []string
	out         string
	format      string
	packets     bool
	vantage     string
	maxFlows    int
	progress    string
	quiet       bool
	keepPayload bool
	prof        profiles
	metrics     string
	kafka       kafkaFlags
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg replayConfig
	fs := newFlagSet("replay", "replay [flags] FILE... (- for stdin)", replayExamples, stderr)
	fs.StringVar(&cfg.out, "out", "", "write Parquet datasets (flows/, findings/) under `DIR`")
	fs.StringVar(&cfg.format, "format", "table", "stdout output: table (findings table and summary) or json (flow records and findings as JSON lines)")
	fs.BoolVar(&cfg.packets, "packets", false, "also write the packets/ dataset (packet metadata archive) under --out")
	fs.BoolVar(&cfg.keepPayload, "keep-payload", false, "keep payload snapshots in the packets/ dataset, so batch can re-run the parsers later")
	fs.StringVar(&cfg.vantage, "vantage", "", "vantage identifier recorded in every record")
	fs.IntVar(&cfg.maxFlows, "max-flows", 0, "flow table cap; least recently active flows are evicted beyond it (default 262144)")
	fs.StringVar(&cfg.progress, "progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), always or never")
	fs.BoolVar(&cfg.quiet, "quiet", false, "print nothing but errors (and JSON lines with --format json)")
	cfg.prof.register(fs)
	fs.StringVar(&cfg.metrics, "metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics while running (e.g. 127.0.0.1:9108)")
	cfg.kafka.register(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.files = fs.Args()
	if cfg.kafka.enabled() && (cfg.out != "" || cfg.packets || cfg.format != "table") {
		return usageError{errors.New("--kafka publishes the packets for tamperscope analyze: --out, --packets and --format belong there")}
	}
	switch {
	case len(cfg.files) == 0:
		return usageError{errors.New("no capture files given")}
	case cfg.format != "table" && cfg.format != "json":
		return usageError{fmt.Errorf("unknown --format %q: want table or json", cfg.format)}
	case cfg.progress != "auto" && cfg.progress != "always" && cfg.progress != "never":
		return usageError{fmt.Errorf("unknown --progress %q: want auto, always or never", cfg.progress)}
	case cfg.packets && cfg.out == "":
		return usageError{errors.New("--packets needs --out")}
	}
	return cfg.prof.run(func() error { return replay(ctx, cfg, stdout, stderr) })
}

func replay(ctx context.Context, cfg replayConfig, stdout, stderr io.Writer) error {
	var sources []capture.Source
	var totalBytes int64
	var openErrs []error
	for _, path := range cfg.files {
		var r *pcapfile.Reader
		var err error
		if path == "-" {
			// A capture piped in: tcpdump -w - | tamperscope replay -
			r, err = pcapfile.NewReader(os.Stdin, "stdin", pcapfile.Options{})
		} else {
			r, err = pcapfile.Open(path, pcapfile.Options{})
		}
		if err != nil {
			openErrs = append(openErrs, err)
			fmt.Fprintf(stderr, "tamperscope replay: %v\n", err)
			continue
		}
		if fi, err := os.Stat(path); err == nil {
			totalBytes += fi.Size()
		}
		sources = append(sources, r)
	}
	if len(sources) == 0 {
		return fmt.Errorf("no readable capture among %d file(s)", len(cfg.files))
	}
	// One file needs no merge: skip its per-frame heap work.
	var src capture.Source = sources[0]
	if len(sources) > 1 {
		src = merge.New(sources...)
	}
	defer src.Close()
	if cfg.kafka.enabled() {
		return replayToKafka(ctx, cfg, src, openErrs, stdout)
	}

	out, err := newOutput(stdout, cfg.format, cfg.out, "replay")
	if err != nil {
		return err
	}
	eng := analyzer.New(analyzer.Config{Flow: flow.Config{MaxFlows: cfg.maxFlows}}, out)

	prog := &ingest.Progress{}
	start := time.Now()
	met, err := startMetrics(ctx, cfg.metrics, "replay", cfg.vantage, func() sourceCounts {
		return sourceCounts{packets: prog.Frames.Load(), bytes: prog.Bytes.Load()}
	})
	if err != nil {
		return err
	}
	afterBatch := met.ticker(eng, out.ds)
	var ist ingest.Stats
	var readErr error
	stopBar := startProgress(cfg, stderr, prog, totalBytes, out.flowCount)
	err = analyze(ctx, fileDepth, func(pub transport.Publisher) {
		ist, readErr = ingest.Run(ctx, src, pub, ingest.Config{Progress: prog, Decode: decode.Options{Vantage: cfg.vantage}, Prepare: eng})
	}, eng, out, archiveOptions{packets: cfg.packets, keepPayload: cfg.keepPayload}, afterBatch, stopBar)
	if err != nil {
		return err
	}
	if readErr != nil {
		fmt.Fprintf(stderr, "tamperscope replay: %v (everything before it was analyzed)\n", readErr)
	}
	if !cfg.quiet && !out.json {
		printFindings(stdout, out.findings)
		el := time.Since(start)
		out.printSummary(fmt.Sprintf("%d packets (%d skipped) in %.2fs (%.2f Mpkt/s)",
			ist.Source.Frames, ist.Skipped(), el.Seconds(), float64(ist.Source.Frames)/el.Seconds()/1e6), eng.Stats())
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if readErr != nil || len(openErrs) > 0 {
		return partialError{errors.Join(append(openErrs, readErr)...)}
	}
	return nil
}

// replayToKafka publishes src's packets to the packet topic, waiting for
// the broker rather than dropping anything.
func replayToKafka(ctx context.Context, cfg replayConfig, src capture.Source, openErrs []error, stdout io.Writer) error {
	pub, err := newKafkaPublisher(ctx, &cfg.kafka, true)
	if err != nil {
		return err
	}
	start := time.Now()
	ist, readErr := ingest.Run(ctx, src, pub, ingest.Config{Decode: decode.Options{Vantage: cfg.vantage}})
	if err := closePublisher(pub); err != nil {
		return err
	}
	if !cfg.quiet {
		st := pub.Stats()
		el := time.Since(start)
		fmt.Fprintf(stdout, "%d packets (%d skipped) published to %s: %d rows in %d messages acknowledged in %.2fs (%.2f Mpkt/s)\n",
			ist.Source.Frames, ist.Skipped(), cfg.kafka.topic, st.AckedRows, st.AckedMsgs, el.Seconds(), float64(st.AckedRows)/el.Seconds()/1e6)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if readErr != nil || len(openErrs) > 0 {
		return partialError{errors.Join(append(openErrs, readErr)...)}
	}
	return nil
}

// startProgress draws a one-line progress bar on a terminal; it returns a
// func that stops it and clears the line.
func startProgress(cfg replayConfig, stderr io.Writer, prog *ingest.Progress, total int64, flows func() uint64) func() {
	show := cfg.progress == "always"
	if cfg.progress == "auto" && !cfg.quiet {
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			show = true
		}
	}
	if !show {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(stderr, "\r\033[K")
				return
			case <-t.C:
				b, n := prog.Bytes.Load(), prog.Frames.Load()
				el := time.Since(start).Seconds()
				pct := ""
				if total > 0 {
					pct = fmt.Sprintf("%3.0f%% ", 100*float64(b)/float64(total))
				}
				fmt.Fprintf(stderr, "\r\033[K%s%s  %s packets  %.2f Mpkt/s  %s flows", pct, humanBytes(b), humanCount(n), float64(n)/el/1e6, humanCount(flows()))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func humanBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", b>>10)
}

func humanCount(n uint64) string {
	if n >= 1e6 {
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	}
	return fmt.Sprint(n)
}

func printFindings(w io.Writer, fs []schemas.Finding) {
	if len(fs) == 0 {
		fmt.Fprintln(w, "No findings.")
		return
	}
	fmt.Fprintf(w, "%-18s %-22s %-28s %-7s %-6s %-21s %5s %s\n", "KIND", "TARGET", "NAME", "METHOD", "FLOWS", "VERDICT", "CONF", "EVIDENCE")
	for _, f := range fs {
		target := f.TargetIP
		if f.TargetPort != 0 {
			target = fmt.Sprintf("%s:%d", f.TargetIP, f.TargetPort)
			if strings.Contains(f.TargetIP, ":") {
				target = fmt.Sprintf("[%s]:%d", f.TargetIP, f.TargetPort)
			}
		}
		name := f.TargetName
		if f.Kind == schemas.KindIPBlocking && len(f.Collateral) > 0 {
			name = fmt.Sprintf("(%d names)", len(f.Collateral))
		}
		if f.Kind == schemas.KindThrottling {
			name = strings.TrimSpace(fmt.Sprintf("%s %.0f kbit/s", name, f.RateBps/1000))
		}
		fmt.Fprintf(w, "%-18s %-22s %-28s %-7s %2d/%-3d %-21s %5.2f %s\n", f.Kind, target, trunc(name, 28), f.Method, f.FailedFlows, f.Flows, f.Verdict, f.Confidence, f.Evidence)
		if f.Kind == schemas.KindIPBlocking && len(f.Collateral) > 0 {
			fmt.Fprintf(w, "%-18s collateral: %s\n", "", strings.Join(f.Collateral, ", "))
		}
	}
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
