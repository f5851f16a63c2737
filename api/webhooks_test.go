package api_test

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/webhook"
)

// TestCallbackRefusedBeforeAnythingIsWritten sends callbacks no webhook may go to, and bad
// callback fields: each is 400 with the field named, and Redis holds no key after.
func TestCallbackRefusedBeforeAnythingIsWritten(t *testing.T) {
	e := newEnvWith(t, api.Config{}, envOptions{callbacks: webhook.Policy{AllowHTTP: true}})
	for _, tc := range []struct {
		name, body, field, says string
	}{
		{"private", `{"file_ids":[70000],"callback_url":"http://10.0.0.1/x"}`, "callback_url", "10.0.0.1"},
		{"loopback IPv6", `{"file_ids":[70000],"callback_url":"http://[::1]/"}`, "callback_url", "::1"},
		{"metadata", `{"file_ids":[70000],"callback_url":"http://169.254.169.254/"}`, "callback_url", "169.254.169.254"},
		{"metadata IPv6", `{"file_ids":[70000],"callback_url":"http://[fd00:ec2::254]/latest"}`, "callback_url", "not public"},
		{"a name of loopback", `{"file_ids":[70000],"callback_url":"https://localhost/hooks"}`, "callback_url", "not public"},
		{"unspecified", `{"file_ids":[70000],"callback_url":"http://0.0.0.0:3000/"}`, "callback_url", "0.0.0.0"},
		{"not a URL", `{"file_ids":[70000],"callback_url":"hooks.example.com"}`, "callback_url", "absolute"},
		{"empty", `{"file_ids":[70000],"callback_url":""}`, "callback_url", "not empty"},
		{"not a string", `{"file_ids":[70000],"callback_url":42}`, "callback_url", "string"},
		{"unknown event", `{"file_ids":[70000],"callback_url":"http://10.0.0.1/x","callback_events":["job.exploded"]}`,
			"callback_events", "file.ready"},
		{"events not strings", `{"file_ids":[70000],"callback_url":"https://93.184.215.14/","callback_events":[1]}`,
			"callback_events", "list of event names"},
		{"events without a URL", `{"file_ids":[70000],"callback_events":["file.ready"]}`, "callback_events", "callback_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.keys(t)
			resp, body := e.do(t, "POST", "/v1/download/initiate", "application/json", tc.body)
			var got errorBody
			json.Unmarshal([]byte(body), &got)
			if resp.StatusCode != 400 || got.Error.Code != "invalid_request" || got.Error.Field != tc.field ||
				!strings.Contains(got.Error.Message, tc.says) {
				t.Errorf("initiate = %d %s, want 400 invalid_request on %s saying %q", resp.StatusCode, body, tc.field, tc.says)
			}
			if after := e.keys(t); after != before {
				t.Errorf("Redis had %d keys before the request and %d after", before, after)
			}
		})
	}
}

// TestCallbackNeedsASecret: a server with no webhook secret refuses callback_url, saying so.
func TestCallbackNeedsASecret(t *testing.T) {
	e := newEnv(t, api.Config{})
	resp, body := e.do(t, "POST", "/v1/download/initiate", "application/json",
		`{"file_ids":[70000],"callback_url":"https://93.184.215.14/hooks"}`)
	if resp.StatusCode != 400 || !strings.Contains(body, `"field":"callback_url"`) || !strings.Contains(body, "LONGHAUL_WEBHOOK_SECRET") {
		t.Errorf("initiate = %d %s, want 400 on callback_url naming LONGHAUL_WEBHOOK_SECRET", resp.StatusCode, body)
	}
	if n := e.keys(t); n != 0 {
		t.Errorf("Redis holds %d keys", n)
	}
}

// TestCallbackInTheStatus: an allowed callback is taken; the status shows it pending, and
// then as the delivery's record says, with an ETag that changes with it.
func TestCallbackInTheStatus(t *testing.T) {
	loopback := webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	e := newEnvWith(t, api.Config{}, envOptions{callbacks: loopback})
	resp, body := e.do(t, "POST", "/v1/download/initiate", "application/json",
		`{"file_ids":[70000],"callback_url":"http://127.0.0.1:9/hooks","callback_events":["file.ready","file.ready"]}`)
	if resp.StatusCode != 202 {
		t.Fatalf("initiate = %d %s", resp.StatusCode, body)
	}
	var created struct {
		JobID string `json:"job_id"`
	}
	json.Unmarshal([]byte(body), &created)
	status := func() (string, jobs.Callback) {
		t.Helper()
		resp, body := e.do(t, "GET", "/v1/download/status/"+created.JobID, "", "")
		var s struct {
			Callback jobs.Callback `json:"callback"`
		}
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatal(err)
		}
		return resp.Header.Get("ETag"), s.Callback
	}
	etag, cb := status()
	want := jobs.Callback{URL: "http://127.0.0.1:9/hooks", Events: []string{"file.ready"}, State: jobs.DeliveryPending}
	if diff := cmp.Diff(want, cb); diff != "" {
		t.Errorf("callback of a new job (-want +got):\n%s", diff)
	}
	if !regexp.MustCompile(`^"[0-9]+"$`).MatchString(etag) {
		t.Errorf("ETag %s before any delivery, want the seq alone", etag)
	}
	// Each change of the delivery changes the body, seq stays: the tag must change too,
	// also when only the state does (the attempt that gave up is the last one counted).
	changes := []struct {
		state    jobs.DeliveryState
		attempts int
	}{{jobs.DeliveryPending, 1}, {jobs.DeliveryFailed, 1}}
	for _, change := range changes {
		if err := e.store.RecordDelivery(t.Context(), created.JobID, change.state, change.attempts, "the receiver answered 503"); err != nil {
			t.Fatal(err)
		}
		resp, _ = e.do(t, "GET", "/v1/download/status/"+created.JobID, "", "", "If-None-Match", etag)
		if resp.StatusCode != 200 {
			t.Errorf("after the delivery became %s, the old ETag %s got %d, want 200 with the new state", change.state, etag, resp.StatusCode)
		}
		var now jobs.Callback
		if etag, now = status(); now.State != change.state || now.Attempts != change.attempts || now.LastError != "the receiver answered 503" {
			t.Errorf("callback after the delivery became %s: %+v", change.state, now)
		}
		if !regexp.MustCompile(`^"[0-9]+\.[0-9]+"$`).MatchString(etag) {
			t.Errorf("ETag %s after a delivery change, want seq.changes", etag)
		}
		resp, _ = e.do(t, "GET", "/v1/download/status/"+created.JobID, "", "", "If-None-Match", etag)
		if resp.StatusCode != 304 {
			t.Errorf("the current ETag %s got %d, want 304", etag, resp.StatusCode)
		}
	}
	// A late report of an earlier attempt changes nothing.
	if err := e.store.RecordDelivery(t.Context(), created.JobID, jobs.DeliveryPending, 0, "late"); err != nil {
		t.Fatal(err)
	}
	if _, cb = status(); cb.Attempts != 1 || cb.State != jobs.DeliveryFailed {
		t.Errorf("callback after a late report: %+v", cb)
	}

	t.Run("the same key with another callback is another request", func(t *testing.T) {
		first, _ := e.do(t, "POST", "/v1/download/initiate", "application/json",
			`{"file_ids":[70000],"callback_url":"http://127.0.0.1:9/a"}`, "Idempotency-Key", "cb-1")
		again, body := e.do(t, "POST", "/v1/download/initiate", "application/json",
			`{"file_ids":[70000],"callback_url":"http://127.0.0.1:9/b"}`, "Idempotency-Key", "cb-1")
		if first.StatusCode != 202 || again.StatusCode != 409 {
			t.Errorf("first %d, again with another callback %d %s; want 202 then 409", first.StatusCode, again.StatusCode, body)
		}
	})
}

// TestWebhookBodies: the job's end is delivered as its status body without the callback,
// and a ready file as its entry with its download URL.
func TestWebhookBodies(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000)
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100, Size: 10})
	job, err := e.store.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	job.Callback = &jobs.Callback{URL: "https://hooks.example.com/", State: jobs.DeliveryPending}
	finished, err := api.WebhookBodies{}.FinishedBody(job)
	if err != nil || strings.Contains(string(finished), "callback") || !strings.Contains(string(finished), `"job_id":"`+id+`"`) {
		t.Errorf("FinishedBody = %s, %v; want the status body without callback", finished, err)
	}
	file, err := api.WebhookBodies{}.FileReadyBody(job, 70000)
	if err != nil || !strings.Contains(string(file), `"event":"file.ready"`) || !strings.Contains(string(file), `"download_url":"/v1/download/`+id+`/files/70000"`) {
		t.Errorf("FileReadyBody = %s, %v", file, err)
	}
	if _, err := (api.WebhookBodies{}).FileReadyBody(job, 70007); err == nil {
		t.Error("FileReadyBody of a file not in the job gave a body")
	}
}
