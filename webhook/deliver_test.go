package webhook_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/longhaul-dev/longhaul/webhook"
)

// bodies renders deliveries as a constant, enough for what the deliverer does with them.
type bodies struct{}

func (bodies) FinishedBody(job *jobs.Job) ([]byte, error) {
	return []byte(`{"job_id":"` + job.ID + `"}`), nil
}
func (bodies) FileReadyBody(*jobs.Job, int64) ([]byte, error) {
	return []byte(`{"event":"file.ready"}`), nil
}

// deliverSetup is a finished job whose callback names a receiver on loopback by a host
// name, "localhost", which is looked up only as the delivery dials.
func deliverSetup(t *testing.T) (store *jobs.Store, id string, hits *atomic.Int32) {
	t.Helper()
	hits = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	store = jobs.NewStore(redistest.Start(t, redistest.Options{}).Client(), jobs.Options{})
	ctx := context.Background()
	id, _, err := store.Submit(ctx, jobs.Request{FileIDs: []int64{70000},
		CallbackURL: strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/hooks"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	return store, id, hits
}

func deliver(t *testing.T, store *jobs.Store, policy webhook.Policy, id string) error {
	t.Helper()
	signer, err := webhook.ParseSecrets(secretOf('s'))
	if err != nil {
		t.Fatal(err)
	}
	d := webhook.NewDeliverer(store, bodies{}, signer, policy, tasks.WebhookOptions{}, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	task, err := tasks.NewWebhookTask(tasks.WebhookPayload{JobID: id, Event: tasks.EventJobFinished}, tasks.WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Called outside asynq, the attempt is taken for the last one.
	return d.ProcessTask(context.Background(), asynq.NewTask(task.Type(), task.Payload()))
}

func callbackOf(t *testing.T, store *jobs.Store, id string) jobs.Callback {
	t.Helper()
	job, err := store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return *job.Callback
}

// TestDeliveryRefusesARebindingHost: a host that resolves to loopback when the delivery
// dials (as after a DNS rebinding) gets nothing, and the delivery ends failed saying why.
func TestDeliveryRefusesARebindingHost(t *testing.T) {
	store, id, hits := deliverSetup(t)
	if err := deliver(t, store, webhook.Policy{AllowHTTP: true}, id); err == nil {
		t.Fatal("the delivery to a loopback address went through")
	}
	cb := callbackOf(t, store, id)
	if hits.Load() != 0 || cb.State != jobs.DeliveryFailed || cb.Attempts != 1 || !strings.Contains(cb.LastError, "not public") {
		t.Errorf("receiver hit %d times, callback %+v; want no hit, failed after 1 attempt saying why", hits.Load(), cb)
	}
}

// TestDeliveryOnce: a delivered end is not delivered again by a repeated task.
func TestDeliveryOnce(t *testing.T) {
	store, id, hits := deliverSetup(t)
	allowed := webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128")}}
	for range 2 {
		if err := deliver(t, store, allowed, id); err != nil {
			t.Fatal(err)
		}
	}
	if cb := callbackOf(t, store, id); hits.Load() != 1 || cb.State != jobs.DeliveryDelivered || cb.Attempts != 1 {
		t.Errorf("receiver hit %d times, callback %+v; want one delivery", hits.Load(), cb)
	}
}
