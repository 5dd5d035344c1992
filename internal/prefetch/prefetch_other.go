//go:build !amd64

package prefetch

// lines is a no-op where no assembly version exists.
func lines(uintptr, int) {}
