// Package metrics is what longhaul tells Prometheus: how many requests each route answers and
// how fast, how many jobs start and end and how long they take, how files turn out, how many
// live sessions are open and how the live hub copes, and how webhooks are delivered.
//
// Metrics holds the families and implements the small observer interfaces that the packages
// doing the work declare (api.Observer, worker.Observer, live.Observer): they call it, and
// never import this package. Handler and Server serve a registry over HTTP.
//
// Every family is named longhaul_..., in base units (seconds), with labels from small fixed
// sets: a route pattern, never a path; a status, never a job id or key id.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const namespace = "longhaul"

// The channels of live sessions, as their labels name them.
const (
	ChannelWebSocket = "websocket"
	ChannelSSE       = "sse"
)

// The outcomes of one webhook delivery attempt, as the label of
// longhaul_webhook_deliveries_total names them.
const (
	// WebhookDelivered: the receiver answered 2xx.
	WebhookDelivered = "delivered"
	// WebhookRejected: the receiver answered, with another status.
	WebhookRejected = "rejected"
	// WebhookFailed: no answer came: the connection failed or timed out.
	WebhookFailed = "failed"
	// WebhookGaveUp: the last attempt failed, and the delivery is dropped.
	WebhookGaveUp = "gave_up"
)

// other is the label value of anything outside a label's fixed set.
const other = "other"

// The fixed sets of label values. Each series of them is made at start, at zero, so that a
// rate() sees the first event and a dashboard shows 0 rather than "no data".
var (
	jobEnds         = []jobs.Status{jobs.StatusCompleted, jobs.StatusFailed, jobs.StatusCanceled}
	fileEnds        = []jobs.Status{jobs.StatusReady, jobs.StatusUnavailable, jobs.StatusFailed}
	channels        = []string{ChannelWebSocket, ChannelSSE}
	webhookOutcomes = []string{WebhookDelivered, WebhookRejected, WebhookFailed, WebhookGaveUp}
	methods         = map[string]bool{
		http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
		http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
	}
)

// Buckets of the duration histograms, in seconds.
var (
	// fileBuckets span the demo's quick files (a tenth of a second) to slow sources (minutes).
	fileBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300}
	// jobBuckets span a one-file job to a thousand files four at a time.
	jobBuckets = []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400}
)

// Metrics are longhaul's own metric families. Its methods are safe for concurrent use and
// never block.
type Metrics struct {
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	jobsCreated   prometheus.Counter
	jobsFinished  *prometheus.CounterVec
	jobDuration   *prometheus.HistogramVec
	filesFinished *prometheus.CounterVec
	fileDuration  *prometheus.HistogramVec
	liveSessions  *prometheus.GaugeVec
	slowClosed    *prometheus.CounterVec
	resyncs       prometheus.Counter
	reconnects    prometheus.Counter
	webhooks      *prometheus.CounterVec
}

// New registers longhaul's metric families with reg and returns them. It panics if reg has
// them already: one process has one registry, built once.
func New(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		httpRequests: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code."},
			[]string{"route", "method", "code"}),
		httpDuration: f.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method; for live channels, how long the session lasted.",
			Buckets: prometheus.DefBuckets}, []string{"route", "method"}),
		jobsCreated: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "jobs_created_total",
			Help: "Jobs created and queued."}),
		jobsFinished: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "jobs_finished_total",
			Help: "Jobs that ended, by status: completed, failed or canceled."}, []string{"status"}),
		jobDuration: f.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "job_duration_seconds",
			Help:    "Time from a job's creation to its end, queueing included, by status.",
			Buckets: jobBuckets}, []string{"status"}),
		filesFinished: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "files_finished_total",
			Help: "Files that ended, by outcome: ready, unavailable or failed."}, []string{"outcome"}),
		fileDuration: f.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "file_prepare_duration_seconds",
			Help:    "Time one attempt spent preparing a file until it ended, by outcome.",
			Buckets: fileBuckets}, []string{"outcome"}),
		liveSessions: f.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "live_sessions_open",
			Help: "Live sessions open now, by channel: websocket or sse."}, []string{"channel"}),
		slowClosed: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "live_slow_clients_closed_total",
			Help: "Live clients closed for falling behind (they reconnect and resync), by channel."}, []string{"channel"}),
		resyncs: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "live_resyncs_total",
			Help: "Live watchers sent a fresh snapshot after a gap in their events or a lost pub/sub connection."}),
		reconnects: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "live_pubsub_reconnects_total",
			Help: "Times the live hub's pub/sub connection was lost and came back."}),
		webhooks: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "webhook_deliveries_total",
			Help: "Webhook delivery attempts, by outcome: delivered, rejected, failed or gave_up."}, []string{"outcome"}),
	}
	for _, s := range jobEnds {
		m.jobsFinished.WithLabelValues(string(s))
		m.jobDuration.WithLabelValues(string(s))
	}
	for _, s := range fileEnds {
		m.filesFinished.WithLabelValues(string(s))
		m.fileDuration.WithLabelValues(string(s))
	}
	for _, c := range channels {
		m.liveSessions.WithLabelValues(c)
		m.slowClosed.WithLabelValues(c)
	}
	for _, o := range webhookOutcomes {
		m.webhooks.WithLabelValues(o)
	}
	return m
}

// Request counts an HTTP request that route (its pattern; empty for none) answered with
// status after took.
func (m *Metrics) Request(route, method string, status int, took time.Duration) {
	if route == "" {
		route = other // the page, its assets, and paths no route has
	}
	if !methods[method] {
		method = other
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(took.Seconds())
}

// JobCreated counts a job created and queued.
func (m *Metrics) JobCreated() { m.jobsCreated.Inc() }

// JobFinished counts a job that ended with status, and the time since it was created, when
// createdAt is known (not zero).
func (m *Metrics) JobFinished(status jobs.Status, createdAt time.Time) {
	label := oneOf(status, jobEnds)
	m.jobsFinished.WithLabelValues(label).Inc()
	if !createdAt.IsZero() {
		m.jobDuration.WithLabelValues(label).Observe(max(time.Since(createdAt), 0).Seconds())
	}
}

// FileFinished counts a file that ended with outcome after an attempt spent took on it.
func (m *Metrics) FileFinished(outcome jobs.Status, took time.Duration) {
	label := oneOf(outcome, fileEnds)
	m.filesFinished.WithLabelValues(label).Inc()
	m.fileDuration.WithLabelValues(label).Observe(took.Seconds())
}

// LiveOpened counts a live session open on channel until the returned function is called.
func (m *Metrics) LiveOpened(channel string) (closed func()) {
	g := m.liveSessions.WithLabelValues(oneOf(channel, channels))
	g.Inc()
	return g.Dec
}

// SlowClientClosed counts a live client of channel closed for falling behind.
func (m *Metrics) SlowClientClosed(channel string) {
	m.slowClosed.WithLabelValues(oneOf(channel, channels)).Inc()
}

// Resynced counts a live watcher sent a fresh snapshot.
func (m *Metrics) Resynced() { m.resyncs.Inc() }

// PubSubReconnected counts a lost pub/sub connection of the live hub that came back.
func (m *Metrics) PubSubReconnected() { m.reconnects.Inc() }

// WebhookDelivery counts one delivery attempt of a webhook, by its outcome: WebhookDelivered,
// WebhookRejected, WebhookFailed or WebhookGaveUp.
func (m *Metrics) WebhookDelivery(outcome string) {
	m.webhooks.WithLabelValues(oneOf(outcome, webhookOutcomes)).Inc()
}

// oneOf is v as a label value: itself when it is in the label's fixed set, else "other".
func oneOf[T ~string](v T, set []T) string {
	for _, s := range set {
		if s == v {
			return string(v)
		}
	}
	return other
}
