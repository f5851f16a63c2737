package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/livetest"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/requestid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// mixedFiles is the demo's mixed scenario: 70000 and 70007 are ready, 70001 and 70008
// unavailable, and the job completes.
var mixedFiles = []int64{70000, 70001, 70007, 70008}

// statusRoute is the status endpoint's route pattern, as metrics label it.
const statusRoute = "/v1/download/status/:job_id"

// TestMetricsFollowAJob runs the mixed scenario on `longhaul serve`, watched over a
// WebSocket and polled, and reads /metrics before, during and after it.
func TestMetricsFollowAJob(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	// Files of 2 to 3 s leave the job running long enough to be seen running.
	base := startRun(t, "serve", fastEnv(t, rs.URL(), "LONGHAUL_FILE_TIME_MIN", "2s", "LONGHAUL_FILE_TIME_MAX", "3s"))
	before := scrape(t, base+"/metrics", "")
	if got := before.value("longhaul_jobs_created_total"); got != 0 {
		t.Errorf("before any job, longhaul_jobs_created_total = %v", got)
	}

	c := client{t, base}
	code, body := c.post(mixedFiles...)
	if code != http.StatusAccepted {
		t.Fatalf("initiate = %d %v", code, body)
	}
	id := body["job_id"].(string)
	conn := livetest.Dial(t, base, id, nil)
	live := make(chan []livetest.Message)
	go func() { msgs, _ := livetest.Follow(t, conn); live <- msgs }()

	t.Run("while it runs", func(t *testing.T) {
		var during *scraped
		proctest.WaitUntil(t, 10*time.Second, "the job's task to be active", func() bool {
			during = scrape(t, base+"/metrics", "")
			return during.value("asynq_tasks_enqueued_total", "queue", "downloads", "state", "active") == 1
		})
		during.expect("while the job runs", []sample{
			{"longhaul_jobs_created_total", nil, 1},
			{"longhaul_jobs_finished_total", []string{"status", "completed"}, 0},
			{"longhaul_live_sessions_open", []string{"channel", "websocket"}, 1},
			{"asynq_tasks_enqueued_total", []string{"queue", "downloads", "state", "pending"}, 0},
		})
	})

	p := &poller{client: c, id: id}
	if final := p.untilDone(time.Minute); final.Status != "completed" {
		t.Fatalf("the job ended %s, want completed", final.Status)
	}
	p.poll() // unchanged since: a 304
	<-live
	var after *scraped
	proctest.WaitUntil(t, 10*time.Second, "the WebSocket's session to close", func() bool {
		after = scrape(t, base+"/metrics", "")
		return after.value("longhaul_live_sessions_open", "channel", "websocket") == 0
	})

	t.Run("once it ended", func(t *testing.T) {
		after.expect("once the job ended", []sample{
			{"longhaul_jobs_created_total", nil, 1},
			{"longhaul_jobs_finished_total", []string{"status", "completed"}, 1},
			{"longhaul_jobs_finished_total", []string{"status", "failed"}, 0},
			{"longhaul_files_finished_total", []string{"outcome", "ready"}, 2},
			{"longhaul_files_finished_total", []string{"outcome", "unavailable"}, 2},
			{"longhaul_files_finished_total", []string{"outcome", "failed"}, 0},
			{"asynq_tasks_enqueued_total", []string{"queue", "downloads", "state", "completed"}, 1},
			{"asynq_tasks_enqueued_total", []string{"queue", "downloads", "state", "active"}, 0},
		})
		for _, w := range []struct {
			name    string
			labels  []string
			count   uint64
			atLeast float64 // seconds the observations add up to at least
		}{
			{"longhaul_file_prepare_duration_seconds", []string{"outcome", "ready"}, 2, 2 * 2},
			{"longhaul_file_prepare_duration_seconds", []string{"outcome", "unavailable"}, 2, 0},
			{"longhaul_job_duration_seconds", []string{"status", "completed"}, 1, 1},
		} {
			h := after.histogram(w.name, w.labels...)
			if h.GetSampleCount() != w.count || h.GetSampleSum() < w.atLeast {
				t.Errorf("%s%v counted %d taking %.2fs, want %d taking at least %vs", w.name, w.labels,
					h.GetSampleCount(), h.GetSampleSum(), w.count, w.atLeast)
			}
		}
	})

	t.Run("the status route's requests", func(t *testing.T) {
		for _, code := range []string{"200", "304"} {
			if got := after.value("longhaul_http_requests_total", "route", statusRoute, "method", "GET", "code", code); got < 1 {
				t.Errorf("longhaul_http_requests_total of the status route with %s = %v, want the polls counted", code, got)
			}
		}
		requests := after.sum("longhaul_http_requests_total", "route", statusRoute)
		if timed := after.histogram("longhaul_http_request_duration_seconds", "route", statusRoute, "method", "GET"); float64(timed.GetSampleCount()) != requests {
			t.Errorf("the status route's latency histogram counted %d requests, its counter %v", timed.GetSampleCount(), requests)
		}
		for _, route := range after.labelValues("longhaul_http_requests_total", "route") {
			if strings.Contains(route, "dl_") {
				t.Errorf("a route label holds a job id: %q; labels name route patterns", route)
			}
		}
	})
}

// TestQueueDepthWithoutWorkers enqueues jobs on `longhaul api` alone: asynq's collector
// counts them pending.
func TestQueueDepthWithoutWorkers(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	base := startRun(t, "api", fastEnv(t, rs.URL()))
	const queued = 3
	for range queued {
		if code, body := (client{t, base}).post(mixedFiles...); code != http.StatusAccepted {
			t.Fatalf("initiate = %d %v", code, body)
		}
	}
	scrape(t, base+"/metrics", "").expect("with the jobs queued", []sample{
		{"asynq_tasks_enqueued_total", []string{"queue", "downloads", "state", "pending"}, queued},
		{"asynq_queue_size", []string{"queue", "downloads"}, queued},
		{"longhaul_jobs_created_total", nil, queued},
	})
}

func TestMetricsAccess(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	keys := auth.NewKeys(rs.Client())
	_, admin, _ := keys.Create(context.Background(), "ops", auth.RoleAdmin)
	_, clientKey, _ := keys.Create(context.Background(), "ci", auth.RoleClient)

	t.Run("on the API's address", func(t *testing.T) {
		base := startRun(t, "api", fastEnv(t, rs.URL(), "LONGHAUL_AUTH", "keys"))
		for _, c := range []struct {
			name, key string
			status    int
		}{
			{"no key", "", http.StatusUnauthorized},
			{"a client key", clientKey, http.StatusForbidden},
			{"an admin key", admin, http.StatusOK},
		} {
			if got, _ := metricsCall(t, base+"/metrics", c.key); got != c.status {
				t.Errorf("GET /metrics with %s = %d, want %d", c.name, got, c.status)
			}
		}
	})
	t.Run("on its own address", func(t *testing.T) {
		addr := freeAddr(t)
		base := startRun(t, "api", fastEnv(t, rs.URL(), "LONGHAUL_AUTH", "keys", "LONGHAUL_METRICS_ADDR", addr))
		if got, body := metricsCall(t, "http://"+addr+"/metrics", ""); got != http.StatusOK ||
			!strings.Contains(body, "longhaul_jobs_created_total") {
			t.Errorf("GET /metrics on LONGHAUL_METRICS_ADDR without a key = %d, want 200 with the metrics", got)
		}
		if got, _ := metricsCall(t, base+"/metrics", admin); got != http.StatusNotFound {
			t.Errorf("GET /metrics on the API's address = %d, want 404 while metrics have an address of their own", got)
		}
	})
	t.Run("with auth off", func(t *testing.T) {
		base := startRun(t, "api", fastEnv(t, rs.URL(), "LONGHAUL_AUTH", "none"))
		if got, _ := metricsCall(t, base+"/metrics", ""); got != http.StatusOK {
			t.Errorf("GET /metrics with auth none = %d, want 200, like every route", got)
		}
	})
}

// TestAJobAcrossProcesses creates a job through `longhaul api` behind a trusted proxy, and
// runs it on a `longhaul worker` of its own process.
func TestAJobAcrossProcesses(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	var apiLog syncBuffer
	logged := []string{"LONGHAUL_LOG_LEVEL", "info", "LONGHAUL_LOG_FORMAT", "json"}
	base := startRunLogging(t, "api", fastEnv(t, rs.URL(), append(logged, "LONGHAUL_TRUSTED_PROXIES", "127.0.0.1")...), &apiLog)
	metricsAddr := freeAddr(t)
	worker := startChild(t, "worker", fastEnv(t, rs.URL(), append(logged, "LONGHAUL_METRICS_ADDR", metricsAddr)...))

	const proxyID = "edge-5f0c2a9e"
	req, _ := http.NewRequest("POST", base+"/v1/download/initiate", strings.NewReader(`{"file_ids":[70000,70001,70007,70008]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(requestid.Header, proxyID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		JobID string `json:"job_id"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get(requestid.Header) != proxyID {
		t.Fatalf("initiate = %d with X-Request-ID %q, want 202 with the proxy's %q", resp.StatusCode,
			resp.Header.Get(requestid.Header), proxyID)
	}
	p := &poller{client: client{t, base}, id: created.JobID}
	if final := p.untilDone(time.Minute); final.Status != "completed" {
		t.Fatalf("the job ended %s, want completed", final.Status)
	}

	t.Run("its log lines carry the request id", func(t *testing.T) {
		for _, c := range []struct {
			process, log string
			msgs         []string
		}{
			{"api", apiLog.String(), []string{"job accepted"}},
			{"worker", worker.Log(), []string{"job attempt started", "job finished"}},
		} {
			lines := jobLines(t, c.log, created.JobID)
			for _, msg := range c.msgs {
				if _, ok := lines[msg]; !ok {
					t.Errorf("the %s logged no %q line of the job; its lines of it: %v", c.process, msg, lines)
				}
			}
			for msg, rid := range lines {
				if rid != proxyID {
					t.Errorf("the %s's line %q of the job has request_id %q, want %q", c.process, msg, rid, proxyID)
				}
			}
		}
	})
	t.Run("the worker serves its metrics", func(t *testing.T) {
		m := scrape(t, "http://"+metricsAddr+"/metrics", "")
		m.expect("on the worker", []sample{
			{"longhaul_files_finished_total", []string{"outcome", "ready"}, 2},
			{"longhaul_files_finished_total", []string{"outcome", "unavailable"}, 2},
			{"longhaul_jobs_finished_total", []string{"status", "completed"}, 1},
		})
		if m.has("asynq_queue_size") {
			t.Errorf("the worker reads the queues for its metrics; only the API processes should")
		}
	})
}

// jobLines reads a JSON log and returns, for each message logged of job id, its request_id.
func jobLines(t *testing.T, log, id string) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line struct {
			Msg       string `json:"msg"`
			Job       string `json:"job"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Job == id {
			out[line.Msg] = line.RequestID
		}
	}
	return out
}

// freeAddr is a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := devbin.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// metricsCall sends GET url, with key as a Bearer key when given.
func metricsCall(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// scraped is one scrape of /metrics, by family name.
type scraped struct {
	t        *testing.T
	families map[string]*dto.MetricFamily
}

// scrape reads url in Prometheus' text format.
func scrape(t *testing.T, url, key string) *scraped {
	t.Helper()
	status, body := metricsCall(t, url, key)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return &scraped{t: t, families: families}
}

func (s *scraped) has(name string) bool { return s.families[name] != nil }

// series returns the series of family name that have every label of labels (name, value
// pairs).
func (s *scraped) series(name string, labels ...string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range s.families[name].GetMetric() {
		if hasLabels(m, labels) {
			out = append(out, m)
		}
	}
	return out
}

func hasLabels(m *dto.Metric, labels []string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if have[labels[i]] != labels[i+1] {
			return false
		}
	}
	return true
}

// value is the value of the one counter or gauge series of name with labels; 0 when the
// family has no such series.
func (s *scraped) value(name string, labels ...string) float64 {
	s.t.Helper()
	series := s.series(name, labels...)
	if len(series) > 1 {
		s.t.Fatalf("%s%v names %d series, want one", name, labels, len(series))
	}
	if len(series) == 0 {
		return 0
	}
	return series[0].GetCounter().GetValue() + series[0].GetGauge().GetValue() + series[0].GetUntyped().GetValue()
}

// sample is the value a series should have: the one series of a family with some labels
// (name, value pairs).
type sample struct {
	name   string
	labels []string
	want   float64
}

// expect checks every sample against the scrape, saying when it was taken.
func (s *scraped) expect(when string, samples []sample) {
	s.t.Helper()
	for _, w := range samples {
		if got := s.value(w.name, w.labels...); got != w.want {
			s.t.Errorf("%s, %s%v = %v, want %v", when, w.name, w.labels, got, w.want)
		}
	}
}

// sum adds up the counter series of name with labels.
func (s *scraped) sum(name string, labels ...string) float64 {
	total := 0.0
	for _, m := range s.series(name, labels...) {
		total += m.GetCounter().GetValue()
	}
	return total
}

// histogram is the one histogram series of name with labels.
func (s *scraped) histogram(name string, labels ...string) *dto.Histogram {
	s.t.Helper()
	series := s.series(name, labels...)
	if len(series) != 1 {
		s.t.Fatalf("%s%v names %d series, want one", name, labels, len(series))
	}
	return series[0].GetHistogram()
}

// labelValues are the values label takes among the series of name.
func (s *scraped) labelValues(name, label string) []string {
	var out []string
	for _, m := range s.families[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out = append(out, l.GetValue())
			}
		}
	}
	return out
}
