// Package prefetch asks the CPU to start loading memory the caller will
// read soon, so that the wait for it overlaps other work: the capture
// reader uses it for the next record's headers, whose address it knows
// one record ahead. (Prefetching flow state a few packets ahead was
// measured too, and made BenchmarkUpdate slower: the lookup it repeats
// costs more than the misses it hides.)
package prefetch

import "unsafe"

// Lines prefetches n cache lines from p on. It is a hint: it never faults
// and never changes what any load returns.
func Lines(p unsafe.Pointer, n int) {
	lines(uintptr(p), n)
}
