#!/usr/bin/env bash
# The main job on the captures shipped in the repository: the censor-lab
# scenarios in lab/testdata (SNI resets and blackholes, IP blocks, throttling,
# GFW-style injection, residual blocking, QUIC blocking, benign controls).
# Prints the findings table and writes Parquet datasets to out/demo.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
shopt -s nullglob
caps=(lab/testdata/*/capture.pcap)
if [ ${#caps[@]} -eq 0 ]; then
	echo "demo.sh: no captures in lab/testdata; run 'make lab' as root to make them" >&2
	exit 1
fi
rm -rf out/demo
bin/tamperscope replay --out out/demo "${caps[@]}"
echo
echo "Datasets: $(find out/demo -name '*.parquet' | wc -l) Parquet files under out/demo (flows/, findings/)"
bin/tamperscope report out/demo -o out/demo/report.html
echo "Report: $root/out/demo/report.html"
