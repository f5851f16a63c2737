# longhaul: the two commands are `make run` and `make test`.

GO     ?= go
BIN    := bin/longhaul
UI     := frontend/dist/app/index.html
UI_SRC := $(shell find frontend/src frontend/public -type f 2>/dev/null) \
          $(wildcard frontend/index.html frontend/vite.config.ts frontend/tsconfig*.json frontend/package.json)
# The page at /docs: Swagger UI from the npm package pinned in package.json, around the API's
# OpenAPI document (api/openapi.yaml, embedded by the Go build itself).
DOCS     := frontend/dist/docs/index.html
DOCS_SRC := $(wildcard frontend/docs/*) frontend/scripts/build-docs.mjs frontend/package-lock.json
NPM_OK := frontend/node_modules/.package-lock.json
# Every Go module: the product, then the tooling (the tests of deploy/, the chaos run and
# the benchmark), each with a go.mod of its own so that the product's carries none of
# their dependencies.
GO_MODULES := . deploy scripts
# `longhaul version` says what was built. GOFLAGS=-buildvcs=false on some machines keeps Go
# from recording the commit itself, so it is passed here.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/longhaul-dev/longhaul/cli.version=$(VERSION) -X github.com/longhaul-dev/longhaul/cli.commit=$(COMMIT)

.DEFAULT_GOAL := build
.PHONY: build run dev test test-go test-fencing test-ui e2e ui test-deps chaos bench clean

## build: the UI and the /docs page (npm ci + Vite, when their sources changed) and bin/longhaul with them embedded
# Each step says what it does: the first build of a fresh clone takes a few minutes
# (the README says how long), which silence would make look stuck.
build: $(UI) $(DOCS)
	@echo "longhaul: compiling bin/longhaul (the first time also downloads its Go modules)"
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/longhaul

ui: $(UI) $(DOCS)

$(UI): $(NPM_OK) $(UI_SRC)
	@echo "longhaul: building the page (TypeScript check, then Vite)"
	cd frontend && npm run build

$(DOCS): $(NPM_OK) $(DOCS_SRC)
	cd frontend && npm run build:docs

$(NPM_OK): frontend/package-lock.json
	@echo "longhaul: installing the page's npm packages (npm ci, the first time only)"
	cd frontend && npm ci --no-audit --no-fund

## run: build everything and start API, worker and dashboard on http://localhost:3000
run: build
	./$(BIN) serve

## dev: the Vite dev server on http://localhost:5174, proxying to `make run` on :3000
dev: $(NPM_OK)
	cd frontend && npm run dev

## test: every test: Go (real redis-server, race detector), the fencing proof, UI unit tests, browser tests
test: test-go test-fencing test-ui e2e

test-deps:
	scripts/ensure-redis.sh
	scripts/ensure-nginx.sh
	scripts/ensure-tmux.sh
	scripts/ensure-s3.sh

# One vet and one test line per module, so that `make -n test` shows every one.
define go-test-module
	$(GO) -C $(1) vet ./...
	$(GO) -C $(1) test -race -count=1 -timeout 15m ./...

endef

test-go: test-deps
	$(foreach m,$(GO_MODULES),$(call go-test-module,$(m)))

# The test of a worker frozen past its lease must be able to fail: built with the nofencing
# tag (jobs/nofencing.go), the store lets a replaced attempt write, and the test has to catch
# the thawed worker writing. On thawing, the attempt races asynq's own cancellation of a task
# whose lease expired: in some runs asynq stops it before it writes, and such a run cannot
# tell a fence from none (runs of 4 and 8 caught it 2, 8, 7 and 3 times when measured). So
# twelve runs go at once, and at least one must catch the thawed worker: all twelve missing,
# at the worst rate seen (3 in 8), is about 1 in 280.
FENCING_TEST := TestSIGSTOPWorkerPastItsLeaseIsFencedOff
FENCING_RUNS := 1 2 3 4 5 6 7 8 9 10 11 12
test-fencing: test-deps
	@echo "longhaul: $(FENCING_TEST) without the attempt fencing, $(words $(FENCING_RUNS)) runs at once, one at least must catch it (about two minutes)"
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(GO) test -c -tags nofencing -o "$$dir/nofencing.test" ./cmd/longhaul && \
	for i in $(FENCING_RUNS); do \
		(cd cmd/longhaul && "$$dir/nofencing.test" -test.run '^$(FENCING_TEST)$$' -test.count=1 -test.timeout 10m >"$$dir/run$$i.log" 2>&1) & \
	done; wait; \
	caught=$$(grep -l 'the thawed attempt must write nothing' "$$dir"/run*.log | wc -l); \
	if [ "$$caught" -gt 0 ]; then \
		echo "longhaul: without fencing $(FENCING_TEST) caught the thawed worker in $$caught of $(words $(FENCING_RUNS)) runs, as it must"; \
	else \
		tail -40 "$$dir/run1.log"; \
		echo "longhaul: without fencing $(FENCING_TEST) did not catch the thawed worker in $(words $(FENCING_RUNS)) runs"; exit 1; \
	fi

test-ui: $(NPM_OK)
	cd frontend && npm test

e2e: build
	scripts/ensure-chromium.sh
	scripts/ensure-nginx.sh
	cd frontend && LONGHAUL_BIN=../$(BIN) npm run e2e

## bench: measure longhaul beside the Gin + asynq and Node + BullMQ peers (about 7-8 min on 2 cores), write docs/benchmarks.md
bench: test-deps
	$(GO) -C scripts run ./bench -out ../docs/benchmarks.md

## chaos: 200 jobs under random worker kills and a Redis crash, with files in a directory, then in an S3 bucket, then on a Redis Cluster that loses a master; fails if a job is lost, stuck or made twice
CHAOS_ARGS := -jobs 200 -files 4 -duration 60s -min-kills-in-progress 3 -timeout 10m
chaos: test-deps
	$(GO) -C scripts run ./chaos $(CHAOS_ARGS) -storage dir
	$(GO) -C scripts run ./chaos $(CHAOS_ARGS) -storage s3
	$(GO) -C scripts run ./chaos $(CHAOS_ARGS) -storage dir -redis cluster

clean:
	rm -rf bin frontend/dist/app frontend/dist/docs
