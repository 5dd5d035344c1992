#!/usr/bin/env bash
# Regenerates the eBPF objects and fails when they differ from the
# committed ones, so bpf/ never holds a stale .o or _bpfel.go.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
go generate ./bpf/...
if ! git diff --exit-code --stat bpf/; then
	echo "bpf-check.sh: generated files in bpf/ are stale; run 'make generate' and commit them" >&2
	exit 1
fi
