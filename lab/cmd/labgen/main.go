// Command labgen runs the censor lab and writes each scenario's capture and
// ground truth, by default for seeds 1, 2 and 3 into lab/testdata, for the
// tests that need no root. It needs root and the tools lab/setup.sh
// installs.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tamperscope/tamperscope/lab"
)

func main() {
	var cfg lab.Config
	var scenarios, seedList string
	flag.Int64Var(&cfg.Seed, "seed", 1, "one seed for names, addresses, counts and rates (overrides -seeds)")
	flag.StringVar(&seedList, "seeds", "1,2,3", "comma-separated seeds, one lab run each")
	flag.StringVar(&cfg.OutDir, "out", "lab/testdata", "output directory")
	flag.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios (default all: "+strings.Join(lab.Scenarios(), ",")+")")
	flag.BoolVar(&cfg.RouterCapture, "router-capture", false, "also capture on the router's server-side interface")
	flag.Parse()
	if scenarios != "" {
		cfg.Scenarios = strings.Split(scenarios, ",")
	}
	seeds, err := parseSeeds(seedList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "labgen:", err)
		os.Exit(2)
	}
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "seed" {
			seeds = []int64{cfg.Seed}
		}
	})
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, seeds); err != nil {
		fmt.Fprintln(os.Stderr, "labgen:", err)
		os.Exit(1)
	}
}

func parseSeeds(list string) ([]int64, error) {
	var seeds []int64
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse -seeds %q: %w", list, err)
		}
		seeds = append(seeds, n)
	}
	return seeds, nil
}

// run runs the lab once per seed, one after the other: concurrent runs
// would share the CPU with the injector and the shaper, whose timing the
// captures record.
func run(ctx context.Context, cfg lab.Config, seeds []int64) error {
	bad := 0
	for _, seed := range seeds {
		cfg.Seed = seed
		start := time.Now()
		res, err := lab.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("seed %d: %w", seed, err)
		}
		for _, s := range res.Scenarios {
			fmt.Printf("%s\tseed %d\t%d attempts\t%d mismatches\t%s\n", s.Name, seed, len(s.Truth.Attempts), len(s.Mismatches), s.Dir)
			for _, m := range s.Mismatches {
				fmt.Fprintln(os.Stderr, "  mismatch:", m)
			}
			bad += len(s.Mismatches)
		}
		cfg.Log.Info("seed done", "seed", seed, "took", time.Since(start).Round(time.Millisecond))
	}
	if bad > 0 {
		return fmt.Errorf("%d attempts did not behave as their scenario should", bad)
	}
	return nil
}
