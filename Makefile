# longhaul: the two commands are `make run` and `make test`.

GO     ?= go
BIN    := bin/longhaul
UI     := frontend/dist/app/index.html
UI_SRC := $(shell find frontend/src frontend/public -type f 2>/dev/null) \
          $(wildcard frontend/index.html frontend/vite.config.ts frontend/tsconfig*.json frontend/package.json)
NPM_OK := frontend/node_modules/.package-lock.json
# Every Go module: the product, then the tooling (the tests of deploy/, the chaos run and
# the benchmark), each with a go.mod of its own so that the product's carries none of
# their dependencies.
GO_MODULES := . deploy scripts

.DEFAULT_GOAL := build
.PHONY: build run dev test test-go test-ui e2e ui test-deps chaos bench clean

## build: the UI (npm ci + Vite, when its sources changed) and bin/longhaul with it embedded
build: $(UI)
	$(GO) build -o $(BIN) ./cmd/longhaul

ui: $(UI)

$(UI): $(NPM_OK) $(UI_SRC)
	cd frontend && npm run build

$(NPM_OK): frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund

## run: build everything and start API, worker and dashboard on http://localhost:3000
run: build
	./$(BIN) serve

## dev: the Vite dev server on http://localhost:5174, proxying to `make run` on :3000
dev: $(NPM_OK)
	cd frontend && npm run dev

## test: every test: Go (real redis-server, race detector), UI unit tests, browser tests
test: test-go test-ui e2e

test-deps:
	scripts/ensure-redis.sh
	scripts/ensure-nginx.sh

# One vet and one test line per module, so that `make -n test` shows every one.
define go-test-module
	$(GO) -C $(1) vet ./...
	$(GO) -C $(1) test -race -count=1 -timeout 15m ./...

endef

test-go: test-deps
	$(foreach m,$(GO_MODULES),$(call go-test-module,$(m)))

test-ui: $(NPM_OK)
	cd frontend && npm test

e2e: build
	scripts/ensure-chromium.sh
	scripts/ensure-nginx.sh
	cd frontend && LONGHAUL_BIN=../$(BIN) npm run e2e

## bench: measure longhaul beside raw Asynq and Redis (about 3 min on 2 cores), write docs/benchmarks.md
bench: test-deps
	$(GO) -C scripts run ./bench -out ../docs/benchmarks.md

## chaos: 200 jobs under random worker kills and a Redis crash; fails if a job is lost, stuck or made twice
chaos: test-deps
	$(GO) -C scripts run ./chaos -jobs 200 -files 4 -duration 60s -min-kills-in-progress 3 -timeout 10m

clean:
	rm -rf bin frontend/dist/app
