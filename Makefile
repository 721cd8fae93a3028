# ffpipe — run `make` for the list of targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

GO        ?= go
BIN       := bin
DIST      := dist
AZURITE   := node_modules/.bin/azurite-blob
# The offline vulnerability database (used when vuln.go.dev is unreachable):
# the OSV entries of this golang.org/x/vulndb module version, indexed by its
# own cmd/indexdb. Newer entries need a newer version here.
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
VULNDB_DIR     ?= $(HOME)/.cache/ffpipe/vulndb-$(VULNDB_VERSION)
# warn (default) or fail: what a reachable vulnerability in the Go standard
# library does (see internal/tooling/vulngate).
VULN_STDLIB    ?= warn
FUZZTIME  ?= 20s
# Deployment variables (see docs/deploy.md).
RG        ?= ffpipe-rg
LOCATION  ?= westeurope
PREFIX    ?= ffpipe

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

.PHONY: deps
deps: ffmpeg python3-azure chromium $(AZURITE) ## Install what the local stack and the tests need (ffmpeg, python3-azure, chromium, npm packages).

.PHONY: ffmpeg
ffmpeg:
	@if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then \
		echo "installing ffmpeg (Debian package)"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq ffmpeg >/dev/null; \
	fi

# Debian's Chromium: the Status page test (handlers/statuspage_browser_test.go)
# drives it headless through chromedp.
.PHONY: chromium
chromium:
	@if ! command -v chromium >/dev/null; then \
		echo "installing chromium (Debian package)"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
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
lint: ## go vet, staticcheck, gofmt/goimports and govulncheck (tools pinned in go.mod; staticcheck.conf).
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@files=$$(find . -name '*.go' -not -path './node_modules/*' -not -path './.git/*' -not -path '*/testdata/*'); \
	bad=$$( { gofmt -l $$files; $(GO) tool goimports -l -local github.com/ffpipe/ffpipe $$files; } | sort -u); \
	if [ -n "$$bad" ]; then echo "not formatted (run make fmt):"; echo "$$bad"; exit 1; fi
	@$(MAKE) --no-print-directory vulncheck

.PHONY: fmt
fmt: ## Format every Go file (gofmt, goimports with the local prefix).
	@files=$$(find . -name '*.go' -not -path './node_modules/*' -not -path './.git/*' -not -path '*/testdata/*'); \
	gofmt -w $$files && $(GO) tool goimports -w -local github.com/ffpipe/ffpipe $$files

# vulncheck uses vuln.go.dev when it answers, else an offline copy of the
# database built from the golang.org/x/vulndb module (VULNDB_VERSION, from the
# Go module proxy). When neither is available it says so and passes: a
# network outage must not fail CI.
.PHONY: vulncheck
vulncheck: ## govulncheck: fail on reachable vulnerabilities in modules (VULN_STDLIB=fail for the standard library too).
	@if curl -fsS -m 10 -o /dev/null https://vuln.go.dev/index/db.json 2>/dev/null; then \
		db=https://vuln.go.dev; \
	elif $(MAKE) --no-print-directory $(VULNDB_DIR)/index/db.json >/dev/null 2>&1; then \
		db=file://$(VULNDB_DIR); echo "vuln.go.dev unreachable: using the offline database golang.org/x/vulndb@$(VULNDB_VERSION)"; \
	else \
		echo "govulncheck SKIPPED: vuln.go.dev is unreachable and the offline database could not be built"; exit 0; \
	fi; \
	set -o pipefail; $(GO) tool govulncheck -db $$db -format json ./... | $(GO) run ./internal/tooling/vulngate -stdlib=$(VULN_STDLIB)

$(VULNDB_DIR)/index/db.json:
	@dir=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	rm -rf $(VULNDB_DIR).tmp && \
	$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$dir/data/osv" -out $(VULNDB_DIR).tmp && \
	rm -rf $(VULNDB_DIR) && mv $(VULNDB_DIR).tmp $(VULNDB_DIR)

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
	$(BIN)/ffpipe chaos --app $(DIST) --files 500 --kills 100 --profiles 20 --json chaos.json

.PHONY: deploy
deploy: package ## Deploy to Azure (see docs/deploy.md).
	./infra/deploy.sh deploy "$(RG)" "$(LOCATION)" "$(PREFIX)"

.PHONY: destroy
destroy: ## Delete the Azure resource group.
	./infra/deploy.sh destroy "$(RG)" "$(LOCATION)" "$(PREFIX)"

.PHONY: clean
clean: ## Remove build outputs.
	rm -rf $(BIN) $(DIST)
