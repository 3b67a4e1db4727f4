# The README's two commands: `make demo` and `make test`.
GO ?= go
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
STATICCHECK = $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS = ./...
BENCHTIME ?= 1s
BENCHCOUNT ?= 1

.PHONY: test fmt fmt-check vet lint unit bench demo fuzz

test: fmt-check vet lint unit fuzz

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet $(PKGS)

lint:
	$(STATICCHECK) $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) $(PKGS)
	SMOOTHL1_PERF=1 $(GO) test -count=1 -run 'PerfTargets' -v $(PKGS) | grep -v '^=== RUN'

demo:
	$(GO) run ./cmd/demo

# Each fuzz target, bounded by an execution count (about 10 s each here). Counts, not durations:
# Go 1.26's fuzz coordinator can fail a duration-bounded run with a spurious "context deadline
# exceeded" (golang/go#75804, fixed in Go 1.27). Dig deeper with e.g. `make fuzz FUZZ_KERNELS=1000000x`.
FUZZ_KERNELS ?= 30000x
FUZZ_BOXES ?= 60000x
FUZZ_ASSIGN ?= 25000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzKernels$$' -fuzztime $(FUZZ_KERNELS) ./op
	$(GO) test -run '^$$' -fuzz '^FuzzBoxCoding$$' -fuzztime $(FUZZ_BOXES) ./rpn
	$(GO) test -run '^$$' -fuzz '^FuzzAssignInvariants$$' -fuzztime $(FUZZ_ASSIGN) ./rpn
