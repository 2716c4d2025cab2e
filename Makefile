# halfback: make demo | test | cross | lint | bench | build | broker | temporal-cli | kcat | clean

GO ?= go
# Where go install puts tools: $GOBIN, else the first GOPATH entry's bin.
GOBIN := $(or $(GOBIN),$(shell $(GO) env GOBIN),$(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin)
STATICCHECK_VERSION := 0.8.2
STATICCHECK := $(GOBIN)/staticcheck
# workflowcheck flags non-deterministic code reachable from workflows.
WORKFLOWCHECK_VERSION := 0.6.0
WORKFLOWCHECK := $(GOBIN)/workflowcheck
# The Temporal CLI: `temporal server start-dev` for the demo and the
# end-to-end tests (worker/), built from its Go module.
TEMPORAL_CLI_VERSION := 1.5.1
TEMPORAL := $(GOBIN)/temporal

.PHONY: build test cross compat lint staticcheck workflowcheck temporal-cli kcat node bench demo broker clean

build:
	$(GO) build -o bin/halfback ./cmd/halfback

# The end-to-end tests in worker/ start a Temporal dev server from the
# pinned CLI (TEMPORAL_CLI_PATH); without it they fail, never skip. The
# Kafka mirror's tests read Kafka with Debian's kcat as an independent
# client, so it is installed first (see kcat).
test: temporal-cli kcat node
	$(GO) vet ./...
	$(MAKE) cross
	TEMPORAL_CLI_PATH="$(TEMPORAL)" $(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) compat

# Everything builds for macOS and Windows as well (internal/fsutil holds
# the system calls: F_FULLFSYNC, LockFileEx, ...); the tests run on Linux
# only, so these builds, and vet (which compiles the test files too; tests
# that need Linux or Unix live in _linux_test.go / //go:build unix files),
# are what keeps the other systems compiling.
cross:
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=windows GOARCH=amd64 $(GO) build ./...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	GOOS=windows GOARCH=amd64 $(GO) vet ./...

# The official RocketMQ Go client (v2.1.2) against an in-process name server
# and broker. A nested module keeps the client's dependencies out of go.mod.
# Run WITHOUT -race: the client itself has data races (for example
# internal/model.go SubscriptionData.Clone racing its rebalance), which the
# race detector reports inside the client's code, not ours.
# The client keeps broadcasting consumers' offsets in files; point them at a
# throwaway directory rather than $$HOME.
# compat/alions_test.go also runs ali-ons, a Node.js port of the Java
# client, pinned in compat/node/package-lock.json and installed with npm ci
# (make node provides node and npm).
compat: node
	cd compat/node && npm ci --no-audit --no-fund --loglevel=error
	cd compat && $(GO) vet ./... && \
	  dir=$$(mktemp -d) && env "rocketmq.client.localOffsetStoreDir=$$dir" $(GO) test -count=1 -timeout 15m ./...; \
	  status=$$?; rm -rf "$$dir"; exit $$status

lint: staticcheck workflowcheck
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd compat && $(STATICCHECK) ./...
	$(WORKFLOWCHECK) ./workflows/...
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

# Installs the pinned staticcheck unless that exact version is already there.
staticcheck:
	@$(STATICCHECK) -version 2>/dev/null | grep -qF "($(STATICCHECK_VERSION))" || \
	  GOBIN="$(GOBIN)" $(GO) install honnef.co/go/tools/cmd/staticcheck@v$(STATICCHECK_VERSION)

# Installs the pinned workflowcheck unless that exact version is already there.
workflowcheck:
	@$(GO) version -m "$(WORKFLOWCHECK)" 2>/dev/null | grep -qE '^\s+mod\s+go.temporal.io/sdk/contrib/tools/workflowcheck\s+v$(WORKFLOWCHECK_VERSION)\s' || \
	  GOBIN="$(GOBIN)" $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@v$(WORKFLOWCHECK_VERSION)

# Builds the pinned Temporal CLI with `go install` (several minutes, once)
# unless that version is installed. A `go install`ed CLI reports version
# 0.0.0-DEV to `temporal --version`, so the check reads the module version
# from the binary's build info and asks --version that it runs.
temporal-cli:
	@{ $(GO) version -m "$(TEMPORAL)" 2>/dev/null | grep -qE '^\s+mod\s+github.com/temporalio/cli\s+v$(TEMPORAL_CLI_VERSION)\s' && \
	  "$(TEMPORAL)" --version >/dev/null; } || \
	  { echo "building the Temporal CLI v$(TEMPORAL_CLI_VERSION) into $(GOBIN) (once; takes several minutes)"; \
	    GOBIN="$(GOBIN)" $(GO) install github.com/temporalio/cli/cmd/temporal@v$(TEMPORAL_CLI_VERSION); }

# Installs Debian's kcat (librdkafka's command-line client) unless it is on
# PATH; apt-get needs root, or sudo.
kcat:
	@command -v kcat >/dev/null || { \
	  echo "installing Debian's kcat"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -q kcat >/dev/null 2>&1 || \
	    { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q kcat >/dev/null; }; }
	@command -v kcat >/dev/null

# Installs Debian's nodejs and npm unless node and npm are on PATH (for
# compat/node); apt-get needs root, or sudo.
node:
	@{ command -v node && command -v npm; } >/dev/null || { \
	  echo "installing Debian's nodejs and npm"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -q nodejs npm >/dev/null 2>&1 || \
	    { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q nodejs npm >/dev/null; }; }
	@command -v node >/dev/null && command -v npm >/dev/null

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The order/payment demo (scripts/demo.sh): a Temporal dev server, the
# worker with its embedded broker, the coupon consumer and the starter;
# prints the outcome and the Temporal UI address. Ctrl-C stops it all.
demo: temporal-cli
	TEMPORAL="$(TEMPORAL)" ./scripts/demo.sh

# Runs the broker alone in the foreground on ./data (config.yaml); Ctrl-C
# stops it.
broker: build
	./bin/halfback broker --config config.yaml

# Removes build output only; ./data holds messages and is never deleted here.
clean:
	rm -rf bin/
