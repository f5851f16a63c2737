package jobs

import (
	"math"
	"time"
)

// Status is the state of a job or of one of its files.
type Status string

// The statuses of jobs and files. A job is queued, then processing, then completed, failed
// or canceled. A file is queued, then processing, then ready, unavailable, failed or
// canceled.
const (
	StatusQueued      Status = "queued"
	StatusProcessing  Status = "processing"
	StatusCompleted   Status = "completed"
	StatusFailed      Status = "failed"
	StatusCanceled    Status = "canceled"
	StatusReady       Status = "ready"
	StatusUnavailable Status = "unavailable"
)

// Terminal reports whether nothing will change a job or file in this status any more.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCanceled, StatusReady, StatusUnavailable:
		return true
	}
	return false
}

// Job is the record of one download job, as the status endpoint and snapshots show it.
type Job struct {
	ID         string     `json:"job_id"`
	Status     Status     `json:"status"`
	Seq        int64      `json:"seq"`
	Epoch      string     `json:"epoch"`
	Progress   Progress   `json:"progress"`
	Files      []File     `json:"files"`
	Error      *Error     `json:"error"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at"`

	// Waiting says, while the job's worker is lost, since when it waits for another and by
	// when one is expected to resume it; nil otherwise.
	Waiting *Waiting `json:"waiting"`

	// Callback is where the job's webhooks go and how the delivery of its end fares; nil
	// when the job asked for none.
	Callback *Callback `json:"callback,omitempty"`

	// Principal is who created the job (an API key, or a client address when auth is off).
	Principal string `json:"-"`
	// Task is the id of the asynq task that may run the job: the job id, or a rescue's.
	Task string `json:"-"`
	// Enqueued reports whether the job's task is known to have been queued.
	Enqueued bool `json:"-"`
	// Attempts counts the attempts that claimed the job.
	Attempts int `json:"-"`
	// HeartbeatAt is the last sign of life of its running attempt.
	HeartbeatAt time.Time `json:"-"`
}

// Waiting is why a running job waits for a worker, since when, and by when it is expected
// to resume from its checkpoint.
type Waiting struct {
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
	ResumeBy time.Time `json:"resume_by"`
}

// WaitingWorkerLost is the reason of a job whose worker stopped showing signs of life.
const WaitingWorkerLost = "worker_lost"

// File is the state of one file of a job. Every field it has is also carried by the file's
// events, so a live client never has to refetch. Where a ready file is downloaded is the
// API's to say: it adds the URL of its own route.
type File struct {
	ID      int64   `json:"file_id"`
	Status  Status  `json:"status"`
	Percent float64 `json:"percent"`
	Attempt int     `json:"attempt,omitempty"`
	Size    int64   `json:"size,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// Callback is a job's webhook: the URL its end (and, if asked, each ready file) is POSTed
// to, and the state of the delivery of its end.
type Callback struct {
	URL string `json:"url"`
	// Events are the events asked for beside the job's end, which is always delivered.
	Events []string `json:"events"`
	// State is pending until the job's end is delivered (delivered) or given up (failed).
	State DeliveryState `json:"state"`
	// Attempts counts the attempts at delivering the job's end.
	Attempts int `json:"attempts"`
	// LastError says why the last attempt failed; empty when it did not.
	LastError string `json:"last_error"`
	// Revision counts the changes of the delivery's state, which change the job's status
	// body but not its seq (see Version).
	Revision int `json:"-"`
}

// DeliveryState is how the delivery of a job's end fares.
type DeliveryState string

// The states of a delivery.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryFailed    DeliveryState = "failed"
)

// Progress sums up the files of a job. Percent is the mean of the files' percents, so it
// reaches 100 once every file is terminal, whatever the outcome.
type Progress struct {
	Percent          float64 `json:"percent"`
	FilesTotal       int     `json:"files_total"`
	FilesDone        int     `json:"files_done"`
	FilesReady       int     `json:"files_ready"`
	FilesUnavailable int     `json:"files_unavailable"`
	FilesFailed      int     `json:"files_failed"`
}

// Error says why a job failed.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// The codes of job errors.
const (
	ErrorCodeNoFiles      = "no_files"
	ErrorCodeTimeout      = "timeout"
	ErrorCodeAttempts     = "attempts_exhausted"
	ErrorCodeTaskRemoved  = "task_removed"
	ErrorCodeTaskCanceled = "task_canceled"
)

// ProgressOf sums up files the way the store's scripts do.
func ProgressOf(files []File) Progress {
	p := Progress{FilesTotal: len(files)}
	sum := 0.0
	for _, f := range files {
		sum += f.Percent
		if f.Status.Terminal() {
			p.FilesDone++
		}
		switch f.Status {
		case StatusReady:
			p.FilesReady++
		case StatusUnavailable:
			p.FilesUnavailable++
		case StatusFailed:
			p.FilesFailed++
		}
	}
	if len(files) > 0 {
		p.Percent = RoundPercent(sum / float64(len(files)))
	}
	return p
}

// RoundPercent rounds a percentage to one decimal, the precision of every percent longhaul
// reports.
func RoundPercent(p float64) float64 {
	return math.Round(p*10) / 10
}

// EventHeader is the part of an event that the fan-out needs to order and route it,
// decoded without the rest.
type EventHeader struct {
	Type   string `json:"type"`
	Seq    int64  `json:"seq"`
	Epoch  string `json:"epoch"`
	Status Status `json:"status"`
}

// Final reports whether the event ends its job.
func (h EventHeader) Final() bool {
	return h.Type == "job" && h.Status.Terminal()
}
