package client_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/client"
)

// receiver is a webhook endpoint that keeps what it is sent.
type receiver struct {
	mu     sync.Mutex
	bodies []map[string]any
	signed bool
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	data, _ := io.ReadAll(req.Body)
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil {
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, body)
	r.signed = req.Header.Get("webhook-id") != "" && req.Header.Get("webhook-signature") != ""
	w.WriteHeader(http.StatusNoContent)
}

// events names what each body told: "job STATUS" for a job's end, "file.ready" for a file.
func (r *receiver) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.bodies {
		switch {
		case b["event"] == "file.ready":
			out = append(out, "file.ready")
		case b["status"] != nil:
			out = append(out, "job "+b["status"].(string))
		}
	}
	return out
}

// The server these tests share allows webhooks to loopback (see TestMain); the signatures
// themselves are checked against the Standard Webhooks library in cmd/longhaul.
func TestInitiateWithACallback(t *testing.T) {
	r := &receiver{}
	hook := httptest.NewServer(r)
	t.Cleanup(hook.Close)
	c := newClient(t, serverURL())
	in, err := c.Initiate(t.Context(), []int64{70000, 70001}, client.InitiateOptions{
		CallbackURL: hook.URL + "/hooks/longhaul", CallbackEvents: []string{client.EventFileReady}})
	if err != nil {
		t.Fatal(err)
	}
	follow(t, c, in.JobID)

	var job *client.Job
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if job, err = c.Status(t.Context(), in.JobID); err != nil {
			t.Fatal(err)
		}
		if job.Callback != nil && job.Callback.State != client.DeliveryPending || time.Now().After(deadline) {
			break
		}
	}
	want := client.Callback{URL: hook.URL + "/hooks/longhaul", Events: []string{client.EventFileReady},
		State: client.DeliveryDelivered, Attempts: 1}
	if job.Callback == nil || job.Callback.URL != want.URL || !slices.Equal(job.Callback.Events, want.Events) ||
		job.Callback.State != want.State || job.Callback.Attempts != want.Attempts {
		t.Fatalf("callback in the status = %+v, want %+v", job.Callback, want)
	}
	// The job's end, and the one ready file: 70000 is available, 70001 is not.
	if got := r.events(); !slices.Contains(got, "job completed") || !slices.Contains(got, "file.ready") {
		t.Errorf("the receiver got bodies with statuses %v, want the job's end and the ready file", got)
	}
	if !r.signed {
		t.Error("the deliveries carry no webhook-id and webhook-signature")
	}
}

func TestInitiateRefusesACallbackToAPrivateAddress(t *testing.T) {
	c := newClient(t, serverURL())
	_, err := c.Initiate(t.Context(), []int64{70000}, client.InitiateOptions{CallbackURL: "http://10.0.0.1/hook"})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "invalid_request" ||
		apiErr.Field != "callback_url" {
		t.Errorf("initiate = %v, want 400 invalid_request on callback_url", err)
	}
}
