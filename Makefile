# ffpipe — run `make` for the list of targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

GO        ?= go
BIN       := bin
DIST      := dist
AZURITE   := node_modules/.bin/azurite-blob
STATICCHECK_VERSION ?= v0.6.1
FUZZTIME  ?= 20s
# Deployment variables (see docs/deploy.md).
RG        ?= ffpipe-rg
LOCATION  ?= westeurope
PREFIX    ?= ffpipe

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

.PHONY: deps
deps: ffmpeg python3-azure $(AZURITE) ## Install what the local stack and the tests need (ffmpeg, python3-azure, npm packages).

.PHONY: ffmpeg
ffmpeg:
	@if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then \
		echo "installing ffmpeg (Debian package)"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq ffmpeg >/dev/null; \
	fi

# Debian's Azure SDK for Python (azure-batch 13, azure-storage-blob 12,
# azure-servicebus 7.8 on uamqp, with python3-azure-storage): the Python SDK conformance
# tests run /usr/bin/python3 against the stand-ins.
.PHONY: python3-azure
python3-azure:
	@if ! /usr/bin/python3 -c 'import azure.batch, azure.storage.blob, azure.servicebus, uamqp' 2>/dev/null; then \
		echo "installing python3-azure (Debian package)"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3 python3-azure >/dev/null; \
	fi

# npm ci installs package-lock.json: Azurite and the JavaScript Service Bus SDK.
$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: build
build: ## Build the CLI and the handler into bin/.
	$(GO) build -o $(BIN)/ffpipe ./cmd/ffpipe
	$(GO) build -o $(BIN)/handler ./cmd/handler

.PHONY: package
package: ## Build dist/: the function app root for `func start` and `func azure functionapp publish`.
	$(GO) run ./cmd/ffpipe package --out $(DIST)

.PHONY: run
run: deps build package ## Run the whole pipeline on this machine, end to end (ffpipe demo).
	$(BIN)/ffpipe demo --app $(DIST)

.PHONY: dev
dev: deps build package ## Start the local stack and keep it running (Ctrl-C to stop).
	$(BIN)/ffpipe dev --app $(DIST)

.PHONY: test
test: deps ## Run every test (race detector on).
	$(GO) vet ./...
	FFPIPE_REQUIRE_SDKS=1 $(GO) test -race -timeout 45m ./...

.PHONY: lint
lint: ## go vet and staticcheck.
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each.
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

.PHONY: bench
bench: deps build package ## Benchmarks of the whole pipeline and the stand-ins (ffpipe bench).
	$(BIN)/ffpipe bench --app $(DIST) --json bench.json --png bench.png

.PHONY: chaos
chaos: deps build package ## Larger fault-injection tier (ffpipe chaos).
	$(BIN)/ffpipe chaos --app $(DIST) --files 500 --kills 100 --json chaos.json

.PHONY: deploy
deploy: package ## Deploy to Azure (see docs/deploy.md).
	./infra/deploy.sh deploy "$(RG)" "$(LOCATION)" "$(PREFIX)"

.PHONY: destroy
destroy: ## Delete the Azure resource group.
	./infra/deploy.sh destroy "$(RG)" "$(LOCATION)" "$(PREFIX)"

.PHONY: clean
clean: ## Remove build outputs.
	rm -rf $(BIN) $(DIST)
