# The README's two commands: `make demo` and `make test`.
GO ?= go
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
STATICCHECK = $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS = ./...
BENCHTIME ?= 1s
BENCHCOUNT ?= 1

.PHONY: test fmt fmt-check vet lint unit bench bench-roi demo fuzz fma-check

test: fmt-check vet lint unit fma-check fuzz

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet $(PKGS)

lint:
	$(STATICCHECK) $(PKGS)

# The second and third lines run the op's and roi's tests on the Go loops alone (no AVX2
# kernels), as on other architectures.
unit:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	$(GO) test -tags purego -count=1 ./op
	$(GO) test -tags purego -count=1 ./roi

# Every benchmark once, then the performance targets of the op on the default path (BenchmarkPerfTargets:
# 2.36M float32 forward+backward, >= 40x the composed baseline, <= 1.5x the memory floor, <= 1.2
# gradient tensors allocated per step), checked from its metrics.
bench:
	$(GO) test -run '^$$' -bench '.' -skip 'PerfTargets' -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) $(PKGS)
	$(GO) test -run '^$$' -bench 'PerfTargets' -benchtime 1x -v ./op | awk '\
	  { print } \
	  /^BenchmarkPerfTargets/ { for (i = 2; i < NF; i++) m[$$(i+1)] = $$i; seen = 1 } \
	  END { if (!seen) { print "bench: no BenchmarkPerfTargets result"; exit 1 } \
	        ok = m["x-vs-composed"] >= 40 && m["x-of-floor"] <= 1.5 && m["grad-tensors/op"] <= 1.2; \
	        printf "performance targets (default path): %.1fx the composed baseline (>= 40), %.2fx the memory floor (<= 1.5), %.3f gradient tensors allocated (<= 1.2): %s\n", \
	          m["x-vs-composed"], m["x-of-floor"], m["grad-tensors/op"], ok ? "met" : "MISSED"; exit !ok }'

# RoIAlign and RoIPool side by side with torchvision 0.14 on the same workload (2 threads each):
# roi/testdata/torch_bench.py, then the Go benchmarks (default call and floor). Needs python3-torch.
bench-roi:
	/usr/bin/python3 roi/testdata/torch_bench.py 2 7
	$(GO) test -run '^$$' -bench '.' -benchtime 7x -benchmem ./roi

demo:
	$(GO) run ./cmd/demo

# Each fuzz target, bounded by an execution count (about 10 s each here). Counts, not durations:
# Go 1.26's fuzz coordinator can fail a duration-bounded run with a spurious "context deadline
# exceeded" (golang/go#75804, fixed in Go 1.27). Dig deeper with e.g. `make fuzz FUZZ_KERNELS=1000000x`.
FUZZ_KERNELS ?= 30000x
FUZZ_BOXES ?= 60000x
FUZZ_ASSIGN ?= 25000x
FUZZ_WINDOW ?= 20000x
FUZZ_ROI ?= 30000x
FUZZ_ROI_BAND ?= 30000x
FUZZ_FRCNN ?= 25000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzKernels$$' -fuzztime $(FUZZ_KERNELS) ./op
	$(GO) test -run '^$$' -fuzz '^FuzzBoxCoding$$' -fuzztime $(FUZZ_BOXES) ./rpn
	$(GO) test -run '^$$' -fuzz '^FuzzAssignInvariants$$' -fuzztime $(FUZZ_ASSIGN) ./rpn
	$(GO) test -run '^$$' -fuzz '^FuzzWindowExtreme$$' -fuzztime $(FUZZ_WINDOW) ./rpn
	$(GO) test -run '^$$' -fuzz '^FuzzRoIOps$$' -fuzztime $(FUZZ_ROI) ./roi
	$(GO) test -run '^$$' -fuzz '^FuzzPoolBand$$' -fuzztime $(FUZZ_ROI_BAND) ./roi
	$(GO) test -run '^$$' -fuzz '^FuzzTargetInvariants$$' -fuzztime $(FUZZ_FRCNN) ./fastrcnn

# rpn's arithmetic gives the same bits in GOAMD64=v1 and v3 builds (no fused multiply-adds):
# TestArithmeticDigest hashes IoU, box coding, anchors, assignment and the objectness loss, and
# the two builds must print one digest.
fma-check:
	@n=$$(for v in v1 v3; do GOAMD64=$$v $(GO) test -count=1 -run '^TestArithmeticDigest$$' -v ./rpn | grep -o 'digest [0-9a-f]*'; done | sort -u | wc -l); \
	if [ "$$n" != 1 ]; then echo "fma-check: rpn digests differ between GOAMD64=v1 and v3"; exit 1; fi; echo "fma-check: rpn bit-identical on GOAMD64=v1 and v3"
