package ingest

import (
	"errors"
	"fmt"
)

// ErrInputFault is wrapped by the error Run returns when reading a frame
// faulted: a memory-mapped capture file that another process truncated
// while it was read.
var ErrInputFault = errors.New("memory fault reading the input (was the capture file truncated while it was read?)")

// catchFault is deferred by the frame loop, which runs with
// debug.SetPanicOnFault: sources may hand out frames that alias a file
// mapping, and a file that shrinks under its mapping faults on the next
// access. That must end the run like a truncated file, not crash it, so
// catchFault calls undo and sets *readErr. Any other panic, a nil
// dereference included, is not a fault and goes on.
func catchFault(readErr *error, undo func()) {
	e := recover()
	if e == nil {
		return
	}
	fault, ok := e.(interface{ Addr() uintptr })
	if !ok {
		panic(e)
	}
	undo()
	*readErr = fmt.Errorf("%w: address %#x", ErrInputFault, fault.Addr())
}
