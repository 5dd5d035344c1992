package merge

import (
	"errors"
	"fmt"
	"io"

	"github.com/tamperscope/tamperscope/capture"
)

// Merger is a capture.Source over several sources.
type Merger struct {
	srcs      []capture.Source
	pending   []capture.Frame // the head frame of each source
	heap      []head          // sources with a pending frame, earliest on top
	started   bool
	returned  bool // heap[0]'s frame was handed out and must be replaced
	errs      []error
	delivered uint64
	end       error // io.EOF or the joined source errors, once all are done
}

type head struct {
	ts  int64
	src int
}

func (a head) before(b head) bool {
	return a.ts < b.ts || (a.ts == b.ts && a.src < b.src)
}

var _ capture.Source = (*Merger)(nil)

var errClosed = errors.New("merge: source closed")

// New merges sources. The Merger owns them: Close closes every one.
func New(sources ...capture.Source) *Merger {
	return &Merger{
		srcs:    sources,
		pending: make([]capture.Frame, len(sources)),
		heap:    make([]head, 0, len(sources)),
	}
}

// Next sets f to the earliest pending frame. f.Data aliases the buffer of
// the source it came from and stays valid until the next call to Next. After
// the last frame it returns io.EOF, or the joined errors of the sources that
// failed; it keeps returning that.
func (m *Merger) Next(f *capture.Frame) error {
	if m.end != nil {
		return m.end
	}
	if !m.started {
		m.started = true
		for i := range m.srcs {
			if m.read(i) {
				m.heap = append(m.heap, head{m.pending[i].TimestampNs, i})
				m.up(len(m.heap) - 1)
			}
		}
	} else if m.returned {
		if i := m.heap[0].src; m.read(i) {
			m.heap[0].ts = m.pending[i].TimestampNs
		} else {
			last := len(m.heap) - 1
			m.heap[0] = m.heap[last]
			m.heap = m.heap[:last]
		}
		m.down(0)
	}
	if len(m.heap) == 0 {
		m.returned = false
		m.end = io.EOF
		if len(m.errs) > 0 {
			m.end = errors.Join(m.errs...)
		}
		return m.end
	}
	*f = m.pending[m.heap[0].src]
	m.returned = true
	m.delivered++
	return nil
}

// read advances source i and reports whether it has a frame.
func (m *Merger) read(i int) bool {
	err := m.srcs[i].Next(&m.pending[i])
	if err == nil {
		return true
	}
	if err != io.EOF {
		m.errs = append(m.errs, fmt.Errorf("read merge source %d: %w", i, err))
	}
	return false
}

func (m *Merger) up(j int) {
	for j > 0 {
		parent := (j - 1) / 2
		if !m.heap[j].before(m.heap[parent]) {
			return
		}
		m.heap[j], m.heap[parent] = m.heap[parent], m.heap[j]
		j = parent
	}
}

func (m *Merger) down(j int) {
	n := len(m.heap)
	for {
		least := j
		if l := 2*j + 1; l < n && m.heap[l].before(m.heap[least]) {
			least = l
		}
		if r := 2*j + 2; r < n && m.heap[r].before(m.heap[least]) {
			least = r
		}
		if least == j {
			return
		}
		m.heap[j], m.heap[least] = m.heap[least], m.heap[j]
		j = least
	}
}

// Errors returns the errors of the sources that have failed so far, each
// naming its source's position in New's arguments.
func (m *Merger) Errors() []error {
	return append([]error(nil), m.errs...)
}

// Stats reports the frames the merge delivered and the sum of its sources'
// bytes, drops and skips.
func (m *Merger) Stats() capture.Stats {
	s := capture.Stats{Frames: m.delivered}
	for _, src := range m.srcs {
		ss := src.Stats()
		s.Bytes += ss.Bytes
		s.Drops += ss.Drops
		s.Skips += ss.Skips
	}
	return s
}

// Close closes every source.
func (m *Merger) Close() error {
	var errs []error
	for i, src := range m.srcs {
		if err := src.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close merge source %d: %w", i, err))
		}
	}
	if m.end == nil {
		m.end = errClosed
	}
	return errors.Join(errs...)
}
