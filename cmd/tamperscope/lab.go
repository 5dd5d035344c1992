package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/tamperscope/tamperscope/lab"
)

const labExamples = `  sudo tamperscope lab --out lab-out/                       # every scenario, seed 1
  sudo tamperscope lab --seeds 1,2,3 --out lab/testdata      # what make lab commits
  sudo tamperscope lab --seeds 7 --scenario sni-reset,residual --router-capture --out /tmp/lab
  tamperscope replay lab-out/*/capture.pcap                  # then analyze the captures
`

func runLab(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab", "lab [flags]", labExamples, stderr)
	seedList := fs.String("seeds", "1", "comma-separated seeds, one lab run each; a seed varies names, addresses, counts and rates")
	scen := fs.String("scenario", "", "comma-separated scenarios (default all: "+strings.Join(lab.Scenarios(), ", ")+")")
	out := fs.String("out", "lab-out", "write <scenario>-seed<N>/{capture.pcap,truth.json} under `DIR`")
	routerCap := fs.Bool("router-capture", false, "also capture on the censor router's server-side interface")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	var seeds []int64
	for _, f := range strings.Split(*seedList, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return usageError{fmt.Errorf("parse --seeds %q: %w", *seedList, err)}
		}
		seeds = append(seeds, n)
	}
	cfg := lab.Config{OutDir: *out, RouterCapture: *routerCap, Log: slog.Default()}
	if *scen != "" {
		cfg.Scenarios = strings.Split(*scen, ",")
	}
	// One seed after the other: concurrent runs would share the CPU with
	// the injector and the shaper, whose timing the captures record.
	bad := 0
	for _, seed := range seeds {
		cfg.Seed = seed
		start := time.Now()
		res, err := lab.Run(ctx, cfg)
		if errors.Is(err, lab.ErrNotRoot) {
			return fmt.Errorf("%w: the lab builds network namespaces and firewall rules", err)
		}
		if err != nil {
			return fmt.Errorf("seed %d: %w", seed, err)
		}
		for _, s := range res.Scenarios {
			status := "ok"
			if len(s.Mismatches) > 0 {
				status = fmt.Sprintf("%d mismatches: %s", len(s.Mismatches), strings.Join(s.Mismatches, "; "))
				bad++
			}
			fmt.Fprintf(stdout, "%-14s seed %-3d %-40s %3d attempts %2d expected findings  %s\n",
				s.Name, seed, s.Dir, len(s.Truth.Attempts), len(s.Truth.Findings), status)
		}
		slog.Info("lab run done", "seed", seed, "took", time.Since(start).Round(time.Second))
	}
	if bad > 0 {
		return fmt.Errorf("%d scenario run(s) did not behave as designed", bad)
	}
	return nil
}
