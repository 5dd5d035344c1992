package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tamperscope/tamperscope/report"
)

const reportExamples = `  tamperscope replay --out out/day1 day1/*.pcap.gz
  tamperscope report out/day1 -o out/day1/report.html
  tamperscope report --title "AS12389, March 2021" datasets/ -o report.html
`

type reportConfig struct {
	dir   string
	out   string
	title string
}

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg reportConfig
	fs := newFlagSet("report", "report [flags] DIR", reportExamples, stderr)
	fs.StringVar(&cfg.out, "o", "report.html", "write the HTML report to `FILE` (- for stdout)")
	fs.StringVar(&cfg.title, "title", "", "page title (default \"tamperscope report\")")
	// Flags may follow the directory ("report DIR -o FILE"): the flag
	// package stops at the first argument, so parse what remains again.
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) > 0 {
		cfg.dir = rest[0]
		if err := parseFlags(fs, rest[1:]); err != nil {
			return err
		}
		rest = fs.Args()
	}
	switch {
	case cfg.dir == "":
		return usageError{errors.New("no dataset directory given")}
	case len(rest) > 0:
		return usageError{fmt.Errorf("one dataset directory expected, got extra %q", rest)}
	}
	return writeReport(ctx, cfg, stdout, stderr)
}

func writeReport(ctx context.Context, cfg reportConfig, stdout, stderr io.Writer) error {
	r, err := report.Build(ctx, cfg.dir, report.Options{Title: cfg.title})
	if err != nil {
		return err
	}
	if cfg.out == "-" {
		if err := report.Render(stdout, r); err != nil {
			return err
		}
	} else if err := writeFileAtomic(cfg.out, func(w io.Writer) error { return report.Render(w, r) }); err != nil {
		return err
	}
	for _, p := range r.Problems {
		fmt.Fprintf(stderr, "tamperscope report: %s\n", p)
	}
	if cfg.out != "-" {
		fmt.Fprintf(stderr, "report: %d flows, %d findings -> %s\n", r.Summary.Flows, r.Summary.Findings, cfg.out)
	}
	if len(r.Problems) > 0 {
		return partialError{fmt.Errorf("%d file(s) unreadable; the report covers the rest", len(r.Problems))}
	}
	return nil
}

// writeFileAtomic writes path through a temporary file in the same
// directory, so an interrupted run never leaves half a page behind.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("create report: %w", err)
	}
	tmp := f.Name()
	if err := write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}
