package flow

import (
	"math"
	"net/netip"
	"slices"
	"time"
	"unsafe"

	"github.com/tamperscope/tamperscope/internal/ipwords"
	"github.com/tamperscope/tamperscope/internal/prefetch"
	"github.com/tamperscope/tamperscope/schemas"
)

// Timeout classes: flows in one class share a timeout, so each class's
// LRU list is also ordered by deadline and expiry pops from its tail.
const (
	clsTCPAttempt uint8 = iota
	clsTCP
	clsTCPClosed
	clsUDP
	clsICMP
	nClasses
)

const (
	chunkShift = 8
	chunkSize  = 1 << chunkShift
	fragSlots  = 4096
	sweepNs    = int64(time.Second)
)

// slot is one index entry: the low 32 bits of the key hash, compared
// before the State is touched, and the State. Eight bytes keep the index
// of a full table within the last-level cache.
type slot struct {
	hash uint32
	idx  int32 // state index + 1; 0 is empty
}

type fragEntry struct {
	key uint64
	idx int32
	gen uint32
}

type lru struct{ head, tail int32 }

// link is a flow's place in its LRU list. Links live in a dense array
// beside the States, not in them: relinking writes two neighbours, and in
// a small array those writes hit cache where the neighbours' States would
// miss.
type link struct {
	prev, next int32
	linkNs     int64 // LastNs when linked; never above it
}

// Table is a bidirectional flow table. It is not safe for concurrent use:
// shard flows across goroutines with Key.Hash (or Key.AddrHash) and give
// each goroutine its own Table.
type Table struct {
	cfg     Config
	keyer   Keyer
	timeout [nClasses]int64
	server  [1024]uint64 // bitmap of likely server ports
	chunks  [][chunkSize]State
	links   []link // by State index
	free    []int32
	slots   []slot
	mask    uint64
	count   int
	lists   [nClasses]lru
	frag    []fragEntry
	bufs    []*buffer
	rsts    []*RSTEvidence
	downs   []*[chunkSize]downRecord // by State chunk, allocated on first use
	bufSize int
	sweepAt int64
	lastTs  int64
	stats   Stats
	resume  map[Key]int64 // Resume: packets of these flows up to then are dropped
}

// New returns an empty table.
func New(cfg Config) *Table {
	cfg = cfg.withDefaults()
	t := &Table{cfg: cfg}
	t.timeout = [nClasses]int64{
		clsTCPAttempt: int64(cfg.TCPAttemptTimeout),
		clsTCP:        int64(cfg.TCPTimeout),
		clsTCPClosed:  int64(cfg.TCPClosedLinger),
		clsUDP:        int64(cfg.UDPTimeout),
		clsICMP:       int64(cfg.ICMPTimeout),
	}
	for _, p := range cfg.ServerPorts {
		t.server[p>>6] |= 1 << (p & 63)
	}
	for i := range t.lists {
		t.lists[i] = lru{-1, -1}
	}
	t.slots = make([]slot, 1024)
	t.mask = uint64(len(t.slots) - 1)
	t.frag = make([]fragEntry, fragSlots)
	t.bufSize = cfg.StreamBytes
	return t
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	s := t.stats
	s.Active = t.count
	s.Evicted = s.Ended[EndEvicted]
	return s
}

// Len is the number of live flows.
func (t *Table) Len() int { return t.count }

func (t *Table) state(i int32) *State { return &t.chunks[i>>chunkShift][i&(chunkSize-1)] }

func (t *Table) likelyServer(port uint16) bool { return t.server[port>>6]&(1<<(port&63)) != 0 }

// Update accounts packet p to its flow, creating the flow if needed, and
// returns the flow, the packet's direction and whether the flow is new.
// It returns a nil State for packets it does not hand to the caller: IP
// later-fragments (counted on their flow when the first fragment was seen,
// otherwise in Stats) and packets without usable addresses. ICMP errors
// return the flow they quote, with the direction the error travels.
//
// Update expires idle flows as packet time passes whole seconds, calling
// OnEnd from inside Update; a reused 4-tuple or a full table also ends a
// flow there.
func (t *Table) Update(p *schemas.PacketMeta) (*State, Dir, bool) {
	var kp KeyedPacket
	t.keyer.Key(&kp, p)
	return t.UpdateKeyed(p, &kp)
}

// KeyedPacket is a packet's flow key and index hash, worked out ahead of its
// Update by KeysOf.
type KeyedPacket struct {
	key  Key
	hash uint64
	ok   bool
}

func (kp *KeyedPacket) of(p *schemas.PacketMeta, vantage uint16) {
	kp.hash, kp.ok = kp.key.of(p, vantage)
}

// Keyer works out the keys of packets one by one. It remembers the tag of
// the last vantage name, which the packets of a batch share.
type Keyer struct {
	vantage string
	tag     uint16
}

// Key sets kp to p's flow key. It reads nothing but p, so a Keyer may run
// on any goroutine: on the one that decodes the packets, while the table's
// goroutine works on an earlier batch.
func (k *Keyer) Key(kp *KeyedPacket, p *schemas.PacketMeta) { kp.of(p, k.tagOf(p.Vantage)) }

// tagOf is VantageTag(name), remembered for the last name.
func (k *Keyer) tagOf(name string) uint16 {
	if name != k.vantage {
		k.vantage, k.tag = name, VantageTag(name)
	}
	return k.tag
}

// KeysOf works out the flow key of every packet of pkts into dst, grown
// as needed, and returns it (Keyer.Key).
func KeysOf(dst []KeyedPacket, pkts []schemas.PacketMeta) []KeyedPacket {
	dst = slices.Grow(dst[:0], len(pkts))[:len(pkts)]
	var k Keyer
	for i := range pkts {
		k.Key(&dst[i], &pkts[i])
	}
	return dst
}

// Prefetch starts loading the index slot of kp's flow into the CPU cache.
// Prefetching a whole batch before updating it with UpdateKeyed turns the
// slot lookups, which miss the cache in a busy table, into hits.
func (t *Table) Prefetch(kp *KeyedPacket) {
	prefetch.Lines(unsafe.Pointer(&t.slots[kp.hash&t.mask]), 1)
}

// UpdateKeyed is Update of a packet whose key KeysOf worked out.
func (t *Table) UpdateKeyed(p *schemas.PacketMeta, kp *KeyedPacket) (*State, Dir, bool) {
	t.stats.Packets++
	ts := p.TimestampNs
	if ts > t.lastTs {
		t.lastTs = ts
	}
	if ts >= t.sweepAt {
		t.Advance(ts)
	}
	if p.Frag == schemas.FragLater {
		t.fragLater(p)
		return nil, 0, false
	}
	if !kp.ok {
		t.stats.Invalid++
		return nil, 0, false
	}
	k, h := &kp.key, kp.hash
	icmpErr := isICMPError(p)
	var st *State
	if i := t.lookup(k, h); i >= 0 {
		st = t.state(i)
		switch {
		case ts-st.LastNs > t.timeout[st.cls]:
			t.end(st, t.expiryReason(st))
			st = nil
		case !icmpErr && p.Proto == schemas.ProtoTCP && st.isReuse(p):
			t.stats.Reused++
			r := EndReuse
			if st.cls == clsTCPClosed {
				r = st.reason
			}
			t.end(st, r)
			st = nil
		}
	}
	isNew := false
	if st == nil {
		if len(t.resume) > 0 && t.resumed(k, ts) {
			t.stats.Resumed++
			return nil, 0, false
		}
		st = t.create(k, h, p, icmpErr)
		isNew = true
	}
	var d Dir
	if icmpErr {
		d = st.icmpError(p)
		t.stats.ICMPErrors++
	} else {
		d = st.packet(p, t)
		if p.Frag == schemas.FragFirst {
			t.fragRemember(p, st)
		}
	}
	t.touch(st, ts)
	return st, d, isNew
}

func (t *Table) expiryReason(st *State) EndReason {
	if st.cls == clsTCPClosed {
		return st.reason
	}
	return EndIdle
}

// Advance expires flows idle longer than their timeout at packet time now.
// Update calls it as packet time passes whole seconds; call it directly
// when time moves without packets (an idle partition).
func (t *Table) Advance(nowNs int64) {
	t.sweepAt = nowNs + sweepNs
	for c := uint8(0); c < nClasses; c++ {
		to := t.timeout[c]
		for {
			i := t.lists[c].tail
			// A flow's last packet is no older than its link time, so a
			// recent link answers without touching the State.
			if i < 0 || nowNs-t.links[i].linkNs <= to {
				break
			}
			st := t.state(i)
			if nowNs-st.LastNs > to {
				t.end(st, t.expiryReason(st))
				continue
			}
			// Active since it was linked: second chance at the head.
			t.unlink(st)
			t.linkHead(st)
		}
	}
}

// FlushAll ends every flow (end of input): closed flows with their close
// reason, the rest with EndEOF.
func (t *Table) FlushAll() {
	for c := uint8(0); c < nClasses; c++ {
		for t.lists[c].tail >= 0 {
			st := t.state(t.lists[c].tail)
			r := EndEOF
			if c == clsTCPClosed {
				r = st.reason
			}
			t.end(st, r)
		}
	}
}

// Split ends every flow that started before beforeNs: a flow still open
// with EndSplit, so that its record so far is written and its later
// packets start a new flow; a closed flow lingering for late packets with
// its close reason. A consumer of a partitioned stream splits long flows
// so that the offset it may commit (before the start of every open flow)
// is not held back by them for ever.
func (t *Table) Split(beforeNs int64) {
	for c := range t.lists {
		for i := t.lists[c].head; i >= 0; {
			st, next := t.state(i), t.links[i].next
			if st.StartNs < beforeNs {
				r := EndSplit
				if uint8(c) == clsTCPClosed {
					r = st.reason
				}
				t.end(st, r)
			}
			i = next
		}
	}
}

// Resume tells the table that flow k was split at afterNs by an earlier
// run over the same stream, whose record up to then is written: packets of
// k up to afterNs that would start a flow are dropped (Stats.Resumed), and
// the first one after it starts the flow's next piece. Packet time decides,
// so a packet of the next piece stamped with the split record's last
// timestamp is dropped too.
func (t *Table) Resume(k Key, afterNs int64) {
	if t.resume == nil {
		t.resume = map[Key]int64{}
	}
	t.resume[k] = max(t.resume[k], afterNs)
}

// resumed reports whether a packet at ts of flow k, which has no live
// flow, is held by a split record (Resume); past that time it forgets k.
func (t *Table) resumed(k *Key, ts int64) bool {
	until, ok := t.resume[*k]
	if !ok {
		return false
	}
	if ts <= until {
		return true
	}
	delete(t.resume, *k)
	return false
}

func (t *Table) create(k *Key, h uint64, p *schemas.PacketMeta, icmpErr bool) *State {
	if t.count >= t.cfg.MaxFlows {
		t.evict()
	}
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		n := int32(len(t.chunks)) * chunkSize
		t.chunks = append(t.chunks, [chunkSize]State{})
		t.links = append(t.links, make([]link, chunkSize)...)
		t.downs = append(t.downs, nil)
		for j := n + chunkSize - 1; j > n; j-- {
			t.free = append(t.free, j)
		}
		i = n
	}
	st := t.state(i)
	gen := st.gen + 1
	*st = State{}
	st.idx, st.gen, st.hash, st.live = i, gen, uint32(h), true
	st.Key = *k
	for side := range st.z {
		st.z[side].reset()
		st.zc[side].reset()
	}
	st.StartNs, st.LastNs = p.TimestampNs, p.TimestampNs
	st.IPVersion = p.IPVersion
	st.Vantage = p.Vantage
	if icmpErr {
		st.Proto = p.Quoted.Proto
		st.setClient(p.Quoted.Src, p.Quoted.SrcPort, p.Quoted.Dst, p.Quoted.DstPort)
	} else {
		st.Proto = p.Proto
		st.setClient(p.Src, p.SrcPort, p.Dst, p.DstPort)
		if t.flipAtStart(p) {
			st.flipRoles()
		}
	}
	st.cls = st.class()
	t.insert(i, h)
	t.linkHead(st)
	t.count++
	t.stats.Flows++
	return st
}

// setClient makes (src, sp) the client.
func (s *State) setClient(src netip.Addr, sp uint16, dst netip.Addr, dp uint16) {
	if s.IPVersion == 4 {
		src, dst = src.Unmap(), dst.Unmap()
	}
	s.Client = netip.AddrPortFrom(src, sp)
	s.Server = netip.AddrPortFrom(dst, dp)
	if isAddr(src, &s.Key.LoAddr) && sp == s.Key.LoPort {
		s.cside = 0
	} else {
		s.cside = 1
	}
}

// flipAtStart decides whether the first packet's sender is the server.
// TCP follows Zeek's TCPAnalyzer::WantConnection for likely server ports;
// beyond Zeek, a first SYN-ACK always marks its sender as the server and a
// midstream packet between two unlisted ports takes the lower port as the
// server. UDP flips when only the sender's port is a likely server port.
// ICMP: an echo reply's sender is the server.
func (t *Table) flipAtStart(p *schemas.PacketMeta) bool {
	sp, dp := p.SrcPort, p.DstPort
	switch p.Proto {
	case schemas.ProtoTCP:
		f := p.TCPFlags
		if f&schemas.TCPSyn != 0 && f&schemas.TCPAck == 0 {
			return false
		}
		synAck := f&schemas.TCPSyn != 0
		ls, ld := t.likelyServer(sp), t.likelyServer(dp)
		switch {
		case ls && ld:
			return !synAck && sp < dp
		case ls:
			return true
		case ld:
			return false
		case synAck:
			return true
		}
		return sp < dp
	case schemas.ProtoUDP:
		return t.likelyServer(sp) && !t.likelyServer(dp)
	case schemas.ProtoICMP:
		return p.ICMPType == 0
	case schemas.ProtoICMPv6:
		return p.ICMPType == 129
	}
	return false
}

func (s *State) class() uint8 {
	switch s.Proto {
	case schemas.ProtoTCP:
		o, r := &s.z[s.cside], &s.z[s.cside^1]
		switch {
		case (o.didClose && r.didClose) || o.state == tcpReset || r.state == tcpReset:
			return clsTCPClosed
		case r.state == tcpInactive && o.state != tcpPartial:
			return clsTCPAttempt
		}
		return clsTCP
	case schemas.ProtoICMP, schemas.ProtoICMPv6:
		return clsICMP
	}
	return clsUDP
}

// touch records activity. A flow moves to the head of its LRU list only
// when its class changes or a second of packet time passed since it was
// last linked: relinking writes the links of two neighbouring flows, which
// per packet would cost cache misses even in the dense link array. Lists
// stay ordered by link time and
// a flow's link time never exceeds its last packet time, which keeps expiry
// and eviction exact (see Advance and evict).
func (t *Table) touch(st *State, ts int64) {
	if ts > st.LastNs {
		st.LastNs = ts
	}
	c := st.class()
	if c != st.cls {
		if c == clsTCPClosed {
			st.reason = EndFIN
			if st.z[0].state == tcpReset || st.z[1].state == tcpReset {
				st.reason = EndRST
			}
		}
	} else if st.LastNs-t.links[st.idx].linkNs < sweepNs {
		return
	}
	t.unlink(st)
	st.cls = c
	t.linkHead(st)
}

func (t *Table) linkHead(st *State) {
	l := &t.lists[st.cls]
	t.links[st.idx] = link{prev: -1, next: l.head, linkNs: st.LastNs}
	if l.head >= 0 {
		t.links[l.head].prev = st.idx
	} else {
		l.tail = st.idx
	}
	l.head = st.idx
}

func (t *Table) unlink(st *State) {
	l := &t.lists[st.cls]
	k := &t.links[st.idx]
	if k.prev >= 0 {
		t.links[k.prev].next = k.next
	} else {
		l.head = k.next
	}
	if k.next >= 0 {
		t.links[k.next].prev = k.prev
	} else {
		l.tail = k.prev
	}
	k.prev, k.next = -1, -1
}

// evict ends the least recently active flow. List tails are the oldest by
// link time; a tail active since it was linked goes back to its head and
// the search repeats, so the victim is the flow with the oldest packet.
func (t *Table) evict() {
	for {
		victim := int32(-1)
		for c := range t.lists {
			if i := t.lists[c].tail; i >= 0 && (victim < 0 || t.links[i].linkNs < t.links[victim].linkNs) {
				victim = i
			}
		}
		if victim < 0 {
			return
		}
		st := t.state(victim)
		if st.LastNs != t.links[victim].linkNs {
			t.unlink(st)
			t.linkHead(st)
			continue
		}
		t.end(st, EndEvicted)
		return
	}
}

func (t *Table) end(st *State, r EndReason) {
	st.reason = r
	t.stats.Ended[r]++
	if t.cfg.OnEnd != nil {
		t.cfg.OnEnd(st, r)
	}
	t.unlink(st)
	t.remove(st.idx, st.hash)
	for d := range st.buf {
		t.release(st, Dir(d))
	}
	if st.RST != nil {
		t.rsts = append(t.rsts, st.RST)
		st.RST = nil
	}
	st.Down = nil
	st.live = false
	st.gen++
	t.free = append(t.free, st.idx)
	t.count--
}

// Open addressing with linear probing and backward-shift deletion: no
// tombstones, so steady-state churn never grows or rehashes the index.

func (t *Table) lookup(k *Key, h uint64) int32 {
	h32 := uint32(h)
	for j := h & t.mask; ; j = (j + 1) & t.mask {
		s := t.slots[j]
		if s.idx == 0 {
			return -1
		}
		if s.hash == h32 {
			if st := t.state(s.idx - 1); st.Key.equal(k) {
				return s.idx - 1
			}
		}
	}
}

func (t *Table) insert(i int32, h uint64) {
	if (t.count+1)*2 > len(t.slots) {
		t.grow()
	}
	j := h & t.mask
	for t.slots[j].idx != 0 {
		j = (j + 1) & t.mask
	}
	t.slots[j] = slot{uint32(h), i + 1}
}

func (t *Table) grow() {
	old := t.slots
	t.slots = make([]slot, len(old)*2)
	t.mask = uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.idx != 0 {
			j := uint64(s.hash) & t.mask
			for t.slots[j].idx != 0 {
				j = (j + 1) & t.mask
			}
			t.slots[j] = s
		}
	}
}

func (t *Table) remove(i int32, h uint32) {
	j := uint64(h) & t.mask
	for t.slots[j].idx != i+1 {
		j = (j + 1) & t.mask
	}
	for {
		t.slots[j] = slot{}
		k := j
		for {
			k = (k + 1) & t.mask
			s := t.slots[k]
			if s.idx == 0 {
				return
			}
			home := uint64(s.hash) & t.mask
			// Move s back into the hole unless its home lies cyclically
			// in (j, k].
			if (j < k && (home <= j || home > k)) || (j > k && home <= j && home > k) {
				t.slots[j] = s
				j = k
				break
			}
		}
	}
}

// Side records. Reset evidence and throughput bins are large and most
// packets never touch them. Reset evidence comes from a free list on
// first use and goes back when the flow ends.

const sideChunk = 64

func (t *Table) acquireRST() *RSTEvidence {
	if len(t.rsts) == 0 {
		recs := make([]rstRecord, sideChunk)
		for i := range recs {
			t.rsts = append(t.rsts, &recs[i].RSTEvidence)
		}
	}
	r := t.rsts[len(t.rsts)-1]
	t.rsts = t.rsts[:len(t.rsts)-1]
	*r = RSTEvidence{}
	return r
}

// down returns the throughput record of State i. Unlike reset evidence,
// most flows have server data, so each State has its record at the same
// index in a parallel array: its address follows from the index, without
// waiting for a pointer to load. Chunks are allocated when a flow in them
// first needs one.
func (t *Table) down(i int32) *Throughput {
	c := t.downs[i>>chunkShift]
	if c == nil {
		c = new([chunkSize]downRecord)
		t.downs[i>>chunkShift] = c
	}
	return &c[i&(chunkSize-1)].Throughput
}

// Buffers.

func (t *Table) acquire(st *State, d Dir) *buffer {
	if b := st.buf[d]; b != nil {
		return b
	}
	if st.stopped[d] || t.bufSize == 0 {
		return nil
	}
	var b *buffer
	if n := len(t.bufs); n > 0 {
		b = t.bufs[n-1]
		t.bufs = t.bufs[:n-1]
	} else {
		b = &buffer{data: make([]byte, t.bufSize), free: &t.bufs}
	}
	b.reset()
	st.buf[d] = b
	return b
}

func (t *Table) release(st *State, d Dir) {
	if b := st.buf[d]; b != nil {
		st.buf[d] = nil
		t.bufs = append(t.bufs, b)
	}
}

// Fragments: a direct-mapped cache from (addresses, protocol, IP ID) to
// the flow of the first fragment. A collision or a first fragment never
// seen leaves the later fragment unattributed (counted in Stats only).

// fragKey names the datagram p is a fragment of: addresses, protocol and
// IP ID at one vantage (vantage is VantageTag of p's).
func fragKey(p *schemas.PacketMeta, vantage uint16) uint64 {
	h := mix(uint64(p.IPID)|uint64(p.Proto)<<32|uint64(vantage)<<40, 0x2545f4914f6cdd1d)
	sh, sl := ipwords.Of(p.Src)
	dh, dl := ipwords.Of(p.Dst)
	for _, w := range [...]uint64{sh, sl, dh, dl} {
		h = mix(le(w), h)
	}
	return fmix(h) | 1
}

func (t *Table) fragRemember(p *schemas.PacketMeta, st *State) {
	k := fragKey(p, t.keyer.tagOf(p.Vantage))
	t.frag[k&(fragSlots-1)] = fragEntry{k, st.idx, st.gen}
}

func (t *Table) fragLater(p *schemas.PacketMeta) {
	t.stats.FragLater++
	if !p.Src.IsValid() || !p.Dst.IsValid() {
		return
	}
	k := fragKey(p, t.keyer.tagOf(p.Vantage))
	e := t.frag[k&(fragSlots-1)]
	if e.key != k || e.idx < 0 || int(e.idx) >= len(t.chunks)*chunkSize {
		return
	}
	st := t.state(e.idx)
	if !st.live || st.gen != e.gen {
		return
	}
	d := FromServer
	if a := st.addrOf(st.cside); isAddr(p.Src, &a) {
		d = FromClient
	}
	ds := &st.Dir[d]
	ds.IPBytes += uint64(p.IPLen)
	ds.Payload += uint64(p.PayloadLen)
	t.stats.FragAttributed++
}

func (s *State) addrOf(side uint8) [2]uint64 {
	if side == 0 {
		return s.Key.LoAddr
	}
	return s.Key.HiAddr
}

// OldestStartNs returns the earliest StartNs of the live flows, or
// math.MaxInt64 when there are none. It walks every live flow: call it at
// checkpoint frequency, not per packet.
func (t *Table) OldestStartNs() int64 {
	oldest := int64(math.MaxInt64)
	for c := range t.lists {
		for i := t.lists[c].head; i >= 0; i = t.links[i].next {
			oldest = min(oldest, t.state(i).StartNs)
		}
	}
	return oldest
}
