//go:build linux

package pcapfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapInput maps f read-only and returns an input over the mapping, or
// ok == false when f cannot be mapped (not a regular file, empty, or
// compressed, which the decoder must stream) and the caller reads it
// instead.
func mapInput(f *os.File) (in input, unmap func() error, ok bool) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < 4 || int64(int(fi.Size())) != fi.Size() {
		return input{}, nil, false
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return input{}, nil, false
	}
	if gz, zs := compressed(m); gz || zs {
		unix.Munmap(m)
		return input{}, nil, false
	}
	_ = unix.Madvise(m, unix.MADV_SEQUENTIAL)
	return input{mapped: m, rest: m}, func() error { return unix.Munmap(m) }, true
}

// advance is called as the reader passes offset at. It releases the
// mapped pages before at: the page cache keeps them, and a later access
// would map them again, so this only bounds resident memory and never
// changes what the reader sees.
//
// The pages ahead are left to the reader's own page faults, which map
// them in batches (fault-around): asking the kernel to map them ahead
// (MADV_POPULATE_READ, from the reader or from a goroutine of its own)
// measured slower on the bench capture, 0.62–0.80 s against 0.55 s.
func (in *input) advance(at int64) {
	end := at &^ int64(os.Getpagesize()-1)
	if end > in.released {
		_ = unix.Madvise(in.mapped[in.released:end], unix.MADV_DONTNEED)
		in.released = end
	}
}
