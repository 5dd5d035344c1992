//go:build !amd64

package pcapfile

// prefetchLines is a no-op where no assembly version exists: the hardware
// prefetcher and the cache do what they can.
func prefetchLines(uintptr) {}
