package pcapfile

// prefetchLines asks the CPU to load the three cache lines from addr on, where
// the next record's header and packet headers are, while the caller still
// works on the current one.
//
//go:noescape
func prefetchLines(addr uintptr)
