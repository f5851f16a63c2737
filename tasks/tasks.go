// Package tasks is the vocabulary shared by the API, which enqueues download tasks, and the
// worker, which runs them: task types, payloads and their options. It holds no handler code.
package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeDownload is the type of the one task that runs a whole download job.
const TypeDownload = "download:prepare"

// Queue is the queue download tasks go to.
const Queue = "downloads"

// DownloadPayload is the payload of a download task. The job record in Redis holds the
// job's state; the payload only names it, who it runs for (whose share of the workers it
// takes), and the request that created it (whose id the worker's log lines of the job carry).
type DownloadPayload struct {
	JobID     string `json:"job_id"`
	Principal string `json:"principal,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// Defaults of Options, also the defaults of the settings that configure them.
const (
	// FileConcurrencyDefault is how many files of one job the worker prepares at once.
	FileConcurrencyDefault = 4
	// MaxRetryDefault is how many times an interrupted attempt is retried.
	MaxRetryDefault = 10
)

// Options derive a task's limits from the work it carries.
type Options struct {
	// FileTimeMax is the longest a file may take to prepare. Below 1 s, 1 s is used.
	FileTimeMax time.Duration
	// FileConcurrency is how many files of a job are prepared at once. If zero,
	// FileConcurrencyDefault is used.
	FileConcurrency int
	// MaxRetry is how many times a failed attempt is retried. If zero, MaxRetryDefault is
	// used.
	MaxRetry int
	// Retention is how long a finished task stays visible in the dashboard. If zero, it is
	// deleted as soon as it finishes.
	Retention time.Duration
}

// WithDefaults returns o with every zero field that has a default set to it.
func (o Options) WithDefaults() Options {
	if o.FileConcurrency <= 0 {
		o.FileConcurrency = FileConcurrencyDefault
	}
	if o.MaxRetry <= 0 {
		o.MaxRetry = MaxRetryDefault
	}
	return o
}

// Timeout is how long one attempt at a job of files files may run: twice the time its
// files take at worst, for transient errors and their back-off, and a minute more. Asynq's
// default of 30 minutes would cut long jobs short and leave short ones hanging.
func (o Options) Timeout(files int) time.Duration {
	o = o.WithDefaults()
	rounds := (files + o.FileConcurrency - 1) / o.FileConcurrency
	return time.Duration(rounds)*max(o.FileTimeMax, time.Second)*2 + time.Minute
}

// NewDownloadTask returns the task of the job p names, which has files files. Its task id
// is the job id, so one job never has two tasks.
func NewDownloadTask(p DownloadPayload, files int, o Options) (*asynq.Task, error) {
	return newTask(p.JobID, p, files, o)
}

// RescueID is the task id of the n-th rescue of job jobID: the task that resumes it when
// the worker of its task before was lost. Two rescuers of one loss name the same task, so
// they make one between them.
func RescueID(jobID string, n int) string { return fmt.Sprintf("%s~%d", jobID, n) }

// NewDownloadTaskWithID returns the task of the job p names under the task id taskID: a
// rescue's (RescueID), which takes the job over from a task whose worker was lost, or the
// job's own, queued again when its first enqueue failed.
func NewDownloadTaskWithID(taskID string, p DownloadPayload, files int, o Options) (*asynq.Task, error) {
	return newTask(taskID, p, files, o)
}

func newTask(taskID string, p DownloadPayload, files int, o Options) (*asynq.Task, error) {
	o = o.WithDefaults()
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode payload of job %s: %w", p.JobID, err)
	}
	return asynq.NewTask(TypeDownload, payload,
		asynq.TaskID(taskID),
		asynq.Queue(Queue),
		asynq.Timeout(o.Timeout(files)),
		asynq.MaxRetry(o.MaxRetry),
		asynq.Retention(o.Retention),
	), nil
}

// ParseDownloadPayload reads the payload of a download task.
func ParseDownloadPayload(data []byte) (DownloadPayload, error) {
	var p DownloadPayload
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("decode download payload: %w", err)
	}
	if p.JobID == "" {
		return p, fmt.Errorf("decode download payload: no job id")
	}
	return p, nil
}

// TypeWebhook is the type of the task that delivers one webhook: one event of a job, POSTed
// to the job's callback URL. Each delivery is a task of its own, in a queue of its own, so
// that a slow or dead receiver holds up only its own deliveries, never a job.
const TypeWebhook = "webhook:deliver"

// WebhookQueue is the queue webhook deliveries go to.
const WebhookQueue = "webhooks"

// The events a job's callback is told of. A job's end is always delivered; a file's
// readiness only when the job asked for it (callback_events).
const (
	EventJobFinished = "job.finished"
	EventFileReady   = "file.ready"
)

// WebhookPayload names one delivery: the job, the event, and for a file event the file.
type WebhookPayload struct {
	JobID  string `json:"job_id"`
	Event  string `json:"event"`
	FileID int64  `json:"file_id,omitempty"`
}

// MessageID is the delivery's webhook-id: the same on every attempt, as the Standard
// Webhooks specification asks, so a receiver can drop a repeat; it is also the task id, so
// that queuing one delivery twice (a retried job handler, a janitor) makes one task.
func (p WebhookPayload) MessageID() string {
	if p.Event == EventFileReady {
		return fmt.Sprintf("msg_%s_file_%d", p.JobID, p.FileID)
	}
	return "msg_" + p.JobID + "_finished"
}

// Defaults of WebhookOptions, also the defaults of the settings that configure them.
const (
	// WebhookMaxRetryDefault: with the default back-off, retries span about a day.
	WebhookMaxRetryDefault = 12
	// WebhookTimeoutDefault bounds one attempt: a receiver should answer at once and do
	// its work after.
	WebhookTimeoutDefault = 10 * time.Second
	// WebhookBackoffDefault is the pause before the first retry; it doubles with each.
	WebhookBackoffDefault = 30 * time.Second
	// WebhookBackoffMax caps the pause between two attempts.
	WebhookBackoffMax = 6 * time.Hour
)

// WebhookOptions are the limits of delivery tasks.
type WebhookOptions struct {
	// MaxRetry is how many times a failed delivery is retried before it ends failed. If
	// zero, WebhookMaxRetryDefault is used.
	MaxRetry int
	// Timeout bounds one attempt. If zero, WebhookTimeoutDefault is used.
	Timeout time.Duration
	// Backoff is the pause before the first retry, doubled for each next one up to
	// WebhookBackoffMax. If zero, WebhookBackoffDefault is used.
	Backoff time.Duration
	// Retention is how long a finished delivery task is kept. While it is, its id stays
	// taken and the same delivery cannot be queued again: keep it as long as the job.
	Retention time.Duration
}

// WithDefaults returns o with every zero field that has a default set to it.
func (o WebhookOptions) WithDefaults() WebhookOptions {
	if o.MaxRetry <= 0 {
		o.MaxRetry = WebhookMaxRetryDefault
	}
	if o.Timeout <= 0 {
		o.Timeout = WebhookTimeoutDefault
	}
	if o.Backoff <= 0 {
		o.Backoff = WebhookBackoffDefault
	}
	return o
}

// RetryDelay is the pause before the n-th retry of a delivery (n from 1).
func (o WebhookOptions) RetryDelay(n int) time.Duration {
	o = o.WithDefaults()
	d := o.Backoff
	for i := 1; i < n && d < WebhookBackoffMax; i++ {
		d *= 2
	}
	return min(d, WebhookBackoffMax)
}

// NewWebhookTask returns the task of the delivery p names, under its MessageID.
func NewWebhookTask(p WebhookPayload, o WebhookOptions) (*asynq.Task, error) {
	o = o.WithDefaults()
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode webhook of job %s: %w", p.JobID, err)
	}
	return asynq.NewTask(TypeWebhook, payload,
		asynq.TaskID(p.MessageID()),
		asynq.Queue(WebhookQueue),
		// The attempt's own deadline is the HTTP client's; this one leaves it room to
		// record the outcome.
		asynq.Timeout(o.Timeout+5*time.Second),
		asynq.MaxRetry(o.MaxRetry),
		asynq.Retention(o.Retention),
	), nil
}

// ParseWebhookPayload reads the payload of a webhook task.
func ParseWebhookPayload(data []byte) (WebhookPayload, error) {
	var p WebhookPayload
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("decode webhook payload: %w", err)
	}
	if p.JobID == "" || (p.Event != EventJobFinished && p.Event != EventFileReady) {
		return p, fmt.Errorf("decode webhook payload: no job id or an unknown event %q", p.Event)
	}
	return p, nil
}
