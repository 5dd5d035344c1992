package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/sink/packetread"
	"github.com/tamperscope/tamperscope/transport"
)

const batchExamples = `  tamperscope replay --packets --out archive/ day1/*.pcap.gz
  tamperscope batch --packets archive/ --out rerun/
  tamperscope batch --packets archive/ --out rerun-ams/ --vantage ams-1
`

type batchConfig struct {
	packets  string
	out      string
	vantage  string
	format   string
	maxFlows int
	quiet    bool
}

func runBatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg batchConfig
	fs := newFlagSet("batch", "batch --packets DIR [--out DIR] [flags]", batchExamples, stderr)
	fs.StringVar(&cfg.packets, "packets", "", "dataset root `DIR` holding an archived packets/ dataset (replay --packets --out DIR)")
	fs.StringVar(&cfg.out, "out", "", "write Parquet datasets (flows/, findings/) of the re-run under `DIR`")
	fs.StringVar(&cfg.vantage, "vantage", "", "analyze only packets recorded with this vantage `ID` (default: all)")
	fs.StringVar(&cfg.format, "format", "table", "stdout output: table (findings table and summary) or json (flow records and findings as JSON lines)")
	fs.IntVar(&cfg.maxFlows, "max-flows", 0, "flow table cap, as for replay (default 262144)")
	fs.BoolVar(&cfg.quiet, "quiet", false, "print nothing but errors (and JSON lines with --format json)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	case cfg.packets == "":
		return usageError{errors.New("no --packets directory given")}
	case cfg.format != "table" && cfg.format != "json":
		return usageError{fmt.Errorf("unknown --format %q: want table or json", cfg.format)}
	case cfg.out != "" && filepath.Clean(cfg.out) == filepath.Clean(cfg.packets):
		return usageError{errors.New("--out is the --packets directory: the re-run's flows/ and findings/ would mix with the archive's own")}
	}
	return batch(ctx, cfg, stdout, stderr)
}

func batch(ctx context.Context, cfg batchConfig, stdout, stderr io.Writer) error {
	// Fail on a missing or wrong directory before creating --out.
	if _, err := packetread.Files(cfg.packets); err != nil {
		return err
	}
	out, err := newOutput(stdout, cfg.format, cfg.out, "batch")
	if err != nil {
		return err
	}
	eng := analyzer.New(analyzer.Config{Flow: flow.Config{MaxFlows: cfg.maxFlows}}, out)
	start := time.Now()
	var st packetread.Stats
	var readErr error
	var fileErrs []error
	err = analyze(ctx, fileDepth, func(pub transport.Publisher) {
		st, readErr = packetread.Run(ctx, cfg.packets, pub, packetread.Config{
			Vantage: cfg.vantage,
			OnError: func(err error) {
				fileErrs = append(fileErrs, err)
				fmt.Fprintf(stderr, "tamperscope batch: %v (skipped)\n", err)
			},
		})
	}, eng, out, archiveOptions{}, nil, func() {})
	if err != nil {
		return err
	}
	if readErr != nil {
		return readErr
	}
	if cfg.vantage == "" && len(st.Vantages) > 1 {
		fmt.Fprintf(stderr, "tamperscope batch: packets of %d vantages %q were analyzed together: findings are judged per vantage, but a connection captured at two of them makes one flow; use --vantage to analyze one alone\n",
			len(st.Vantages), slices.Sorted(maps.Keys(st.Vantages)))
	}
	if st.Published > 0 && st.Snapshots == 0 {
		fmt.Fprintln(stderr, "tamperscope batch: the archive holds no payload snapshots (written without --keep-payload): names (SNI, HTTP Host, certificates) and the findings that need them cannot be re-derived")
	}
	if !cfg.quiet && !out.json {
		printFindings(stdout, out.findings)
		out.printSummary(fmt.Sprintf("%d packets from %d files (%d bad files, %d bad rows, %d of other vantages) in %.2fs",
			st.Published, st.Files, st.BadFiles, st.BadRows, st.Filtered, time.Since(start).Seconds()), eng.Stats())
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(fileErrs) > 0 || st.BadRows > 0 {
		return partialError{fmt.Errorf("%d of %d files unreadable or cut short, %d bad rows skipped", st.BadFiles, st.Files, st.BadRows)}
	}
	return nil
}
