#!/usr/bin/env bash
# Replay benchmark: a deterministic ~2M-packet capture (bench/gencap), replayed
# by tamperscope with flows, findings and Parquet output, side by side with
# Suricata in single runmode on the same file, plus the per-packet
# micro-benchmarks (allocations per packet in decode and flow update).
# Figures are ratios measured in the same run: the machine is shared.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cache=.cache/bench
mkdir -p "$cache"
cap=$cache/bench.pcap
# fresh FILE: FILE exists and the generator has not changed since.
fresh() { [ -s "$1" ] && [ -z "$(find internal/synth bench/gencap -name '*.go' -newer "$1" -print -quit)" ]; }
fresh "$cap" || go run ./bench/gencap -o "$cap"
go build -o "$cache/tamperscope" ./cmd/tamperscope
packets=$(capinfos -c -M "$cap" 2>/dev/null | awk '/Number of packets/ {print $NF}')
# cache FILE: every tool reads FILE from the page cache, filled the same way
# on every run: its pages are dropped, then read once, as a capture fresh
# from disk. How the cache was filled matters to a reader that maps the
# file: read-ahead fills it with 2 MiB folios, which map with one page
# fault each, while the pages gencap's writes left behind map 64 KiB per
# fault.
cache() {
	dd if="$1" iflag=nocache count=0 status=none
	cat "$1" >/dev/null
}
cache "$cap"

gobench() { # go test arguments: prints the benchmark lines; on failure, the end of the output
	local log
	log=$(mktemp)
	if ! go test "$@" >"$log" 2>&1; then
		echo "bench.sh: go test $* failed:" >&2
		tail -20 "$log" >&2
		rm -f "$log"
		exit 1
	fi
	grep -E '^Benchmark|^ok' "$log"
	rm -f "$log"
}

measure() { # name, command...: prints wall seconds, peak RSS KiB, CPU seconds
	local name=$1
	shift
	local t
	t=$(mktemp)
	/usr/bin/time -f '%e %M %U %S' -o "$t" "$@" >/dev/null 2>"$cache/$name.log" || {
		echo "bench.sh: $name failed:" >&2
		tail -5 "$cache/$name.log" >&2
		exit 1
	}
	awk '{print $1, $2, $3 + $4}' "$t"
	rm -f "$t"
}

# The host's speed varies from run to run: each tool runs $runs times, the
# two alternating, and the figures are medians (and the ratio of the
# medians), with the spread of the ratio over the pairs of runs.
runs=${BENCH_RUNS:-5}
echo "== replay of $cap ($packets packets), $runs runs each, alternating"
results=$(mktemp)
for i in $(seq "$runs"); do
	rm -rf "$cache/out"
	echo "tamperscope $(measure tamperscope "$cache/tamperscope" replay --quiet --out "$cache/out" "$cap")" >>"$results"
	rm -rf "$cache/suricata"
	mkdir -p "$cache/suricata"
	echo "suricata $(measure suricata suricata -r "$cap" -k none -S /dev/null --runmode single -l "$cache/suricata" --set unix-command.enabled=no)" >>"$results"
done
python3 - "$packets" "$results" <<'PY'
import sys, statistics as st
n = int(sys.argv[1])
runs = {"tamperscope": [], "suricata": []}
for line in open(sys.argv[2]):
    tool, s, kb, _ = line.split()
    runs[tool].append((float(s), float(kb)))
ts, su = runs["tamperscope"], runs["suricata"]
med = lambda rs: st.median(s for s, _ in rs)
peak = lambda rs: max(kb for _, kb in rs) / 1024
print(f"{'tool (median of ' + str(len(ts)) + ' runs)':<34}{'seconds':>9}{'Mpkt/s':>9}{'peak MiB':>10}")
print(f"{'tamperscope replay (flows+Parquet)':<34}{med(ts):>9.2f}{n/med(ts)/1e6:>9.2f}{peak(ts):>10.0f}")
print(f"{'suricata --runmode single':<34}{med(su):>9.2f}{n/med(su)/1e6:>9.2f}{peak(su):>10.0f}")
pairs = sorted(b[0] / a[0] for a, b in zip(ts, su))
print(f"speed ratio tamperscope/suricata: {med(su)/med(ts):.1f}x (target >= 6x; {pairs[0]:.1f}-{pairs[-1]:.1f}x over the pairs of runs); "
      f"peak memory {peak(ts):.0f} MiB (target <= 200 MiB)")
PY
rm -f "$results"

echo
echo "== per-packet hot paths (allocations per packet must be 0)"
gobench -run '^$' -bench 'BenchmarkDecode$|BenchmarkUpdate$|BenchmarkReadPcap$' -benchmem -benchtime 2000000x \
	./analyzer/decode/ ./analyzer/flow/ ./capture/pcapfile/

# ---------------------------------------------------------------------------
# Live capture: records/s delivered to user space and loss, the eBPF
# program driven by BPF_PROG_TEST_RUN (a traffic generator on 2 cores tops
# out near 0.4 Mpps) beside AF_PACKET under a UDP flood in a network
# namespace. Needs root.
echo
echo "== live capture (eBPF ring and AF_PACKET)"
gobench -run '^$' -bench 'BenchmarkRing$|BenchmarkAFPacket$' -benchtime 2000000x ./capture/ebpf/

# ---------------------------------------------------------------------------
# Distributed mode: a ~800k-packet capture through a private broker of
# scripts/kafka.sh (its own port and data; the jars of the repository's
# cache, linked), published by `replay --kafka` and consumed by
# `analyze --idle-exit`, each timed alone, beside the in-process replay of
# the same file, in BENCH_KAFKA_RUNS passes (default 3). BENCH_KAFKA_PORT
# moves the broker (default 29392; the controller takes the next port).
echo
echo "== distributed mode (Kafka)"
kport=${BENCH_KAFKA_PORT:-29392}
kcache=$root/$cache/kafka
kcap=$cache/bench-kafka.pcap
idle=3
fresh "$kcap" || go run ./bench/gencap -flows 20000 -o "$kcap"
kpackets=$(capinfos -c -M "$kcap" 2>/dev/null | awk '/Number of packets/ {print $NF}')
cache "$kcap"
scripts/kafka.sh fetch
go build -o "$cache/kafkafloor" ./bench/kafkafloor
mkdir -p "$kcache"
ln -sfn "$root/.cache/kafka/jars" "$kcache/jars"
kafka() { TAMPERSCOPE_KAFKA_PORT=$kport TAMPERSCOPE_KAFKA_CACHE=$kcache scripts/kafka.sh "$@"; }
kafka up >/dev/null
trap 'kafka down' EXIT
kaddr=127.0.0.1:$kport
kpid=$(cat "$kcache/kafka.pid")
tck=$(getconf CLK_TCK)
broker_cpu() { awk -v t="$tck" '{printf "%.2f", ($14 + $15) / t}' "/proc/$kpid/stat"; }
ktopic=bench-$(date +%s%N)


rm -rf "$cache/kout-warm"
# Warm-up, as for any JVM benchmark: untimed passes of the same capture
# through the broker. A fresh broker creates its offsets topic at the first
# group join and runs its produce and fetch paths interpreted until the JIT
# has compiled them; a broker in service has long done both. Its CPU per
# pass kept falling over the first three passes here, then held.
# A failed pass ends the bench with its log, as a measured one does.
for w in 1 2 3; do
	measure kafka-warm-replay "$cache/tamperscope" replay --quiet --kafka "$kaddr" --topic "$ktopic-warm$w" --partitions 4 "$kcap" >/dev/null
	measure kafka-warm-analyze "$cache/tamperscope" analyze --quiet --kafka "$kaddr" --topic "$ktopic-warm$w" --group "$ktopic-warm$w" \
		--out "$cache/kout-warm" --idle-exit 1s --findings-topic - >/dev/null
	rm -rf "$cache/kout-warm"
done
# The host's speed varies: the three measures run $kruns times in turn,
# each pass publishing to a topic of its own, and the figures are medians,
# the ratio of the medians with its range over the passes.
kruns=${BENCH_KAFKA_RUNS:-3}
kresults=$(mktemp)
for r in $(seq "$kruns"); do
	rm -rf "$cache/kout-inproc" "$cache/kout"
	read -r in_s in_kb in_cpu < <(measure kafka-inproc "$cache/tamperscope" replay --quiet --out "$cache/kout-inproc" "$kcap")
	b0=$(broker_cpu)
	read -r pub_s pub_kb pub_cpu < <(measure "kafka-replay-$r" "$cache/tamperscope" replay --quiet --kafka "$kaddr" --topic "$ktopic-$r" --partitions 4 "$kcap")
	b1=$(broker_cpu)
	read -r an_s an_kb an_cpu < <(measure "kafka-analyze-$r" "$cache/tamperscope" analyze --quiet --kafka "$kaddr" --topic "$ktopic-$r" \
		--group "$ktopic-$r" --out "$cache/kout" --idle-exit "${idle}s")
	b2=$(broker_cpu)
	# The floor: the same messages produced and fetched again by a bare
	# kafka-go client (bench/kafkafloor), no tamperscope work around them.
	"$cache/kafkafloor" -brokers "$kaddr" -topic "$ktopic-$r" -broker-pid "$kpid" >"$cache/kafka-floor-$r.log"
	echo "$cache/kafka-replay-$r.log $cache/kafka-analyze-$r.log $cache/kafka-floor-$r.log $in_s $in_kb $in_cpu $pub_s $pub_kb $pub_cpu $an_s $an_kb $an_cpu $b0 $b1 $b2" >>"$kresults"
done
python3 - "$kpackets" "$idle" "$kresults" <<'PY'
import sys, re, datetime, statistics as st
n, idle = int(sys.argv[1]), float(sys.argv[2])
def at(msg, text):
    m = re.search(r'time=(\S+) level=\S+ msg="' + re.escape(msg), text)
    return datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
passes, setup = [], []
for line in open(sys.argv[3]):
    publog, log, floorlog, *v = line.split()
    publog, log = open(publog).read(), open(log).read()
    fl = dict(kv.split("=") for kv in open(floorlog).read().split())
    ins, ink, inc, ps, pk, pc, as_, ak, ac, b0, b1, b2 = map(float, v)
    # replay --kafka's work runs from the publisher being ready (topic
    # created, partitions known) until every message is acknowledged: like
    # analyze's group join, creating the topic is set-up, not throughput.
    pw = at("kafka publisher closed", publog) - at("kafka publisher ready", publog)
    # analyze's work runs from its partitions' assignment until every flow
    # is written and committed, less the --idle-exit wait after the last
    # message (the idle check follows each 1 s poll from that message on,
    # so the wait is close to exact); before the assignment it joins the
    # group, after the end it leaves it.
    assigned, written, ended = at("kafka subscriber: assigned", log), at("stream ended", log), at("analyze ended", log)
    aw = max(written - assigned - idle, 1e-3)
    setup.append((ps - pw, as_ - (ended - assigned), ended - written))
    passes.append({
        "in": (ins, ink, inc, None),
        "pub": (pw, pk, pc, b1 - b0),
        "an": (aw, ak, ac, b2 - b1),
        "e2e": (pw + aw, None, pc + ac, b2 - b0),
        "floor": (float(fl["produce_s"]) + float(fl["fetch_s"]), None,
                  float(fl["produce_cpu"]) + float(fl["fetch_cpu"]), float(fl["produce_broker_cpu"]) + float(fl["fetch_broker_cpu"])),
    })
med = lambda xs: st.median(xs)
col = lambda k, i: med(p[k][i] for p in passes)
print(f"set-up, medians: publish {med(s[0] for s in setup):.2f}s to start and create the topic; "
      f"analyze {med(s[1] for s in setup):.2f}s to start and join the group, {med(s[2] for s in setup):.2f}s to leave it "
      f"({idle:.0f}s idle-exit wait subtracted)")
print(f"{n} packets, 4 partitions, medians of {len(passes)} passes; CPU seconds are user+sys of the process, broker CPU is the JVM's meanwhile")
print(f"{'stage':<36}{'seconds':>9}{'Mpkt/s':>9}{'peak MiB':>10}{'CPU s':>8}{'broker CPU s':>14}{'vs in-process':>15}")
ins = col("in", 0)
for key, name in [("in", "replay in process (reference)"), ("pub", "replay --kafka (publish, acked)"),
                  ("an", f"analyze (less {idle:.0f}s idle-exit)"), ("e2e", "end to end (publish + analyze)"),
                  ("floor", "Kafka alone: same messages, bare")]:
    s = col(key, 0)
    bc = col(key, 3) if passes[0][key][3] is not None else None
    mib = f"{max(p[key][1] for p in passes)/1024:.0f}" if passes[0][key][1] is not None else "-"
    bcs = f"{bc:.2f}" if bc is not None else "-"
    print(f"{name:<36}{s:>9.2f}{n/s/1e6:>9.2f}{mib:>10}{col(key, 2):>8.2f}{bcs:>14}{ins/s:>14.2f}x")
ratios = sorted(p["in"][0] / p["e2e"][0] for p in passes)
print(f"end to end vs in-process over the passes: {ratios[0]:.2f}-{ratios[-1]:.2f}x (target >= 0.5x); "
      f"end to end {min(n / p['e2e'][0] for p in passes)/1e6:.2f}-{max(n / p['e2e'][0] for p in passes)/1e6:.2f} Mpkt/s (target >= 1)")
# Where the time goes: a stage whose own CPU fills its wall time is
# bound by its own CPU; otherwise by the broker when the broker's CPU
# does, otherwise it waits (network round trips, acks, fetch latency).
# The broker's CPU of the analyze stage spans the idle wait too: an upper
# bound.
def verdict(name, key):
    wall, own, broker = col(key, 0), col(key, 2), col(key, 3)
    if own >= 0.8 * wall:
        return f"{name}: CPU-bound in tamperscope ({own/wall:.0%} of a core)"
    if broker >= 0.8 * wall:
        return f"{name}: broker-bound (broker {broker/wall:.0%} of a core, tamperscope {own/wall:.0%})"
    return f"{name}: waiting (tamperscope {own/wall:.0%}, broker {broker/wall:.0%} of a core: round trips and acks)"
print("bottleneck:", verdict("publish", "pub") + ";", verdict("analyze", "an"))
# The budget of the 0.5x target, and how much of it the broker and client
# take before tamperscope does anything.
fl = col("floor", 0)
print(f"at 0.5x the end to end may take {2*ins:.2f}s; the bare Kafka transport takes {fl:.2f}s of it "
      f"({fl/ins:.2f}x the in-process time), which leaves {2*ins-fl:.2f}s for reading, encoding, decoding "
      f"and analysing, against {ins:.2f}s for reading and analysing in process")
PY
rm -f "$kresults"
