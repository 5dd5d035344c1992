package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tamperscope/tamperscope/lab"
)

const labExamples = `  sudo tamperscope lab --out lab-out/                       # every scenario, seed 0
  sudo tamperscope lab --seed 3 --scenario sni-reset,ip-drop --out /tmp/lab
  tamperscope replay lab-out/*/capture.pcap                  # then analyze the captures
`

func runLab(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab", "lab [flags]", labExamples, stderr)
	seed := fs.Int64("seed", 0, "seed that varies names, addresses, counts and rates")
	scen := fs.String("scenario", "", "comma-separated scenarios (default all: "+strings.Join(lab.Scenarios(), ", ")+")")
	out := fs.String("out", "lab-out", "write <scenario>-seed<N>/{capture.pcap,truth.json} under `DIR`")
	routerCap := fs.Bool("router-capture", false, "also capture on the censor router")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	cfg := lab.Config{Seed: *seed, OutDir: *out, RouterCapture: *routerCap, Log: slog.Default()}
	if *scen != "" {
		cfg.Scenarios = strings.Split(*scen, ",")
	}
	res, err := lab.Run(ctx, cfg)
	if errors.Is(err, lab.ErrNotRoot) {
		return fmt.Errorf("%w: the lab builds network namespaces and firewall rules", err)
	}
	if err != nil {
		return err
	}
	bad := 0
	for _, s := range res.Scenarios {
		status := "ok"
		if len(s.Mismatches) > 0 {
			status = fmt.Sprintf("%d mismatches: %s", len(s.Mismatches), strings.Join(s.Mismatches, "; "))
			bad++
		}
		fmt.Fprintf(stdout, "%-14s %-40s %d expected findings  %s\n", s.Name, s.Dir, len(s.Truth.Findings), status)
	}
	if bad > 0 {
		return fmt.Errorf("%d scenario(s) did not behave as designed", bad)
	}
	return nil
}
