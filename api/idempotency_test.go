package api_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/longhaul-dev/longhaul/api"
)

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, api.Config{})
	post := func(key, body string) (*http.Response, map[string]any) {
		t.Helper()
		resp, raw := e.do(t, "POST", "/v1/download/initiate", "application/json", body, "Idempotency-Key", key)
		var out map[string]any
		jsonUnmarshal(raw, &out)
		return resp, out
	}
	first, body := post("order-42", `{"file_ids": [70000, 70007]}`)
	if first.StatusCode != http.StatusAccepted {
		t.Fatalf("first = %d %v", first.StatusCode, body)
	}
	id := body["job_id"]

	again, body2 := post("order-42", `{"file_ids": [70000, 70007, 70000]}`)
	if again.StatusCode != http.StatusOK || body2["job_id"] != id || body2["total_files"] != 2.0 ||
		again.Header.Get("Location") != first.Header.Get("Location") {
		t.Errorf("same key and request = %d %v, want 200 with job %v", again.StatusCode, body2, id)
	}
	other, body3 := post("order-42", `{"file_ids": [70007, 70000]}`)
	if errBody, _ := body3["error"].(map[string]any); other.StatusCode != http.StatusConflict || errBody["code"] != "conflict" {
		t.Errorf("same key, other request = %d %v, want 409 conflict", other.StatusCode, body3)
	}
	for _, bad := range []string{"", strings.Repeat("k", 256), "caf\u00e9", "tab\there"} {
		resp, body := post(bad, `{"file_ids": [7]}`)
		if errBody, _ := body["error"].(map[string]any); resp.StatusCode != 400 || errBody["field"] != "Idempotency-Key" {
			t.Errorf("key %q = %d %v, want 400 on the Idempotency-Key field", bad, resp.StatusCode, body)
		}
	}
}

func TestConcurrentDuplicatesCreateOneJob(t *testing.T) {
	e := newEnv(t, api.Config{})
	const n = 20
	ids := make(chan any, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, raw := e.do(t, "POST", "/v1/download/initiate", "application/json", `{"file_ids": [7, 14]}`,
				"Idempotency-Key", "same-key")
			var out map[string]any
			jsonUnmarshal(raw, &out)
			if resp.StatusCode != 200 && resp.StatusCode != 202 {
				t.Errorf("status %d: %s", resp.StatusCode, raw)
			}
			ids <- out["job_id"]
		})
	}
	wg.Wait()
	close(ids)
	distinct := map[any]bool{}
	for id := range ids {
		distinct[id] = true
	}
	if len(distinct) != 1 {
		t.Errorf("%d concurrent duplicates made %d jobs, want 1", n, len(distinct))
	}
	tasks, err := e.inspector().ListPendingTasks("downloads")
	if err != nil || len(tasks) != 1 {
		t.Errorf("%d tasks queued (%v), want 1", len(tasks), err)
	}
}
