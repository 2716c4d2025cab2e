# halfback: make demo | test | lint | bench | build | clean

GO ?= go
# Where go install puts tools: $GOBIN, else the first GOPATH entry's bin.
GOBIN := $(or $(GOBIN),$(shell $(GO) env GOBIN),$(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin)
STATICCHECK_VERSION := 0.8.2
STATICCHECK := $(GOBIN)/staticcheck

.PHONY: build test compat lint staticcheck bench demo clean

build:
	$(GO) build -o bin/halfback ./cmd/halfback

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) compat

# The official RocketMQ Go client (v2.1.2) against an in-process name server
# and broker. A nested module keeps the client's dependencies out of go.mod.
# Run WITHOUT -race: the client itself has data races (for example
# internal/model.go SubscriptionData.Clone racing its rebalance), which the
# race detector reports inside the client's code, not ours.
# The client keeps broadcasting consumers' offsets in files; point them at a
# throwaway directory rather than $$HOME.
compat:
	cd compat && $(GO) vet ./... && \
	  dir=$$(mktemp -d) && env "rocketmq.client.localOffsetStoreDir=$$dir" $(GO) test -count=1 -timeout 15m ./...; \
	  status=$$?; rm -rf "$$dir"; exit $$status

lint: staticcheck
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd compat && $(STATICCHECK) ./...
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

# Installs the pinned staticcheck unless that exact version is already there.
staticcheck:
	@$(STATICCHECK) -version 2>/dev/null | grep -qF "($(STATICCHECK_VERSION))" || \
	  GOBIN="$(GOBIN)" $(GO) install honnef.co/go/tools/cmd/staticcheck@v$(STATICCHECK_VERSION)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Runs the broker in the foreground on ./data (config.yaml); Ctrl-C stops it.
demo: build
	./bin/halfback broker --config config.yaml

# Removes build output only; ./data holds messages and is never deleted here.
clean:
	rm -rf bin/
