# beamgate: build, test and fuzz entry points. `make help` lists targets.
# CI runs .ci/run, which installs Erlang/Elixir/OpenSSH and then `make test`.

GO       ?= go
# Go modules to check and test (directories holding a go.mod).
MODULES  ?= . cookies/vaulttest deploy/kubernetes/manifesttest
# How long `make fuzz` runs each Fuzz target.
FUZZTIME ?= 30s
# How long `make fuzz-smoke` (part of `make test`) runs each Fuzz target.
FUZZ_SMOKE_TIME ?= 3s
# staticcheck, pinned: `go run` fetches and builds it through the module
# proxy, so nothing has to be installed by hand. v0.8.2 is staticcheck
# 2026.2.2, the newest release when pinned (builds with Go 1.26). Its
# checks are configured in staticcheck.conf.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
# The gofmt of the Go toolchain in use.
GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt

.PHONY: help test fmt-check vet staticcheck staticcheck-version race build fuzz fuzz-smoke

help: ## list the targets
	@grep -E "^[a-z0-9-]+:.*## " $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-13s %s\n", $$1, $$2}'

# The steps run one after another (also under make -j), fastest first.
test: ## fmt-check, vet, staticcheck, race (every test, real BEAM nodes included), fuzz-smoke; both modules
	@$(MAKE) --no-print-directory fmt-check
	@$(MAKE) --no-print-directory vet
	@$(MAKE) --no-print-directory staticcheck
	@$(MAKE) --no-print-directory race
	@$(MAKE) --no-print-directory fuzz-smoke

fmt-check: ## fail listing tracked .go files (testdata excluded) that gofmt would change
	@echo "== gofmt -l (tracked .go files, testdata excluded)"
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		files=$$(git ls-files -- '*.go'); \
	else \
		files=$$(find . -name '*.go' -not -path './.git/*'); \
	fi; \
	bad=$$(printf '%s\n' $$files | grep -Ev '(^|/)testdata/' | while read -r f; do [ -f "$$f" ] && echo "$$f"; done | xargs -r $(GOFMT) -l); \
	if [ -n "$$bad" ]; then echo "gofmt would change these files (run gofmt -w on them):"; echo "$$bad"; exit 1; fi

vet: ## go vet ./... in each module
	@set -e; for m in $(MODULES); do \
		echo "== $$m: go vet ./..."; (cd $$m && $(GO) vet ./...); \
	done

staticcheck: ## staticcheck (pinned STATICCHECK_VERSION, staticcheck.conf) in each module; zero findings
	@set -e; for m in $(MODULES); do \
		echo "== $$m: staticcheck ./..."; (cd $$m && $(STATICCHECK) ./...); \
	done

staticcheck-version: ## print the pinned staticcheck's version (fetches and builds it on first use)
	@$(STATICCHECK) -version

# -race needs cgo, so a C compiler (.ci/run installs gcc and libc6-dev).
race: ## go test -race, every test (real BEAM nodes included), in each module
	@set -e; for m in $(MODULES); do \
		echo "== $$m: go test -race -count=1 -timeout 30m ./..."; (cd $$m && CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...); \
	done

# The version `beamgate version` prints: the commit (and -dirty) when
# built from a git checkout. Without it, beamgate reads Go's own VCS stamp
# (go install; not go run, nor GOFLAGS=-buildvcs=false).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

build: ## build ./cmd/beamgate into ./bin/beamgate, stamped with VERSION (the git commit)
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/beamgate ./cmd/beamgate

# Fuzz targets are found by grepping each package's _test.go files for
# `func FuzzX(`, so packages without one (cookies/vaulttest) are not built.
fuzz: ## run each Fuzz target in each module for FUZZTIME (default 30s)
	@set -e; for m in $(MODULES); do \
		(cd $$m && for pd in $$($(GO) list -f '{{.ImportPath}}={{.Dir}}' ./...); do \
			pkg=$${pd%%=*}; dir=$${pd#*=}; \
			for f in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$dir"/*_test.go 2>/dev/null | sort -u); do \
				echo "== $$pkg $$f ($(FUZZTIME))"; \
				$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
			done; \
		done); \
	done

fuzz-smoke: ## the fuzz loop for FUZZ_SMOKE_TIME (default 3s) per target; part of `make test`
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZ_SMOKE_TIME)

# Where `make matrix` writes its Markdown result table (for the README).
MATRIX_OUT ?= bin/matrix.md

.PHONY: matrix
matrix: ## OTP 25/27/29 + Elixir interop through the relay, then through ssh -N -L and the front door (root; builds OTP 27/29 chroots once)
	@mkdir -p $(dir $(MATRIX_OUT))
	@set +e; BEAMGATE_MATRIX=1 BEAMGATE_MATRIX_OUT=$(abspath $(MATRIX_OUT)) $(GO) test -count=1 -timeout 60m \
		-run 'TestMatrix|OTP29|TestRelayClearsUnknownFlags|TestReleases|TestElixirReleases' \
		./gateway/relay/ ./internal/otp/; rc=$$?; \
		BEAMGATE_MATRIX=1 BEAMGATE_MATRIX_OUT=$(abspath $(MATRIX_OUT)) $(GO) test -count=1 -timeout 30m -run '^TestMatrixSSH$$|^TestBreakGlassShellOTP$$|^TestRemshUnderGrantOTP$$' ./gateway/ || rc=1; \
		cat $(MATRIX_OUT) 2>/dev/null; exit $$rc

.PHONY: bench
bench: ## direct vs OpenSSH vs beamgate on one real node; prints the table, rewrites docs/benchmarks.md (~2 min)
	BEAMGATE_BENCH=1 $(GO) test -count=1 -run TestBench -timeout 60m -v ./internal/bench/

.PHONY: bench-reload
bench-reload: ## SIGHUP with 200 live relayed sessions: a user added (all kept), then their user removed (all cut) (~1 min)
	BEAMGATE_BENCH=1 $(GO) test -count=1 -run TestReloadWithLiveSessions -timeout 30m -v ./internal/bench/

.PHONY: bench-login
bench-login: ## one ssh command with the stock client, login included: beamgate with and without TCP_QUICKACK, and OpenSSH sshd (~30 s)
	BEAMGATE_BENCH=1 $(GO) test -count=1 -run TestLoginTimings -timeout 10m -v ./internal/bench/

.PHONY: bench-cluster
bench-cluster: ## whole-cluster recipe: ssh -N to every node connected (4 and 16 real nodes), connect-all vs direct, cluster top vs one node (~1 min)
	BEAMGATE_BENCH=1 $(GO) test -count=1 -run TestClusterTimings -timeout 20m -v ./gateway/

.PHONY: bench-checkpoint bench-verify
bench-checkpoint: ## what signed audit checkpoints add to a relayed rpc:call (1h vs 10s vs 1s interval, alternated); rewrites its section of docs/benchmarks.md (~9 min)
	BEAMGATE_BENCH=1 $(GO) test -count=1 -run TestAuditCheckpointCost -timeout 60m -v ./internal/bench/

bench-verify: ## write a ~1 GiB rotated audit set, time audit.VerifySet and `beamgate audit verify` on it; rewrites its section of docs/benchmarks.md (needs ~2.5 GiB free in /tmp)
	BEAMGATE_BENCH=1 $(GO) test -count=1 -run TestAuditVerifySet -timeout 60m -v ./internal/bench/

.PHONY: observer-gui
observer-gui: ## drive the real observer GUI (Xvfb) through beamgate dev, save screenshots (root, Debian)
	bash scripts/observer-gui.sh $(OBSERVER_GUI_OUT)

# The Kubernetes manifests (deploy/kubernetes). Their strict-decoding test
# is the deploy/kubernetes/manifesttest module, run by `make test`.
.PHONY: k8s-checksum
k8s-checksum: ## write configmap.yaml's SHA-256 into the Deployment's checksum/config annotation (rolls the pods on apply)
	cd deploy/kubernetes/manifesttest && $(GO) test -count=1 -run '^TestConfigChecksum$$' . -args -update-checksum

# The container image (deploy/image/Containerfile): FROM scratch, a static
# binary and the build host's CA bundle. Needs buildah; not part of `make
# test` (CI may have no container storage). The tag is VERSION, or dev.
IMAGE_TAG     ?= $(or $(VERSION),dev)
IMAGE         ?= beamgate:$(IMAGE_TAG)
IMAGE_CONTEXT ?= bin/image-context
IMAGE_ARCHIVE ?= bin/beamgate-image.tar
CA_BUNDLE     ?= /etc/ssl/certs/ca-certificates.crt
BUILDAH       ?= buildah --storage-driver vfs

.PHONY: image image-check
image: ## build the image (static binary, FROM scratch, user 65532) with buildah and write bin/beamgate-image.tar (OCI archive)
	@test -r $(CA_BUNDLE) || { echo "no CA bundle at $(CA_BUNDLE) (apt-get install ca-certificates, or set CA_BUNDLE)"; exit 1; }
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(IMAGE_CONTEXT)/beamgate ./cmd/beamgate
	cp $(CA_BUNDLE) $(IMAGE_CONTEXT)/ca-certificates.crt
	$(BUILDAH) bud --file deploy/image/Containerfile --build-arg VERSION=$(VERSION) --tag $(IMAGE) $(IMAGE_CONTEXT)
	rm -f $(IMAGE_ARCHIVE)
	$(BUILDAH) push $(IMAGE) oci-archive:$(IMAGE_ARCHIVE):$(IMAGE)
	@ls -l $(IMAGE_ARCHIVE)

image-check: ## inspect the image from `make image` and run /beamgate version and help inside it, as uid 65532 (chroot; root)
	BUILDAH="$(BUILDAH)" bash deploy/image/check.sh $(IMAGE) $(IMAGE_ARCHIVE)
