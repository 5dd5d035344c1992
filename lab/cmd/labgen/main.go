// Command labgen runs the censor lab and writes each scenario's capture and
// ground truth, by default into lab/testdata for the tests that need no
// root. It needs root and the tools lab/setup.sh installs.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tamperscope/tamperscope/lab"
)

func main() {
	var cfg lab.Config
	var scenarios string
	flag.Int64Var(&cfg.Seed, "seed", 1, "seed for names, addresses, counts and rates")
	flag.StringVar(&cfg.OutDir, "out", "lab/testdata", "output directory")
	flag.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios (default all: "+strings.Join(lab.Scenarios(), ",")+")")
	flag.BoolVar(&cfg.RouterCapture, "router-capture", false, "also capture on the router's server-side interface")
	flag.Parse()
	if scenarios != "" {
		cfg.Scenarios = strings.Split(scenarios, ",")
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "labgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg lab.Config) error {
	res, err := lab.Run(ctx, cfg)
	if err != nil {
		return err
	}
	bad := 0
	for _, s := range res.Scenarios {
		fmt.Printf("%s\t%d attempts\t%d mismatches\t%s\n", s.Name, len(s.Truth.Attempts), len(s.Mismatches), s.Dir)
		for _, m := range s.Mismatches {
			fmt.Fprintln(os.Stderr, "  mismatch:", m)
		}
		bad += len(s.Mismatches)
	}
	if bad > 0 {
		return fmt.Errorf("%d attempts did not behave as their scenario should", bad)
	}
	return nil
}
