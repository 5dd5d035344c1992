# tamperscope — see README.md.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/tamperscope

.PHONY: all build demo test bench lab kafka-up kafka-down generate fuzz clean

all: build

# CGO_ENABLED=0: a static binary, and capture can drop its capabilities on
# every thread (docs/capture.md).
build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tamperscope

## demo: replay the captures shipped in lab/testdata and print the findings.
demo:
	scripts/setup.sh demo
	$(MAKE) build
	scripts/demo.sh

## test: the whole suite (set-up, vet, tests against a real Kafka broker, fuzz).
test:
	scripts/test.sh

## bench: replay benchmark against Suricata on a generated 2M-packet capture.
bench:
	scripts/setup.sh bench
	scripts/bench.sh

## lab: regenerate the censor-lab captures in lab/testdata (root).
lab:
	sh lab/setup.sh
	$(MAKE) build
	$(BIN) lab --seeds 1,2,3 --out lab/testdata

kafka-up:
	scripts/kafka.sh up

kafka-down:
	scripts/kafka.sh down

## generate: rebuild the eBPF objects with clang and bpf2go.
generate:
	$(GO) generate ./bpf/...

clean:
	rm -rf bin out
