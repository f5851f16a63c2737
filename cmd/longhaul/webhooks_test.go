package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/metrics"
	"github.com/longhaul-dev/longhaul/webhook"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestWebhooks runs jobs with callbacks on `longhaul serve`, signing with two secrets (a
// rotation under way), to receivers on loopback, which the operator allows. Signatures are
// checked with the Standard Webhooks library, an implementation of the specification
// independent of longhaul's.
func TestWebhooks(t *testing.T) {
	oldSecret, newSecret := newWebhookSecret(t), newWebhookSecret(t)
	rs := redistest.Start(t, redistest.Options{})
	base := startRun(t, "serve", fastEnv(t, rs.URL(),
		"LONGHAUL_WEBHOOK_SECRET", newSecret+" "+oldSecret,
		"LONGHAUL_WEBHOOK_ALLOW", "127.0.0.1/32",
		"LONGHAUL_WEBHOOK_ALLOW_HTTP", "true",
		"LONGHAUL_WEBHOOK_RETRIES", "2",
		"LONGHAUL_WEBHOOK_BACKOFF", "100ms",
		"LONGHAUL_WEBHOOK_TIMEOUT", "2s"))

	t.Run("a receiver that fails twice gets the third attempt", func(t *testing.T) {
		recv := newReceiver(t, 2, oldSecret, newSecret)
		id := postWithCallback(t, base, recv.url+"/hooks", "file.ready")
		p := &poller{client: client{t, base}, id: id}
		if final := p.untilDone(time.Minute); final.Status != "completed" {
			t.Fatalf("the job ended %s, want completed", final.Status)
		}
		cb := waitForDelivery(t, base, id, "delivered")
		if cb.Attempts != 3 || cb.LastError != "" {
			t.Errorf("the status says %+v, want delivered after 3 attempts and no error", cb)
		}
		finished := recv.deliveriesOf("msg_" + id + "_finished")
		if len(finished) != 3 {
			t.Fatalf("the receiver saw %d attempts at the job's end, want 3", len(finished))
		}
		for i, d := range finished {
			if d.event != "job.finished" || d.verifyErr != nil {
				t.Errorf("attempt %d: event %q, signature check %v", i+1, d.event, d.verifyErr)
			}
			if d.body != finished[0].body {
				t.Errorf("attempt %d's body differs from the first's:\n%s\n%s", i+1, d.body, finished[0].body)
			}
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(finished[2].body), &body); err != nil {
			t.Fatal(err)
		}
		if body["job_id"] != id || body["status"] != "completed" || body["callback"] != nil {
			t.Errorf("the delivered body is %s, want the job's final status body without its callback", finished[2].body)
		}
		ready := readyFiles(p.last)
		for _, f := range ready {
			got := recv.deliveriesOf("msg_" + id + "_file_" + f)
			if len(got) != 3 || got[2].event != "file.ready" || got[2].verifyErr != nil ||
				!strings.Contains(got[2].body, `"file_id":`+f) {
				t.Errorf("file %s: %d attempts, last %+v; want 3, the last a verified file.ready of it", f, len(got), got)
			}
		}
		m := scrape(t, base+"/metrics", "")
		if got, want := m.value("longhaul_webhook_deliveries_total", "outcome", metrics.WebhookDelivered), float64(1+len(ready)); got != want {
			t.Errorf("deliveries delivered = %v, want %v (the job's end and its ready files)", got, want)
		}
		if got, want := m.value("longhaul_webhook_deliveries_total", "outcome", metrics.WebhookRejected), float64(2*(1+len(ready))); got != want {
			t.Errorf("deliveries rejected = %v, want %v", got, want)
		}
	})

	t.Run("a receiver down for good: the job completes, the delivery ends failed", func(t *testing.T) {
		id := postWithCallback(t, base, "http://"+closedAddr(t)+"/hooks")
		p := &poller{client: client{t, base}, id: id}
		if final := p.untilDone(time.Minute); final.Status != "completed" {
			t.Fatalf("the job ended %s, want completed", final.Status)
		}
		cb := waitForDelivery(t, base, id, "failed")
		if cb.Attempts != 3 || !strings.Contains(cb.LastError, "no answer") {
			t.Errorf("the status says %+v, want failed after 3 attempts with why", cb)
		}
		m := scrape(t, base+"/metrics", "")
		if got := m.value("longhaul_webhook_deliveries_total", "outcome", metrics.WebhookGaveUp); got != 1 {
			t.Errorf("deliveries given up = %v, want 1", got)
		}
		if got := m.value("longhaul_webhook_deliveries_total", "outcome", metrics.WebhookFailed); got != 3 {
			t.Errorf("deliveries failed = %v, want 3", got)
		}
	})
}

// TestWebhookOutcomesAreTheMetricsLabels keeps the deliverer's outcomes the labels the
// metrics count.
func TestWebhookOutcomesAreTheMetricsLabels(t *testing.T) {
	got := []string{webhook.OutcomeDelivered, webhook.OutcomeRejected, webhook.OutcomeFailed, webhook.OutcomeGaveUp}
	want := []string{metrics.WebhookDelivered, metrics.WebhookRejected, metrics.WebhookFailed, metrics.WebhookGaveUp}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-metrics +webhook):\n%s", diff)
	}
}

func newWebhookSecret(t *testing.T) string {
	t.Helper()
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(rand.Text()[:24]))
}

// postWithCallback starts a job of the mixed scenario's files with a callback.
func postWithCallback(t *testing.T, base, url string, events ...string) string {
	t.Helper()
	req := map[string]any{"file_ids": mixedFiles, "callback_url": url}
	if len(events) > 0 {
		req["callback_events"] = events
	}
	body, _ := json.Marshal(req)
	resp, err := http.Post(base+"/v1/download/initiate", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		JobID string `json:"job_id"`
	}
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(data, &out) != nil {
		t.Fatalf("initiate = %d %s", resp.StatusCode, data)
	}
	return out.JobID
}

// callbackState is the callback of a status body.
type callbackState struct {
	URL       string   `json:"url"`
	Events    []string `json:"events"`
	State     string   `json:"state"`
	Attempts  int      `json:"attempts"`
	LastError string   `json:"last_error"`
}

// waitForDelivery polls job id's status until its callback is in state.
func waitForDelivery(t *testing.T, base, id, state string) callbackState {
	t.Helper()
	var cb callbackState
	proctest.WaitUntil(t, 30*time.Second, "the callback of job "+id+" to be "+state, func() bool {
		resp, err := http.Get(base + "/v1/download/status/" + id)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s struct {
			Callback *callbackState `json:"callback"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || s.Callback == nil {
			t.Fatalf("status of job %s has no callback (%v)", id, err)
		}
		cb = *s.Callback
		return cb.State == state
	})
	return cb
}

func readyFiles(s jobStatus) []string {
	var out []string
	for _, f := range s.Files {
		if f.Status == "ready" {
			out = append(out, jsonNumber(f.FileID))
		}
	}
	return out
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// receiver is a webhook receiver that answers 503 to the first failFirst attempts of every
// delivery and 204 after, and checks every signature with each of its secrets.
type receiver struct {
	url       string
	failFirst int
	verifiers []*standardwebhooks.Webhook

	mu  sync.Mutex
	got []delivery
}

// delivery is one attempt the receiver saw.
type delivery struct {
	id, event, body string
	// verifyErr is the first failed check of its signature, by any of the secrets.
	verifyErr error
}

func newReceiver(t *testing.T, failFirst int, secrets ...string) *receiver {
	t.Helper()
	r := &receiver{failFirst: failFirst}
	for _, s := range secrets {
		v, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		r.verifiers = append(r.verifiers, v)
	}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := delivery{id: req.Header.Get("webhook-id"), event: req.Header.Get(webhook.EventHeader), body: string(body)}
	for _, v := range r.verifiers {
		if err := v.Verify(body, req.Header); err != nil && d.verifyErr == nil {
			d.verifyErr = err
		}
	}
	r.mu.Lock()
	r.got = append(r.got, d)
	seen := len(r.deliveriesOfLocked(d.id))
	r.mu.Unlock()
	if seen <= r.failFirst {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) deliveriesOf(id string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deliveriesOfLocked(id)
}

func (r *receiver) deliveriesOfLocked(id string) []delivery {
	return slices.DeleteFunc(slices.Clone(r.got), func(d delivery) bool { return d.id != id })
}
