package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
)

// profiles are the --cpuprofile and --memprofile flags of the commands
// that move packets, for finding where a run spends its time.
type profiles struct {
	cpu, mem string
}

func (p *profiles) register(fs *flag.FlagSet) {
	fs.StringVar(&p.cpu, "cpuprofile", "", "write a CPU profile to `FILE`")
	fs.StringVar(&p.mem, "memprofile", "", "write a heap profile to `FILE` at the end (allocations over the whole run)")
}

// run calls fn with the CPU profile running, then writes the heap profile.
func (p *profiles) run(fn func() error) error {
	if p.cpu != "" {
		f, err := os.Create(p.cpu)
		if err != nil {
			return fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
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
