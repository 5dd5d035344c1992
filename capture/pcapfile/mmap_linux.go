//go:build linux

package pcapfile

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// pager faults the mapping in ahead of the reader from goroutines of its
// own: mapping page-cache pages costs about as much CPU as copying them
// would, and this way the reader's goroutine does not wait for it.
type pager struct {
	wg        sync.WaitGroup
	populated int64 // the reader's goroutine's: mapping bytes before this are asked for
}

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
	in = input{mapped: m, rest: m, pager: &pager{}}
	in.advance(0)
	pg := in.pager
	return in, func() error {
		pg.wg.Wait() // no fault-in may outlive the mapping
		return unix.Munmap(m)
	}, true
}

// advance is called as the reader passes offset at. It releases the
// mapped pages before at: the page cache keeps them, and a later access
// would map them again, so this only bounds resident memory and never
// changes what the reader sees. And it has the next stretch faulted in
// (MADV_POPULATE_READ, Linux 5.14; on older kernels the reader faults the
// pages in itself).
func (in *input) advance(at int64) {
	end := at &^ int64(os.Getpagesize()-1)
	if end > in.released {
		_ = unix.Madvise(in.mapped[in.released:end], unix.MADV_DONTNEED)
		in.released = end
	}
	pg := in.pager
	if ahead := min(at+2*window, int64(len(in.mapped))); ahead > pg.populated {
		r := in.mapped[pg.populated:ahead]
		pg.populated = ahead
		pg.wg.Go(func() { _ = unix.Madvise(r, unix.MADV_POPULATE_READ) })
	}
}
