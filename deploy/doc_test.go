// Package deploy_test proves the deployment files: deploy/nginx.conf, run by a real nginx in
// front of longhaul, and compose.yaml and the Dockerfile at the repository root.
//
// The nginx tests (nginx_*_test.go) prove that live progress survives the networks it meets
// in production: a real nginx in front of it (started by the tests on loopback and
// configured from deploy/nginx.conf), several API and worker processes on one Redis, a proxy
// that breaks WebSocket upgrades, and clients that stop reading. They run the longhaul
// binary as separate processes, so that they can kill them and read their memory from
// /proc. The binary is built once per run from the longhaul module, or taken from
// LONGHAUL_BIN. nginx comes from PATH, /usr/sbin or NGINX; without it the tests that need it
// skip and say how to install it (scripts/ensure-nginx.sh, which `make test` runs).
//
// The compose tests load compose.yaml with the Compose specification's own loader, as
// `docker compose` does, and read the Dockerfile. No container engine is needed.
//
// The observability tests (observability_test.go) prove the opt-in profile of compose.yaml:
// Prometheus scrapes every api and worker on its metrics address, Grafana finds its
// datasource and the dashboard, and every metric the dashboard and the alerts query is one
// that a real API and worker export, read from their /metrics after a job ran.
//
// deploy/ is a Go module of its own, so that the product's go.mod carries none of these
// tests' dependencies (compose-go); `go -C deploy test ./...` runs them.
package deploy_test
