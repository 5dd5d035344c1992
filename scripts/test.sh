#!/usr/bin/env bash
# The whole test suite: set-up, vet, unit and integration tests against a
# real Kafka broker, short runs of every fuzz target. With
# TAMPERSCOPE_REQUIRE_ALL=1 tests that need root, a kernel feature or the
# broker fail instead of skipping.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# A count, not a duration: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a -fuzztime duration runs out mid-call
# (golang/go#75804).
fuzztime=${FUZZTIME:-30000x}

scripts/setup.sh test
scripts/bpf-check.sh
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '_bpfel.go$') || true)
if [ -n "$unformatted" ]; then
	echo "test.sh: not gofmt'ed: $unformatted" >&2
	exit 1
fi

eval "$(scripts/kafka.sh up)"
trap 'scripts/kafka.sh down' EXIT

go test -json -count=1 -timeout 30m ./... 2>&1 | scripts/gotest-summary.py

# Every fuzz target runs briefly so a crash found by a new seed shows up.
passed=0
while IFS=: read -r file fn; do
	pkg=./$(dirname "$file")
	go test -run='^$' -fuzz="^${fn}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/tamperscope-fuzz.log 2>&1 || {
		cat /tmp/tamperscope-fuzz.log
		echo "test.sh: fuzz target $fn in $pkg failed" >&2
		exit 1
	}
	passed=$((passed + 1))
done < <(git grep -n -E '^func Fuzz[A-Za-z0-9_]+\(' -- '*_test.go' | sed -E 's/^([^:]+):[0-9]+:func (Fuzz[A-Za-z0-9_]+)\(.*/\1:\2/')
echo "fuzz: $passed passed, 0 failed"
