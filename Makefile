# beamgate: build, test and fuzz entry points. `make help` lists targets.
# CI runs .ci/run, which installs Erlang/Elixir/OpenSSH and then `make test`.

GO       ?= go
# Go modules to vet and test (directories holding a go.mod).
MODULES  ?= . cookies/vaulttest
# How long `make fuzz` runs each Fuzz target.
FUZZTIME ?= 30s

.PHONY: help test build fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-13s %s\n", $$1, $$2}'

test: ## go vet, then every test (real BEAM nodes included) in each module
	@set -e; for m in $(MODULES); do \
		echo "== $$m: go vet ./..."; (cd $$m && $(GO) vet ./...); \
		echo "== $$m: go test -count=1 -timeout 30m ./..."; (cd $$m && $(GO) test -count=1 -timeout 30m ./...); \
	done

build: ## build ./cmd/beamgate into ./bin/beamgate
	$(GO) build -o bin/beamgate ./cmd/beamgate

fuzz: ## run each Fuzz target for FUZZTIME (default 30s)
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Where `make matrix` writes its Markdown result table (for the README).
MATRIX_OUT ?= bin/matrix.md

.PHONY: matrix
matrix: ## OTP 25/27/29 + Elixir interop through the relay, then through ssh -N -L and the front door (root; builds OTP 27/29 chroots once)
	@mkdir -p $(dir $(MATRIX_OUT))
	@set +e; BEAMGATE_MATRIX=1 BEAMGATE_MATRIX_OUT=$(abspath $(MATRIX_OUT)) $(GO) test -count=1 -timeout 60m \
		-run 'TestMatrix|OTP29|TestRelayClearsUnknownFlags|TestReleases|TestElixirReleases' \
		./gateway/relay/ ./internal/otp/; rc=$$?; \
		BEAMGATE_MATRIX=1 BEAMGATE_MATRIX_OUT=$(abspath $(MATRIX_OUT)) $(GO) test -count=1 -timeout 30m -run '^TestMatrixSSH$$' ./gateway/ || rc=1; \
		cat $(MATRIX_OUT) 2>/dev/null; exit $$rc

.PHONY: bench
bench: ## direct vs OpenSSH vs beamgate on one real node; prints the table, rewrites docs/benchmarks.md (~2 min)
	BEAMGATE_BENCH=1 $(GO) test -count=1 -run TestBench -timeout 60m -v ./internal/bench/

.PHONY: observer-gui
observer-gui: ## drive the real observer GUI (Xvfb) through beamgate dev, save screenshots (root, Debian)
	bash scripts/observer-gui.sh $(OBSERVER_GUI_OUT)
