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
[ -s "$cap" ] || go run ./bench/gencap -o "$cap"
go build -o "$cache/tamperscope" ./cmd/tamperscope
packets=$(capinfos -c -M "$cap" 2>/dev/null | awk '/Number of packets/ {print $NF}')
cat "$cap" >/dev/null # page cache: both tools read from memory

measure() { # name, command...: prints wall seconds and peak RSS KiB
	local name=$1
	shift
	local t
	t=$(mktemp)
	/usr/bin/time -f '%e %M' -o "$t" "$@" >/dev/null 2>"$cache/$name.log" || {
		echo "bench.sh: $name failed:" >&2
		tail -5 "$cache/$name.log" >&2
		exit 1
	}
	cat "$t"
	rm -f "$t"
}

echo "== replay of $cap ($packets packets)"
rm -rf "$cache/out"
read -r ts_s ts_kb < <(measure tamperscope "$cache/tamperscope" replay --quiet --out "$cache/out" "$cap")
rm -rf "$cache/suricata"
mkdir -p "$cache/suricata"
read -r su_s su_kb < <(measure suricata suricata -r "$cap" -k none -S /dev/null --runmode single -l "$cache/suricata" --set unix-command.enabled=no)
python3 - "$packets" "$ts_s" "$ts_kb" "$su_s" "$su_kb" <<'PY'
import sys
n, ts, tk, ss, sk = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"{'tool':<34}{'seconds':>9}{'Mpkt/s':>9}{'peak MiB':>10}")
print(f"{'tamperscope replay (flows+Parquet)':<34}{ts:>9.2f}{n/ts/1e6:>9.2f}{tk/1024:>10.0f}")
print(f"{'suricata --runmode single':<34}{ss:>9.2f}{n/ss/1e6:>9.2f}{sk/1024:>10.0f}")
print(f"speed ratio tamperscope/suricata: {ss/ts:.1f}x (target >= 6x); peak memory {tk/1024:.0f} MiB (target <= 200 MiB)")
PY

echo
echo "== per-packet hot paths (allocations per packet must be 0)"
go test -run '^$' -bench 'BenchmarkDecode$|BenchmarkUpdate$|BenchmarkReadPcap$' -benchmem -benchtime 2000000x \
	./analyzer/decode/ ./analyzer/flow/ ./capture/pcapfile/ | grep -E '^Benchmark|^ok'
