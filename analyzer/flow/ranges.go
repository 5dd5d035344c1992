package flow

// rng is a closed range [lo, hi] of one sequence space: TCP sequence
// numbers, stream offsets or Zeek's 64-bit sequence.
type rng[T any] struct{ lo, hi T }

// mergeRange merges [lo, hi] into the sorted, disjoint ranges r[:n],
// joining the ranges it overlaps or touches; less orders the space
// (modular for TCP sequence numbers). It returns the new count, or false,
// leaving r as it was, when the result does not fit in r.
func mergeRange[T any](r []rng[T], n int, lo, hi T, less func(a, b T) bool) (int, bool) {
	var out [maxStreamRanges + 1]rng[T]
	m, placed := 0, false
	for _, x := range r[:n] {
		switch {
		case less(x.hi, lo):
			out[m] = x
			m++
		case less(hi, x.lo):
			if !placed {
				out[m] = rng[T]{lo, hi}
				m++
				placed = true
			}
			out[m] = x
			m++
		default: // overlaps or touches: widen the new range
			if less(x.lo, lo) {
				lo = x.lo
			}
			if less(hi, x.hi) {
				hi = x.hi
			}
		}
	}
	if !placed {
		out[m] = rng[T]{lo, hi}
		m++
	}
	if m > len(r) {
		return n, false
	}
	copy(r, out[:m])
	return m, true
}

// Every range list fits mergeRange's scratch space.
var _ = [maxStreamRanges - maxHoles]struct{}{}

func less[T int | uint64](a, b T) bool { return a < b }
