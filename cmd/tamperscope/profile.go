package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// profiles are the --cpuprofile, --memprofile and --trace flags of the
// commands that move packets, for finding where a run spends its time.
type profiles struct {
	cpu, mem, trace string
}

func (p *profiles) register(fs *flag.FlagSet) {
	fs.StringVar(&p.cpu, "cpuprofile", "", "write a CPU profile to `FILE`")
	fs.StringVar(&p.mem, "memprofile", "", "write a heap profile to `FILE` at the end (allocations over the whole run)")
	fs.StringVar(&p.trace, "trace", "", "write a Go execution trace to `FILE` (go tool trace): which goroutine waits for which")
}

// run calls fn with the CPU profile and the trace running, then writes
// the heap profile.
func (p *profiles) run(fn func() error) error {
	for _, r := range []struct {
		path, what string
		start      func(io.Writer) error
		stop       func()
	}{
		{p.cpu, "CPU profile", pprof.StartCPUProfile, pprof.StopCPUProfile},
		{p.trace, "trace", trace.Start, trace.Stop},
	} {
		if r.path == "" {
			continue
		}
		f, err := os.Create(r.path)
		if err != nil {
			return fmt.Errorf("create %s: %w", r.what, err)
		}
		defer f.Close()
		if err := r.start(f); err != nil {
			return fmt.Errorf("start %s: %w", r.what, err)
		}
		defer r.stop()
	}
	err := fn()
	if p.mem != "" {
		if werr := writeHeapProfile(p.mem); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create heap profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("write heap profile: %w", err)
	}
	return nil
}
