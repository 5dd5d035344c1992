package prefetch

//go:noescape
func lines(addr uintptr, n int)
