//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// TC classifier that turns every IPv4/IPv6 TCP, UDP and ICMP packet into a
// pkt_rec in a ring buffer. A per-flow LRU map decides which packets carry
// a payload snapshot: the first data bytes of each direction of a flow,
// never bulk data. The program never changes the packet's fate: it returns
// TC_ACT_UNSPEC so later TC programs still run.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// SNAP_MAX bounds one record's snapshot; the budget per flow direction is
// the run-time setting snap_bytes.
#define SNAP_MAX 2048
#define ETH_P_8021AD_ 0x88A8
#define ETH_P_8021Q_ 0x8100

#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58

#define FRAG_NONE 0
#define FRAG_FIRST 1
#define FRAG_LATER 2

#define OPT_MSS 1
#define OPT_WSCALE 2
#define OPT_SACKPERM 4
#define OPT_TS 8
#define OPT_SACK 16

#define TCP_SYN 0x02

// Filter map flags.
#define F_EXCLUDE 1
#define F_INCLUDE 2

// Settings, rewritten by the loader through spec.Variables.
volatile const __u32 snap_bytes = 2048;  // snapshot budget per flow direction
volatile const __u32 snap_packets = 4;   // snapshotted packets per flow direction
volatile const __u64 wakeup_bytes = 256 << 10; // wake the reader past this much unread data
volatile const __u8 include_ports = 0;   // port_filter holds F_INCLUDE entries
volatile const __u8 include_nets = 0;    // net_filter holds F_INCLUDE entries

// pkt_rec is one packet's metadata; addresses are 16 bytes, IPv4 as
// v4-mapped IPv6. gso_segs/gso_size describe a GSO/GRO super-packet so user
// space can account the wire segments it stands for.
struct pkt_rec {
	__u64 ts_ns;
	__u32 ifindex;
	__u32 wire_len;
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 q_saddr[16];
	__u8 q_daddr[16];
	__u32 ip_id;
	__u32 seq;
	__u32 ack;
	__u32 tsval;
	__u32 tsecr;
	__u32 payload_len;
	__u32 gso_segs;
	__u32 gso_size;
	__u16 ip_len;
	__u16 frag_off;
	__u16 sport;
	__u16 dport;
	__u16 window;
	__u16 mss;
	__u16 q_sport;
	__u16 q_dport;
	__u16 snap_len;
	__u16 l4_off; // transport header offset from the start of the frame
	__u8 l3_off;  // IP header offset
	__u8 l4_hlen; // transport header length (TCP data offset, 8 for UDP)
	__u8 ip_version;
	__u8 proto;
	__u8 ttl;
	__u8 frag;
	__u8 tcp_flags;
	__u8 tcp_opts;
	__u8 wscale;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 q_proto;
};

struct pkt_snap {
	struct pkt_rec rec;
	__u8 data[SNAP_MAX];
};

// Counter indexes into the per-CPU counters array.
enum counter {
	C_SEEN,       // packets that reached the program
	C_RECORDS,    // records submitted
	C_RING_DROPS, // records lost: ring buffer full
	C_FLOW_DROPS, // snapshots lost: flow map update failed
	C_FILTERED,   // packets excluded by a filter
	C_NOT_IP,     // non-IP frames (ARP, LLDP, ...)
	C_MALFORMED,  // IP packets too short or inconsistent to parse
	C_FLOWS,      // flow entries created for the snapshot policy
	C_SNAPS,      // records carrying a snapshot
	C_SNAP_BYTES, // snapshot bytes
	C_MAX,
};

struct flow_key {
	__u8 a[16];
	__u8 b[16];
	__u16 ap;
	__u16 bp;
	__u8 proto;
	__u8 _pad[3];
};

struct flow_val {
	__u32 bytes[2];
	__u32 packets[2];
};

struct net_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u8);
} port_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct net_key);
	__type(value, __u8);
} net_filter SEC(".maps");

// Force BTF for the types user space reads.
const struct pkt_rec *unused_pkt_rec __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));
const struct pkt_snap *unused_pkt_snap __attribute__((unused));

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += n;
}

static __always_inline void v4mapped(__u8 *dst, __u32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

static __always_inline int is_echo(__u8 t, int v6)
{
	if (v6)
		return t == 128 || t == 129;
	return t == 0 || t == 8 || t == 13 || t == 14;
}

static __always_inline int is_error(__u8 t, int v6)
{
	if (v6)
		return t >= 1 && t <= 4;
	return t == 3 || t == 4 || t == 5 || t == 11 || t == 12;
}

static __always_inline int is_ext(__u8 nh)
{
	return nh == 0 || nh == 43 || nh == 60 || nh == 135 || nh == 139 || nh == 140;
}

static __always_inline __u8 net_match(__u8 *addr)
{
	struct net_key k = {.prefixlen = 128};
	__builtin_memcpy(k.addr, addr, 16);
	__u8 *f = bpf_map_lookup_elem(&net_filter, &k);
	return f ? *f : 0;
}

static __always_inline __u8 port_match(__u16 port)
{
	__u8 *f = bpf_map_lookup_elem(&port_filter, &port);
	return f ? *f : 0;
}

// filtered says whether the packet falls outside what the operator wants
// captured (management traffic, other ports or networks).
static __always_inline int filtered(struct pkt_rec *r, int has_ports)
{
	__u8 fs = net_match(r->saddr), fd = net_match(r->daddr);
	if ((fs | fd) & F_EXCLUDE)
		return 1;
	if (include_nets && !((fs | fd) & F_INCLUDE))
		return 1;
	if (!has_ports)
		return include_ports;
	__u8 ps = port_match(r->sport), pd = port_match(r->dport);
	if ((ps | pd) & F_EXCLUDE)
		return 1;
	if (include_ports && !((ps | pd) & F_INCLUDE))
		return 1;
	return 0;
}

static __always_inline int addr_cmp(const __u8 *a, const __u8 *b)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	}
	return 0;
}

// snap_len applies the snapshot policy: how many payload bytes of this
// packet to keep, charging them to its flow direction.
static __always_inline __u32 snap_len(struct pkt_rec *r, __u32 avail)
{
	struct flow_key k = {};
	int dir = 0;
	int c = addr_cmp(r->saddr, r->daddr);
	if (c > 0 || (c == 0 && r->sport > r->dport))
		dir = 1;
	if (dir) {
		__builtin_memcpy(k.a, r->daddr, 16);
		__builtin_memcpy(k.b, r->saddr, 16);
		k.ap = r->dport;
		k.bp = r->sport;
	} else {
		__builtin_memcpy(k.a, r->saddr, 16);
		__builtin_memcpy(k.b, r->daddr, 16);
		k.ap = r->sport;
		k.bp = r->dport;
	}
	k.proto = r->proto;

	struct flow_val *v = bpf_map_lookup_elem(&flows, &k);
	if (!v || (r->proto == PROTO_TCP && (r->tcp_flags & TCP_SYN))) {
		struct flow_val nv = {};
		if (bpf_map_update_elem(&flows, &k, &nv, BPF_ANY)) {
			count(C_FLOW_DROPS, 1);
			return 0;
		}
		if (!v)
			count(C_FLOWS, 1);
		v = bpf_map_lookup_elem(&flows, &k);
		if (!v) {
			count(C_FLOW_DROPS, 1);
			return 0;
		}
	}
	if (v->packets[dir & 1] >= snap_packets || v->bytes[dir & 1] >= snap_bytes)
		return 0;
	__u32 n = avail;
	if (n > snap_bytes - v->bytes[dir & 1])
		n = snap_bytes - v->bytes[dir & 1];
	if (n > SNAP_MAX)
		n = SNAP_MAX;
	v->packets[dir & 1]++;
	v->bytes[dir & 1] += n;
	return n;
}

struct opt_scan {
	__u8 o[72]; // the options, zero past len; indexes are masked with 63
	__u32 i;
	__u32 len;
	__u32 tsval;
	__u32 tsecr;
	__u16 mss;
	__u8 opts;
	__u8 wscale;
};

// opt_step reads the option at s->i. It runs under bpf_loop so the
// verifier checks it once instead of once per possible option layout.
static long opt_step(__u64 index, void *ctx)
{
	struct opt_scan *s = ctx;
	__u32 i = s->i;
	if (i >= s->len || i >= 40)
		return 1;
	__u8 kind = s->o[i & 63];
	if (kind == 0)
		return 1;
	if (kind == 1) {
		s->i = i + 1;
		return 0;
	}
	if (i + 1 >= s->len)
		return 1;
	__u32 l = s->o[(i + 1) & 63];
	if (l < 2 || i + l > s->len)
		return 1;
	__u32 j = (i + 2) & 63;
	if (kind == 2 && l == 4) {
		s->opts |= OPT_MSS;
		s->mss = (__u16)s->o[j] << 8 | s->o[j + 1];
	} else if (kind == 3 && l == 3) {
		s->opts |= OPT_WSCALE;
		s->wscale = s->o[j];
	} else if (kind == 4 && l == 2) {
		s->opts |= OPT_SACKPERM;
	} else if (kind == 5 && l >= 10) {
		s->opts |= OPT_SACK;
	} else if (kind == 8 && l == 10) {
		s->opts |= OPT_TS;
		s->tsval = (__u32)s->o[j] << 24 | (__u32)s->o[j + 1] << 16 | (__u32)s->o[j + 2] << 8 | s->o[j + 3];
		s->tsecr = (__u32)s->o[j + 4] << 24 | (__u32)s->o[j + 5] << 16 | (__u32)s->o[j + 6] << 8 | s->o[j + 7];
	}
	s->i = i + l;
	return 0;
}

static __always_inline void tcp_options(struct __sk_buff *skb, __u32 off, __u32 len, struct pkt_rec *r)
{
	struct opt_scan s = {};
	if (len > 40)
		len = 40;
	asm volatile("" : "+r"(len));
	if (len < 1 || len > 40)
		return;
	if (bpf_skb_load_bytes(skb, off, s.o, len))
		return;
	s.len = len;
	if (len == 12 && s.o[0] == 1 && s.o[1] == 1 && s.o[2] == 8 && s.o[3] == 10) {
		// NOP NOP TS, the layout of nearly every data segment: skip the loop.
		s.opts = OPT_TS;
		s.tsval = (__u32)s.o[4] << 24 | (__u32)s.o[5] << 16 | (__u32)s.o[6] << 8 | s.o[7];
		s.tsecr = (__u32)s.o[8] << 24 | (__u32)s.o[9] << 16 | (__u32)s.o[10] << 8 | s.o[11];
	} else {
		bpf_loop(40, opt_step, &s, 0);
	}
	r->tcp_opts = s.opts;
	r->mss = s.mss;
	r->wscale = s.wscale;
	r->tsval = s.tsval;
	r->tsecr = s.tsecr;
}

// icmp_quoted reads the 5-tuple of the packet an ICMP error quotes.
static __always_inline void icmp_quoted(struct __sk_buff *skb, __u32 off, struct pkt_rec *r)
{
	__u8 q[48] = {};
	if (bpf_skb_load_bytes(skb, off, q, 24))
		return;
	__u8 ver = q[0] >> 4;
	__u32 l4;
	__u8 proto;
	if (ver == 4) {
		__u32 ihl = (q[0] & 0x0f) * 4;
		if (ihl < 20)
			return;
		__u32 a;
		__builtin_memcpy(&a, &q[12], 4);
		v4mapped(r->q_saddr, a);
		__builtin_memcpy(&a, &q[16], 4);
		v4mapped(r->q_daddr, a);
		proto = q[9];
		r->q_proto = proto;
		if (((__u16)q[6] << 8 | q[7]) & 0x1fff)
			return;
		l4 = off + ihl;
	} else if (ver == 6) {
		if (bpf_skb_load_bytes(skb, off, q, 40))
			return;
		__builtin_memcpy(r->q_saddr, &q[8], 16);
		__builtin_memcpy(r->q_daddr, &q[24], 16);
		proto = q[6];
		r->q_proto = proto;
		l4 = off + 40;
	} else {
		return;
	}
	__u8 t[6];
	if (proto == PROTO_TCP || proto == PROTO_UDP || proto == 132 || proto == 136) {
		if (bpf_skb_load_bytes(skb, l4, t, 4))
			return;
		r->q_sport = (__u16)t[0] << 8 | t[1];
		r->q_dport = (__u16)t[2] << 8 | t[3];
	} else if (proto == PROTO_ICMP || proto == PROTO_ICMPV6) {
		if (bpf_skb_load_bytes(skb, l4, t, 6))
			return;
		if (is_echo(t[0], proto == PROTO_ICMPV6)) {
			r->q_sport = (__u16)t[4] << 8 | t[5];
			r->q_dport = r->q_sport;
		}
	}
}

// emit submits r, with a snapshot of len bytes at off when len > 0, and
// wakes the reader only when enough data is waiting.
static __always_inline void emit(struct __sk_buff *skb, struct pkt_rec *r, __u32 off, __u32 len)
{
	void *out;
	if (len > 0) {
		struct pkt_snap *s = bpf_ringbuf_reserve(&events, sizeof(*s), 0);
		if (!s) {
			count(C_RING_DROPS, 1);
			return;
		}
		// Reload len through the stack so clang cannot drop the clamp
		// the verifier needs as "already known" from snap_len.
		volatile __u32 vlen = len;
		len = vlen;
		if (len > SNAP_MAX)
			len = SNAP_MAX;
		if (len < 1 || bpf_skb_load_bytes(skb, off, s->data, len))
			len = 0;
		r->snap_len = len;
		__builtin_memcpy(&s->rec, r, sizeof(*r));
		out = s;
		if (len) {
			count(C_SNAPS, 1);
			count(C_SNAP_BYTES, len);
		}
	} else {
		struct pkt_rec *o = bpf_ringbuf_reserve(&events, sizeof(*o), 0);
		if (!o) {
			count(C_RING_DROPS, 1);
			return;
		}
		__builtin_memcpy(o, r, sizeof(*r));
		out = o;
	}
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(out, flags);
	count(C_RECORDS, 1);
}

SEC("tc")
int capture(struct __sk_buff *skb)
{
	struct pkt_rec r = {};
	count(C_SEEN, 1);

	__u32 off = ETH_HLEN;
	__u16 eth_proto;
	if (bpf_skb_load_bytes(skb, 12, &eth_proto, 2))
		goto not_ip;
	eth_proto = bpf_ntohs(eth_proto);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (eth_proto != ETH_P_8021Q_ && eth_proto != ETH_P_8021AD_)
			break;
		if (bpf_skb_load_bytes(skb, off + 2, &eth_proto, 2))
			goto not_ip;
		eth_proto = bpf_ntohs(eth_proto);
		off += 4;
	}

	r.ts_ns = bpf_ktime_get_ns();
	r.ifindex = skb->ifindex;
	r.wire_len = skb->len;
	r.gso_segs = skb->gso_segs;
	r.gso_size = skb->gso_size;

	__u32 l4, l4len; // transport offset and length from the IP header
	__u8 proto;
	if (eth_proto == ETH_P_IP) {
		__u8 h[20];
		if (bpf_skb_load_bytes(skb, off, h, 20))
			goto malformed;
		__u32 ihl = (h[0] & 0x0f) * 4;
		if (h[0] >> 4 != 4 || ihl < 20)
			goto malformed;
		__u32 tl = (__u32)h[2] << 8 | h[3];
		if (tl == 0) // TSO super-packet
			tl = skb->len - off;
		if (tl < ihl)
			goto malformed;
		r.ip_version = 4;
		r.ip_len = tl > 0xffff ? 0xffff : tl;
		r.ip_id = (__u32)h[4] << 8 | h[5];
		r.ttl = h[8];
		proto = h[9];
		__u32 a;
		__builtin_memcpy(&a, &h[12], 4);
		v4mapped(r.saddr, a);
		__builtin_memcpy(&a, &h[16], 4);
		v4mapped(r.daddr, a);
		__u16 fo = (__u16)h[6] << 8 | h[7];
		r.frag_off = (fo & 0x1fff) * 8;
		if (r.frag_off)
			r.frag = FRAG_LATER;
		else if (fo & 0x2000)
			r.frag = FRAG_FIRST;
		l4 = off + ihl;
		l4len = tl - ihl;
	} else if (eth_proto == ETH_P_IPV6) {
		__u8 h[40];
		if (bpf_skb_load_bytes(skb, off, h, 40))
			goto malformed;
		if (h[0] >> 4 != 6)
			goto malformed;
		__u32 pl = (__u32)h[4] << 8 | h[5];
		__u8 nh = h[6];
		if (pl == 0 && nh != 59)
			pl = skb->len - off - 40;
		r.ip_version = 6;
		r.ip_len = pl + 40 > 0xffff ? 0xffff : pl + 40;
		r.ip_id = ((__u32)(h[1] & 0x0f) << 16) | (__u32)h[2] << 8 | h[3];
		r.ttl = h[7];
		__builtin_memcpy(r.saddr, &h[8], 16);
		__builtin_memcpy(r.daddr, &h[24], 16);
		l4 = off + 40;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u8 x[4];
			__u32 n;
			if (is_ext(nh)) {
				if (bpf_skb_load_bytes(skb, l4, x, 2))
					goto malformed;
				n = ((__u32)x[1] + 1) * 8;
			} else if (nh == 51) {
				if (bpf_skb_load_bytes(skb, l4, x, 2))
					goto malformed;
				n = ((__u32)x[1] + 2) * 4;
			} else if (nh == 44) {
				if (bpf_skb_load_bytes(skb, l4, x, 4))
					goto malformed;
				n = 8;
				__u16 fo = (__u16)x[2] << 8 | x[3];
				r.frag_off = fo & ~7;
				if (r.frag_off)
					r.frag = FRAG_LATER;
				else if (fo & 1)
					r.frag = FRAG_FIRST;
			} else {
				break;
			}
			if (pl < n)
				goto malformed;
			nh = x[0];
			l4 += n;
			pl -= n;
			if (r.frag == FRAG_LATER)
				break;
		}
		proto = nh;
		l4len = pl;
	} else {
		goto not_ip;
	}
	r.proto = proto;
	r.l3_off = off;
	r.l4_off = l4;

	// Bytes of the transport segment actually present in the skb.
	__u32 have = skb->len > l4 ? skb->len - l4 : 0;
	if (have > l4len)
		have = l4len;

	if (r.frag == FRAG_LATER) {
		r.payload_len = l4len;
		if (filtered(&r, 0))
			goto skip;
		emit(skb, &r, 0, 0);
		return TC_ACT_UNSPEC;
	}

	__u32 pay = 0, paylen = 0;
	if (proto == PROTO_TCP) {
		__u8 t[20];
		if (bpf_skb_load_bytes(skb, l4, t, 20))
			goto malformed;
		r.sport = (__u16)t[0] << 8 | t[1];
		r.dport = (__u16)t[2] << 8 | t[3];
		r.seq = (__u32)t[4] << 24 | (__u32)t[5] << 16 | (__u32)t[6] << 8 | t[7];
		r.ack = (__u32)t[8] << 24 | (__u32)t[9] << 16 | (__u32)t[10] << 8 | t[11];
		r.tcp_flags = t[13];
		r.window = (__u16)t[14] << 8 | t[15];
		__u32 doff = (t[12] >> 4) * 4;
		if (doff < 20 || doff > l4len)
			goto malformed;
		if (doff > 20)
			tcp_options(skb, l4 + 20, doff - 20, &r);
		r.payload_len = l4len - doff;
		r.l4_hlen = doff;
		pay = l4 + doff;
		paylen = have > doff ? have - doff : 0;
	} else if (proto == PROTO_UDP) {
		__u8 u[8];
		if (bpf_skb_load_bytes(skb, l4, u, 8))
			goto malformed;
		r.sport = (__u16)u[0] << 8 | u[1];
		r.dport = (__u16)u[2] << 8 | u[3];
		__u32 pl = l4len >= 8 ? l4len - 8 : 0;
		__u32 ul = (__u32)u[4] << 8 | u[5];
		if (ul >= 8 && ul - 8 < pl)
			pl = ul - 8;
		r.payload_len = pl;
		r.l4_hlen = 8;
		pay = l4 + 8;
		paylen = have > 8 ? have - 8 : 0;
		if (paylen > pl)
			paylen = pl;
	} else if (proto == PROTO_ICMP || proto == PROTO_ICMPV6) {
		__u8 c[8];
		if (bpf_skb_load_bytes(skb, l4, c, 8))
			goto malformed;
		int v6 = proto == PROTO_ICMPV6;
		r.icmp_type = c[0];
		r.icmp_code = c[1];
		r.payload_len = l4len >= 8 ? l4len - 8 : 0;
		if (is_echo(c[0], v6)) {
			r.sport = (__u16)c[4] << 8 | c[5];
			r.dport = r.sport;
		} else if (is_error(c[0], v6)) {
			icmp_quoted(skb, l4 + 8, &r);
		}
		if (filtered(&r, 0))
			goto skip;
		emit(skb, &r, 0, 0);
		return TC_ACT_UNSPEC;
	} else {
		r.payload_len = l4len;
		if (filtered(&r, 0))
			goto skip;
		emit(skb, &r, 0, 0);
		return TC_ACT_UNSPEC;
	}

	if (filtered(&r, 1))
		goto skip;
	__u32 n = 0;
	if (paylen > 0)
		n = snap_len(&r, paylen);
	emit(skb, &r, pay, n);
	return TC_ACT_UNSPEC;

skip:
	count(C_FILTERED, 1);
	return TC_ACT_UNSPEC;
malformed:
	count(C_MALFORMED, 1);
	return TC_ACT_UNSPEC;
not_ip:
	count(C_NOT_IP, 1);
	return TC_ACT_UNSPEC;
}

char __license[] SEC("license") = "Dual BSD/GPL";
