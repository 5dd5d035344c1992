//go:build unix

package pcapfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// window is how many mapped bytes the reader passes before it hands the
// pages behind it back, which bounds its resident memory.
const window = 8 << 20

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

// advance is called as the reader passes offset at: it releases the mapped
// pages before at. The page cache keeps them, and a later access would map
// them again, so this only bounds resident memory and never changes what
// the reader sees.
func (in *input) advance(at int64) {
	end := at &^ int64(os.Getpagesize()-1)
	if end > in.released {
		_ = unix.Madvise(in.mapped[in.released:end], unix.MADV_DONTNEED)
		in.released = end
	}
}
