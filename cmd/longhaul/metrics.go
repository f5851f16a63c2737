package main

import (
	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/metrics"
	"github.com/longhaul-dev/longhaul/webhook"
	"github.com/longhaul-dev/longhaul/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
)

var (
	_ api.Observer     = (*metrics.Metrics)(nil)
	_ worker.Observer  = (*metrics.Metrics)(nil)
	_ webhook.Observer = (*metrics.Metrics)(nil)
)

// observe registers with reg what a process of mode m exports, and returns longhaul's own
// families for its parts to count into: the Go runtime's and the process's metrics, and,
// where the API runs, asynq's queues (depth, latency, tasks by state). The queues are the
// same from every process, so only the API processes read them, and not every worker on
// every scrape.
func observe(reg *prometheus.Registry, m mode, rdb redis.UniversalClient) *metrics.Metrics {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if m.runsAPI() {
		reg.MustRegister(asynqmetrics.NewQueueMetricsCollector(asynq.NewInspectorFromRedisClient(rdb)))
	}
	return metrics.New(reg)
}
