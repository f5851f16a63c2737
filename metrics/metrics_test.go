package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newMetrics(t *testing.T) (*prometheus.Registry, *metrics.Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return reg, metrics.New(reg)
}

// TestNamesFollowPrometheusConventions runs Prometheus' own linter over every family, with
// a sample in each.
func TestNamesFollowPrometheusConventions(t *testing.T) {
	reg, m := newMetrics(t)
	m.Request("/v1/download/status/:job_id", "GET", 200, time.Millisecond)
	m.JobCreated()
	m.JobFinished(jobs.StatusCompleted, time.Now().Add(-time.Minute))
	m.FileFinished(jobs.StatusReady, time.Second)
	m.LiveOpened(metrics.ChannelSSE)
	m.SlowClientClosed(metrics.ChannelWebSocket)
	m.Resynced()
	m.PubSubReconnected()
	m.WebhookDelivery(metrics.WebhookDelivered)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "longhaul_") {
			t.Errorf("family %s lacks the longhaul_ prefix", f.GetName())
		}
	}
}

// TestLabelsStayInTheirSets checks that no caller can make a series of its own: anything
// outside a label's fixed set is counted as "other".
func TestLabelsStayInTheirSets(t *testing.T) {
	reg, m := newMetrics(t)
	m.Request("", "BREW", 418, time.Millisecond)
	m.Request("/v1/me", "GET", 200, time.Millisecond)
	m.JobFinished("exploded", time.Time{})
	m.FileFinished("lost", time.Second)
	m.SlowClientClosed("carrier-pigeon")
	m.WebhookDelivery("teleported")
	want := `
# HELP longhaul_http_requests_total HTTP requests answered, by route pattern, method and status code.
# TYPE longhaul_http_requests_total counter
longhaul_http_requests_total{code="200",method="GET",route="/v1/me"} 1
longhaul_http_requests_total{code="418",method="other",route="other"} 1
# HELP longhaul_jobs_finished_total Jobs that ended, by status: completed, failed or canceled.
# TYPE longhaul_jobs_finished_total counter
longhaul_jobs_finished_total{status="canceled"} 0
longhaul_jobs_finished_total{status="completed"} 0
longhaul_jobs_finished_total{status="failed"} 0
longhaul_jobs_finished_total{status="other"} 1
# HELP longhaul_files_finished_total Files that ended, by outcome: ready, unavailable or failed.
# TYPE longhaul_files_finished_total counter
longhaul_files_finished_total{outcome="failed"} 0
longhaul_files_finished_total{outcome="other"} 1
longhaul_files_finished_total{outcome="ready"} 0
longhaul_files_finished_total{outcome="unavailable"} 0
# HELP longhaul_live_slow_clients_closed_total Live clients closed for falling behind (they reconnect and resync), by channel.
# TYPE longhaul_live_slow_clients_closed_total counter
longhaul_live_slow_clients_closed_total{channel="other"} 1
longhaul_live_slow_clients_closed_total{channel="sse"} 0
longhaul_live_slow_clients_closed_total{channel="websocket"} 0
# HELP longhaul_webhook_deliveries_total Webhook delivery attempts, by outcome: delivered, rejected, failed or gave_up.
# TYPE longhaul_webhook_deliveries_total counter
longhaul_webhook_deliveries_total{outcome="delivered"} 0
longhaul_webhook_deliveries_total{outcome="failed"} 0
longhaul_webhook_deliveries_total{outcome="gave_up"} 0
longhaul_webhook_deliveries_total{outcome="other"} 1
longhaul_webhook_deliveries_total{outcome="rejected"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "longhaul_http_requests_total",
		"longhaul_jobs_finished_total", "longhaul_files_finished_total", "longhaul_live_slow_clients_closed_total",
		"longhaul_webhook_deliveries_total"); err != nil {
		t.Error(err)
	}
}

func TestJobsWithoutACreationTimeAreCountedButNotTimed(t *testing.T) {
	reg, m := newMetrics(t)
	m.JobFinished(jobs.StatusFailed, time.Time{})
	m.JobFinished(jobs.StatusFailed, time.Now().Add(-3*time.Second))
	finished, _ := testutil.GatherAndCount(reg, "longhaul_jobs_finished_total")
	if finished != 3 { // the three statuses, made at zero
		t.Errorf("longhaul_jobs_finished_total has %d series, want 3", finished)
	}
	want := `
# HELP longhaul_jobs_finished_total Jobs that ended, by status: completed, failed or canceled.
# TYPE longhaul_jobs_finished_total counter
longhaul_jobs_finished_total{status="canceled"} 0
longhaul_jobs_finished_total{status="completed"} 0
longhaul_jobs_finished_total{status="failed"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "longhaul_jobs_finished_total"); err != nil {
		t.Error(err)
	}
	if n := histogramCount(t, reg, "longhaul_job_duration_seconds", "status", "failed"); n != 1 {
		t.Errorf("longhaul_job_duration_seconds counted %d failed jobs, want the 1 with a creation time", n)
	}
}

func TestLiveSessionsOpenAndClose(t *testing.T) {
	reg, m := newMetrics(t)
	closeA := m.LiveOpened(metrics.ChannelWebSocket)
	closeB := m.LiveOpened(metrics.ChannelWebSocket)
	m.LiveOpened(metrics.ChannelSSE)
	closeA()
	want := `
# HELP longhaul_live_sessions_open Live sessions open now, by channel: websocket or sse.
# TYPE longhaul_live_sessions_open gauge
longhaul_live_sessions_open{channel="sse"} 1
longhaul_live_sessions_open{channel="websocket"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "longhaul_live_sessions_open"); err != nil {
		t.Error(err)
	}
	closeB()
}

func TestServerServesMetricsAlone(t *testing.T) {
	reg, m := newMetrics(t)
	m.JobCreated()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := metrics.Listen("127.0.0.1:0", metrics.Handler(reg, log), log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	base := "http://" + s.Addr().String()

	code, body := get(t, base+metrics.Path)
	if code != http.StatusOK || !strings.Contains(body, "longhaul_jobs_created_total 1") ||
		!strings.Contains(body, "promhttp_metric_handler_requests_total") {
		t.Errorf("GET /metrics = %d, want 200 with the registry's metrics and the scrapes':\n%s", code, body)
	}
	if code, _ := get(t, base+"/v1/me"); code != http.StatusNotFound {
		t.Errorf("GET /v1/me on the metrics address = %d, want 404: it serves metrics alone", code)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// histogramCount is the sample count of the series of histogram name whose label is value.
func histogramCount(t *testing.T, reg *prometheus.Registry, name, label, value string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatalf("no series of %s with %s=%q", name, label, value)
	return 0
}
