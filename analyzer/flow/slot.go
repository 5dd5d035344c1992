package flow

// Slot is the flow's index in the table, stable while the flow lives and
// reused after it ends: callers keep per-flow data of their own in a slice
// indexed by Slot instead of a map.
func (s *State) Slot() int { return int(s.idx) }
