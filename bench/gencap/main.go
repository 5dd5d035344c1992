// Command gencap writes the deterministic benchmark capture (see
// internal/synth): gencap -o bench.pcap [-flows N] [-seed S].
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tamperscope/tamperscope/internal/synth"
)

func main() {
	out := flag.String("o", "bench.pcap", "output pcap file")
	flows := flag.Int("flows", 50000, "TLS flows")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := run(*out, synth.Config{Flows: *flows, Seed: *seed}); err != nil {
		fmt.Fprintln(os.Stderr, "gencap:", err)
		os.Exit(1)
	}
}

func run(path string, cfg synth.Config) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	st, err := synth.Write(f, cfg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return err
	}
	fmt.Fprintf(os.Stderr, "gencap: %s: %d packets, %d flows, %d bytes\n", path, st.Packets, st.Flows, st.Bytes)
	return os.Rename(path+".tmp", path)
}
