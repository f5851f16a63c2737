package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
)

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func TestInitiateRefusesBadInputAndWritesNothing(t *testing.T) {
	e := newEnv(t, api.Config{MaxFiles: 5})
	const json = "application/json"
	cases := []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"empty body", json, "", 400, "invalid_request"},
		{"not JSON", json, "file_ids=70000", 400, "invalid_request"},
		{"empty list", json, `{"file_ids": []}`, 400, "invalid_request"},
		{"missing field", json, `{}`, 400, "invalid_request"},
		{"null list", json, `{"file_ids": null}`, 400, "invalid_request"},
		{"string id", json, `{"file_ids": ["70000"]}`, 400, "invalid_request"},
		{"float id", json, `{"file_ids": [70000.5]}`, 400, "invalid_request"},
		{"float with zero fraction", json, `{"file_ids": [70000.0]}`, 400, "invalid_request"},
		{"exponent", json, `{"file_ids": [7e4]}`, 400, "invalid_request"},
		{"negative id", json, `{"file_ids": [-7]}`, 400, "invalid_request"},
		{"zero id", json, `{"file_ids": [0]}`, 400, "invalid_request"},
		{"null id", json, `{"file_ids": [null]}`, 400, "invalid_request"},
		{"boolean id", json, `{"file_ids": [true]}`, 400, "invalid_request"},
		{"nested list", json, `{"file_ids": [[70000]]}`, 400, "invalid_request"},
		{"object instead of list", json, `{"file_ids": {"a": 70000}}`, 400, "invalid_request"},
		{"list instead of object", json, `[70000]`, 400, "invalid_request"},
		{"id of 2^53 + 1", json, `{"file_ids": [9007199254740993]}`, 400, "invalid_request"},
		{"id beyond int64", json, `{"file_ids": [99999999999999999999999]}`, 400, "invalid_request"},
		{"unknown field", json, `{"file_ids": [70000], "evil": true}`, 400, "invalid_request"},
		{"trailing data", json, `{"file_ids": [70000]} {"file_ids": [70007]}`, 400, "invalid_request"},
		{"trailing brace", json, `{"file_ids": [70000]}}`, 400, "invalid_request"},
		{"truncated", json, `{"file_ids": [70000`, 400, "invalid_request"},
		{"invalid UTF-8", json, "{\"file_ids\": [70000], \"\xff\xfe\": 1}", 400, "invalid_request"},
		{"one id over the limit", json, `{"file_ids": [7, 14, 21, 28, 35, 42]}`, 400, "invalid_request"},
		{"wrong content type", "text/plain", `{"file_ids": [70000]}`, 415, "unsupported_media_type"},
		{"no content type", "", `{"file_ids": [70000]}`, 415, "unsupported_media_type"},
		{"oversized body", json, `{"file_ids": [` + strings.Repeat("7,", 40000) + `7]}`, 413, "payload_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.do(t, "POST", "/v1/download/initiate", c.contentType, c.body)
			var got errorBody
			if err := jsonUnmarshal(body, &got); err != nil || resp.StatusCode != c.status ||
				got.Error.Code != c.code || got.Error.Message == "" {
				t.Errorf("got %d %s, want %d with code %s and a message", resp.StatusCode, body, c.status, c.code)
			}
			if strings.Contains(body, "redis") || strings.Contains(body, "goroutine") {
				t.Errorf("error leaks internals: %s", body)
			}
		})
	}
	if n := e.keys(t); n != 0 {
		t.Errorf("refused requests left %d keys in Redis, want none", n)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func TestInitiateQueuesOneTaskAndRemovesDuplicates(t *testing.T) {
	e := newEnv(t, api.Config{Tasks: tasks.Options{Retention: time.Hour}})
	resp, body := e.do(t, "POST", "/v1/download/initiate", "application/json; charset=utf-8",
		`{"file_ids": [70007, 70000, 70007, 70000, 70014]}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got struct {
		JobID      string            `json:"job_id"`
		Status     string            `json:"status"`
		TotalFiles int               `json:"total_files"`
		Links      map[string]string `json:"links"`
	}
	if err := jsonUnmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if !jobs.ValidID(got.JobID) || got.Status != "queued" || got.TotalFiles != 3 {
		t.Errorf("body = %s", body)
	}
	if loc := resp.Header.Get("Location"); loc != "/v1/download/status/"+got.JobID || got.Links["status"] != loc {
		t.Errorf("Location %q, links %v", loc, got.Links)
	}
	job, err := e.store.Get(context.Background(), got.JobID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, f := range job.Files {
		ids = append(ids, f.ID)
	}
	if fmt.Sprint(ids) != "[70007 70000 70014]" {
		t.Errorf("files %v, want first-seen order [70007 70000 70014]", ids)
	}
	info, err := e.inspector().GetTaskInfo(tasks.Queue, got.JobID)
	if err != nil {
		t.Fatalf("no task for the job: %v", err)
	}
	if info.Type != tasks.TypeDownload || info.MaxRetry == 0 || info.Timeout == 0 || info.Retention == 0 {
		t.Errorf("task %+v lacks explicit limits", info)
	}
}

func TestStatusETagAndErrors(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000, 70001)

	resp, body := e.do(t, "GET", "/v1/download/status/"+id, "", "")
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" || strings.HasPrefix(etag, "W/") ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, ETag %q, Cache-Control %q", resp.StatusCode, etag, resp.Header.Get("Cache-Control"))
	}
	var status map[string]any
	jsonUnmarshal(body, &status)
	if status["status"] != "processing" || status["seq"] != 1.0 || status["poll_after_ms"] == nil || status["error"] != nil {
		t.Errorf("body = %s", body)
	}
	if resp, _ := e.do(t, "GET", "/v1/download/status/"+id, "", "", "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match with the current tag = %d, want 304", resp.StatusCode)
	}
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: 10})
	if resp, _ := e.do(t, "GET", "/v1/download/status/"+id, "", "", "If-None-Match", etag); resp.StatusCode != 200 {
		t.Errorf("If-None-Match with an old tag = %d, want 200", resp.StatusCode)
	}

	other := e.newJob(t, 70007)
	e.update(t, other, jobs.File{ID: 70007, Status: jobs.StatusReady, Percent: 100, Size: 3})
	cases := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"unknown job", "GET", "/v1/download/status/" + jobs.NewID(), 404, "not_found"},
		{"malformed job id", "GET", "/v1/download/status/not-a-job-id", 400, "invalid_request"},
		{"lower-case job id", "GET", "/v1/download/status/" + strings.ToLower(id), 400, "invalid_request"},
		{"job id traversal", "GET", "/v1/download/status/..%2f..%2fetc%2fpasswd", 400, "invalid_request"},
		{"file id traversal", "GET", "/v1/download/" + id + "/files/..%2f..%2fetc%2fpasswd", 400, "invalid_request"},
		{"file id with a sign", "GET", "/v1/download/" + id + "/files/+70000", 400, "invalid_request"},
		{"file not ready", "GET", "/v1/download/" + id + "/files/70000", 404, "not_found"},
		{"file of another job", "GET", "/v1/download/" + id + "/files/70007", 404, "not_found"},
		{"file of an unknown job", "GET", "/v1/download/" + jobs.NewID() + "/files/70007", 404, "not_found"},
		{"cancel unknown job", "DELETE", "/v1/download/" + jobs.NewID(), 404, "not_found"},
		{"events of unknown job", "GET", "/v1/download/" + jobs.NewID() + "/events", 404, "not_found"},
		{"unknown API path", "GET", "/v1/no-such-endpoint", 404, "not_found"},
		{"unknown live path", "GET", "/ws/nothing", 404, "not_found"},
		{"unknown page", "GET", "/admin", 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.do(t, c.method, c.path, "", "")
			var got errorBody
			if err := jsonUnmarshal(body, &got); err != nil || resp.StatusCode != c.status || got.Error.Code != c.code {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, c.status, c.code)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000, 70007)
	content := "0123456789"
	if _, err := e.files.Write(id, 70000, "a", strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100, Size: 10})
	url := e.downloadURL(t, id, 70000)

	resp, body := e.do(t, "DELETE", "/v1/download/"+id, "", "")
	var got jobs.Job
	jsonUnmarshal(body, &got)
	if resp.StatusCode != 202 || got.Status != jobs.StatusCanceled || got.Files[0].Status != jobs.StatusReady ||
		got.Files[1].Status != jobs.StatusCanceled {
		t.Fatalf("cancel = %d %s", resp.StatusCode, body)
	}
	if resp, body := e.do(t, "GET", url, "", ""); resp.StatusCode != 200 || body != content {
		t.Errorf("ready file after cancel = %d %q", resp.StatusCode, body)
	}
	resp, body = e.do(t, "DELETE", "/v1/download/"+id, "", "")
	var eb errorBody
	if jsonUnmarshal(body, &eb); resp.StatusCode != 409 || eb.Error.Code != "conflict" {
		t.Errorf("second cancel = %d %s, want 409 conflict", resp.StatusCode, body)
	}
}

func TestFileDownloadWithRange(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000)
	if _, err := e.files.Write(id, 70000, "a", strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100, Size: 10})
	url := e.downloadURL(t, id, 70000)
	if want := "/v1/download/" + id + "/files/70000"; url != want {
		t.Errorf("download_url = %q, want %q", url, want)
	}
	resp, body := e.do(t, "GET", url, "", "", "Range", "bytes=2-5")
	if resp.StatusCode != 206 || body != "2345" || resp.Header.Get("Content-Range") != "bytes 2-5/10" {
		t.Errorf("range = %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	resp, _ = e.do(t, "GET", url, "", "")
	etag := resp.Header.Get("ETag")
	if resp.Header.Get("Content-Length") != "10" || etag == "" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "70000") {
		t.Errorf("headers = %v", resp.Header)
	}
	if resp, _ := e.do(t, "GET", url, "", "", "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match on a file = %d, want 304", resp.StatusCode)
	}
}

func TestPageRoutes(t *testing.T) {
	e := newEnv(t, api.Config{})
	for _, p := range []string{"/", "/jobs/" + jobs.NewID()} {
		if resp, body := e.do(t, "GET", p, "", ""); resp.StatusCode != 200 || !strings.Contains(body, "<title>longhaul") {
			t.Errorf("GET %s = %d %q", p, resp.StatusCode, body)
		}
	}
	if resp, body := e.do(t, "GET", "/monitoring/", "", ""); resp.StatusCode != 200 || body != "dashboard" {
		t.Errorf("GET /monitoring/ = %d %q", resp.StatusCode, body)
	}
	if resp, _ := e.do(t, "GET", "/readyz", "", ""); resp.StatusCode != 200 {
		t.Errorf("/readyz = %d", resp.StatusCode)
	}
}

// TestDashboardFailuresAnswer503: the dashboard's 500, when it cannot read Redis, reaches
// the client as every route's 503 with Retry-After, and the error of Redis stays in the log.
func TestDashboardFailuresAnswer503(t *testing.T) {
	e := newEnv(t, api.Config{})
	resp, body := e.do(t, "GET", dashboardRedisDown, "", "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(body, `"code":"unavailable"`) || strings.Contains(body, "10.0.0.7") {
		t.Errorf("the dashboard with Redis away = %d, Retry-After %q, %s; want 503 with Retry-After, code unavailable, no detail",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

func TestCORSForAllowedOriginsOnly(t *testing.T) {
	e := newEnv(t, api.Config{AllowedOrigins: []string{"https://app.example.com"}})
	resp, _ := e.do(t, "OPTIONS", "/v1/download/initiate", "", "", "Origin", "https://app.example.com",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type, idempotency-key")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Idempotency-Key") {
		t.Errorf("preflight = %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = e.do(t, "GET", "/v1/download/status/"+jobs.NewID(), "", "", "Origin", "https://app.example.com")
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "ETag") {
		t.Errorf("CORS headers on a GET: %v", resp.Header)
	}
	resp, _ = e.do(t, "GET", "/v1/download/status/"+jobs.NewID(), "", "", "Origin", "https://evil.example.com")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a foreign origin got CORS headers: %v", resp.Header)
	}
}
