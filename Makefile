# ticketflow — `make run` starts everything in one process, `make test` runs every test.
SHELL := /bin/bash
GO_MODULES := api libs services/command services/processor services/projector services/notifier cmd/ticketflow e2e bench
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help run build web test test-go test-deploy test-web test-e2e lint bench bench-compare clean topology soak

## help: this list (a bare `make` prints it and starts nothing)
help:
	@grep -E '^## [a-z-]+:' $(MAKEFILE_LIST) | sed -E 's/^## ([a-z-]+): (.*)/\1\t\2/' | awk -F'\t' '{ printf "  %-14s %s\n", $$1, $$2 }'


## run: build the web app and start the whole stack on http://localhost:8000
run: web
	go build -o bin/ticketflow ./cmd/ticketflow
	exec bin/ticketflow dev

## build: the CLI and the four service binaries into bin/
build:
	@mkdir -p bin
	go build -o bin/ticketflow ./cmd/ticketflow
	for s in command processor projector notifier; do go build -o bin/$$s ./services/$$s || exit 1; done

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund

## web: the production build of the web app (frontend/dist), served by `ticketflow dev`
web: frontend/node_modules/.package-lock.json
	cd frontend && npm run build

## test: every test: Go (real PostgreSQL, Kafka over TCP), deploy manifests, frontend, browser e2e
test: test-go test-deploy test-web test-e2e

test-go:
	@set -e; for m in $(GO_MODULES); do echo "== go test $$m"; (cd $$m && go test -race -count=1 -timeout 12m ./...); done

test-deploy:
	cd deploy && GOWORK=off go test -count=1 ./...

test-web: frontend/node_modules/.package-lock.json
	cd frontend && npm run check:api && npm run validate:api && npm test

test-e2e: web
	cd frontend && npm run test:e2e

## lint: gofmt, go vet and staticcheck on every module
lint:
	@test -z "$$(gofmt -l $(GO_MODULES) deploy)" || (gofmt -l $(GO_MODULES) deploy; exit 1)
	@set -e; for m in $(GO_MODULES); do (cd $$m && go vet ./... && go run $(STATICCHECK) ./...); done
	cd deploy && GOWORK=off go vet ./...

## bench: the notifier benchmarks (numbers, not pass/fail); loopback only, bounded in time
bench:
	cd services/notifier && go run ./bench

## bench-compare: ticketflow vs Centrifugo v6.9.1, same scenarios interleaved, ratios (~4 min; ARGS=-quick < 1 min)
bench-compare:
	cd bench && go run . $(ARGS)

## topology: the deployed shape locally: `ticketflow broker` + 2 command, 3 processor, 2 projector, 3 notifier processes
topology: build
	cd e2e && go run ./cmd/topology -bin $(CURDIR)/bin -dir $(CURDIR)/.data/topology

## soak: the large chaos test (~1,000 runs, ~200 tickets, >= 50 kills of every kind); prints the invariants' counts
soak:
	cd e2e && TICKETFLOW_SOAK=1 go test -count=1 -timeout 40m -run TestChaos -v ./...

## clean: remove bin/, .data/ and the web build
clean:
	rm -rf bin .data frontend/dist
