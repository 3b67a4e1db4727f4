# The README's two commands: `make demo` and `make test`.
GO ?= go
STATICCHECK = $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS = ./...
FUZZTIME ?= 10s
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

# Each fuzz target for FUZZTIME (10s in `make test`; e.g. `make fuzz FUZZTIME=5m` to dig).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzKernels$$' -fuzztime $(FUZZTIME) ./op
	$(GO) test -run '^$$' -fuzz '^FuzzBoxCoding$$' -fuzztime $(FUZZTIME) ./rpn
	$(GO) test -run '^$$' -fuzz '^FuzzAssignInvariants$$' -fuzztime $(FUZZTIME) ./rpn
