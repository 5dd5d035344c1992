package decode

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// reportCPU runs loop on one locked OS thread and reports its CPU time
// per iteration, which, unlike ns/op, does not grow when other processes
// share the cores.
func reportCPU(b *testing.B, loop func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &before); err != nil {
		b.Fatal(err)
	}
	loop()
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &after); err != nil {
		b.Fatal(err)
	}
	cpu := float64(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) / float64(b.N)
	b.ReportMetric(cpu, "cpu-ns/op")
	if cpu > 0 {
		b.ReportMetric(1e3/cpu, "Mpps/core")
	}
}
