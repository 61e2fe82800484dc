# Steward: `make test` is what CI runs (through .ci/run).
GO ?= go
PKGS := ./...
# Benchmarks and fuzzers take their own targets; tests must stay under a few minutes.
TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: all build test vet fmt-check staticcheck fuzz bench demo clean

all: build

build:
	$(GO) build -o bin/steward ./cmd/steward

test: vet fmt-check staticcheck
	$(GO) test $(TEST_FLAGS) $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# staticcheck runs when installed (.ci/run installs it); under CI it is required.
staticcheck:
	@if command -v staticcheck >/dev/null 2>&1; then staticcheck $(PKGS); \
	elif [ -x "$$($(GO) env GOPATH)/bin/staticcheck" ]; then "$$($(GO) env GOPATH)/bin/staticcheck" $(PKGS); \
	elif [ "$$CI" = "true" ]; then echo "staticcheck missing under CI"; exit 1; \
	else echo "staticcheck not installed; skipping (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

# Short fuzz runs of every fuzz target (seeds always run in `make test`).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime $(FUZZTIME) ./internal/config
	$(GO) test -run XXX -fuzz FuzzVerifyJSONL -fuzztime $(FUZZTIME) ./internal/audit

bench:
	$(GO) run ./bench/auditbench
	$(GO) run ./bench/serverbench

demo:
	$(GO) run ./cmd/steward demo

clean:
	rm -rf bin
