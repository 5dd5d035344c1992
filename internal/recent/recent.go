// Package recent holds per-address state that a long capture must not keep
// for ever: a map that forgets the keys not seen for a while of packet
// time, so that months of traffic through one vantage keep it bounded.
package recent

import "time"

// Map is a map whose entries are forgotten once they have not been Put for
// between one and two horizons of packet time (as Puts tell the time), or
// sooner when more than max keys were Put within one horizon: it holds at
// most 2*max keys. Get does not count as seeing a key.
//
// It keeps two generations: Put writes to the current one, Get reads the
// current one and then the previous one, and at each turn (a horizon after
// the current one started, or when it holds max keys) the previous
// generation is dropped and the current one takes its place.
type Map[K comparable, V any] struct {
	cur, old  map[K]V
	horizonNs int64
	max       int
	startNs   int64 // packet time the current generation started
	lastNs    int64 // latest packet time of a Put
	started   bool
}

// New returns an empty Map. horizon must be positive, max at least 1.
func New[K comparable, V any](horizon time.Duration, max int) *Map[K, V] {
	return &Map[K, V]{cur: map[K]V{}, old: map[K]V{}, horizonNs: int64(horizon), max: max}
}

// Get returns the value of k, if it was Put recently.
func (m *Map[K, V]) Get(k K) (V, bool) {
	if v, ok := m.cur[k]; ok {
		return v, true
	}
	v, ok := m.old[k]
	return v, ok
}

// Put sets k to v, seen at packet time nowNs.
func (m *Map[K, V]) Put(nowNs int64, k K, v V) {
	m.tick(nowNs)
	m.cur[k] = v
}

// Keep is Get and Put of the value got, for values that are changed in
// place (a set): it returns k's value, made by mk when k has none, and
// counts k as seen at nowNs, at the cost of one lookup when k was seen in
// the current generation already.
func (m *Map[K, V]) Keep(nowNs int64, k K, mk func() V) V {
	m.tick(nowNs)
	if v, ok := m.cur[k]; ok {
		return v
	}
	v, ok := m.old[k]
	if !ok {
		v = mk()
	}
	m.cur[k] = v
	return v
}

// tick moves the generations on to packet time nowNs, before a Put.
func (m *Map[K, V]) tick(nowNs int64) {
	switch {
	case !m.started:
		m.startNs, m.lastNs, m.started = nowNs, nowNs, true
	case nowNs-m.lastNs >= 2*m.horizonNs:
		// Nothing was Put for two horizons: everything is that old.
		clear(m.old)
		clear(m.cur)
		m.startNs = nowNs
	case nowNs-m.startNs >= m.horizonNs || len(m.cur) >= m.max:
		m.turn(nowNs)
	}
	m.lastNs = max(m.lastNs, nowNs)
}

func (m *Map[K, V]) turn(nowNs int64) {
	m.old, m.cur = m.cur, m.old
	clear(m.cur)
	m.startNs = nowNs
}

// Len returns how many keys the Map holds, counting a key Put in both
// generations once per generation.
func (m *Map[K, V]) Len() int { return len(m.cur) + len(m.old) }
