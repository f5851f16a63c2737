package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
)

// The outcomes of one delivery attempt, as the metrics' label names them.
const (
	// OutcomeDelivered: the receiver answered 2xx.
	OutcomeDelivered = "delivered"
	// OutcomeRejected: the receiver answered with another status (a redirect included).
	OutcomeRejected = "rejected"
	// OutcomeFailed: no answer came: the address was refused, the connection failed or
	// the attempt timed out.
	OutcomeFailed = "failed"
	// OutcomeGaveUp: the last attempt failed too, and the delivery is dropped.
	OutcomeGaveUp = "gave_up"
)

// EventHeader names the event of a delivery, so a receiver can tell a job's end from a
// file's readiness before it reads the body.
const EventHeader = "Longhaul-Event"

// Store is what a delivery needs of the job store.
type Store interface {
	Get(ctx context.Context, id string) (*jobs.Job, error)
	RecordDelivery(ctx context.Context, id string, state jobs.DeliveryState, attempt int, lastError string) error
}

var _ Store = (*jobs.Store)(nil)

// Renderer renders the bodies of deliveries as the API renders jobs.
type Renderer interface {
	// FinishedBody is the job's final status body, as GET /v1/download/status/{id} gives it.
	FinishedBody(job *jobs.Job) ([]byte, error)
	// FileReadyBody says that file fileID of the job is ready, with its status entry.
	FileReadyBody(job *jobs.Job, fileID int64) ([]byte, error)
}

// Observer is told the outcome of every delivery attempt, for metrics. It must not block.
type Observer interface {
	WebhookDelivery(outcome string)
}

type unobserved struct{}

func (unobserved) WebhookDelivery(string) {}

// maxAnswer is as much of a receiver's answer as is read, so the connection can be reused.
const maxAnswer = 64 << 10

// Deliverer runs webhook tasks: one attempt at one delivery per task.
type Deliverer struct {
	store  Store
	render Renderer
	signer *Signer
	client *http.Client
	obs    Observer
	log    *slog.Logger
	now    func() time.Time
}

var _ asynq.Handler = (*Deliverer)(nil)

// NewDeliverer returns a Deliverer that signs with signer and connects only where policy
// permits, each attempt bounded by opts' timeout. A nil obs observes nothing.
func NewDeliverer(store Store, render Renderer, signer *Signer, policy Policy, opts tasks.WebhookOptions,
	obs Observer, log *slog.Logger) *Deliverer {
	if obs == nil {
		obs = unobserved{}
	}
	return &Deliverer{store: store, render: render, signer: signer, client: policy.Client(opts.WithDefaults().Timeout),
		obs: obs, log: log, now: time.Now}
}

// ProcessTask makes one attempt at the delivery a task names. An error makes asynq retry it
// after the back-off, until its retries are spent.
func (d *Deliverer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseWebhookPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	job, err := d.store.Get(ctx, p.JobID)
	if errors.Is(err, jobs.ErrNotFound) {
		d.log.WarnContext(ctx, "webhook dropped: its job is gone", "job", p.JobID, "event", p.Event)
		return nil
	}
	if err != nil {
		return err
	}
	if job.Callback == nil {
		return nil
	}
	if p.Event == tasks.EventJobFinished && job.Callback.State != jobs.DeliveryPending {
		// Delivered or given up already: this task is a repeat of one that is gone.
		return nil
	}
	body, err := d.body(job, p)
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	last := retried >= maxRetry
	outcome, sendErr := d.send(ctx, job.Callback.URL, p, body)
	d.obs.WebhookDelivery(outcome)
	if sendErr != nil && last {
		d.obs.WebhookDelivery(OutcomeGaveUp)
	}
	if p.Event == tasks.EventJobFinished {
		if err := d.record(ctx, p.JobID, retried+1, sendErr, last); err != nil {
			// The delivery happened or not regardless; only its record is behind.
			d.log.WarnContext(ctx, "webhook delivery state not recorded", "job", p.JobID, "err", err)
		}
	}
	if sendErr != nil {
		d.log.InfoContext(ctx, "webhook attempt failed", "job", p.JobID, "event", p.Event, "attempt", retried+1,
			"last", last, "err", sendErr)
		return sendErr
	}
	return nil
}

func (d *Deliverer) body(job *jobs.Job, p tasks.WebhookPayload) ([]byte, error) {
	if p.Event == tasks.EventFileReady {
		return d.render.FileReadyBody(job, p.FileID)
	}
	return d.render.FinishedBody(job)
}

// record writes the state of the delivery of a job's end after attempt.
func (d *Deliverer) record(ctx context.Context, id string, attempt int, sendErr error, last bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	switch {
	case sendErr == nil:
		return d.store.RecordDelivery(ctx, id, jobs.DeliveryDelivered, attempt, "")
	case last:
		return d.store.RecordDelivery(ctx, id, jobs.DeliveryFailed, attempt, sendErr.Error())
	default:
		return d.store.RecordDelivery(ctx, id, jobs.DeliveryPending, attempt, sendErr.Error())
	}
}

// send POSTs one signed delivery and says how it went.
func (d *Deliverer) send(ctx context.Context, target string, p tasks.WebhookPayload, body []byte) (outcome string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return OutcomeFailed, fmt.Errorf("build the request: %w", err)
	}
	id, at := p.MessageID(), d.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "longhaul-webhooks")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	req.Header.Set("webhook-signature", d.signer.Sign(id, at, body))
	req.Header.Set(EventHeader, p.Event)
	resp, err := d.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrAddressRefused) {
			return OutcomeFailed, fmt.Errorf("the callback's host now resolves to an address that is not public")
		}
		return OutcomeFailed, fmt.Errorf("no answer from the receiver: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return OutcomeRejected, fmt.Errorf("the receiver answered %d", resp.StatusCode)
	}
	return OutcomeDelivered, nil
}

// unwrapURLError drops the "Post URL:" of a client error: the URL is the job's own, shown
// beside the error already.
func unwrapURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
