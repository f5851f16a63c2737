package client

import (
	"regexp"
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

// Job is a download job as the status endpoint and snapshots show it.
type Job struct {
	ID     string `json:"job_id"`
	Status Status `json:"status"`
	Seq    int64  `json:"seq"`
	// Epoch names one history of the job's record. It changes when the record lost writes
	// (a Redis failover): what was known of another epoch no longer holds, and a snapshot
	// of the new one replaces it whole, even with a lower Seq.
	Epoch    string   `json:"epoch"`
	Progress Progress `json:"progress"`
	Files    []File   `json:"files"`
	// Error says why a failed job failed; nil otherwise.
	Error *JobError `json:"error"`
	// Waiting is set while the job's worker was lost and the job waits to resume from its
	// checkpoint; nil otherwise.
	Waiting    *Waiting   `json:"waiting"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// PollAfterMS is how long a poller should wait before asking again, in milliseconds.
	PollAfterMS int `json:"poll_after_ms,omitempty"`
	// Callback is the job's webhook and how the delivery of its end fares; nil for a job
	// started without a CallbackURL.
	Callback *Callback `json:"callback,omitempty"`
}

// Callback is a job's webhook: where its end is POSTed and how that delivery fares.
type Callback struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	// State is DeliveryPending until the job's end is delivered or every retry failed.
	State     DeliveryState `json:"state"`
	Attempts  int           `json:"attempts"`
	LastError string        `json:"last_error"`
}

// DeliveryState is how the delivery of a job's end to its callback fares.
type DeliveryState string

// The states of a callback's delivery.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryFailed    DeliveryState = "failed"
)

// File returns the job's file with the given id.
func (j *Job) File(id int64) (File, bool) {
	for _, f := range j.Files {
		if f.ID == id {
			return f, true
		}
	}
	return File{}, false
}

// clone returns a copy of j that shares nothing with it.
func (j *Job) clone() *Job {
	c := *j
	c.Files = append([]File(nil), j.Files...)
	if j.Error != nil {
		e := *j.Error
		c.Error = &e
	}
	if j.Waiting != nil {
		w := *j.Waiting
		c.Waiting = &w
	}
	if j.Callback != nil {
		cb := *j.Callback
		cb.Events = append([]string(nil), j.Callback.Events...)
		c.Callback = &cb
	}
	return &c
}

// File is the state of one file of a job.
type File struct {
	ID      int64   `json:"file_id"`
	Status  Status  `json:"status"`
	Percent float64 `json:"percent"`
	// Attempt counts the preparations of this file that were started, while it is processing.
	Attempt int `json:"attempt,omitempty"`
	// Size is the length in bytes of a ready file.
	Size int64 `json:"size,omitempty"`
	// DownloadURL is the path of a ready file on the server.
	DownloadURL string `json:"download_url,omitempty"`
	// Error says why an unavailable or failed file is not ready.
	Error string `json:"error,omitempty"`
}

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

// JobError says why a job failed.
type JobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Waiting says that a job's worker was lost and when the job is expected to resume.
type Waiting struct {
	// Reason is why the job waits: WaitingWorkerLost.
	Reason string `json:"reason"`
	// Since is when the job started waiting.
	Since time.Time `json:"since"`
	// ResumeBy is when the job is expected to run again from its checkpoint.
	ResumeBy time.Time `json:"resume_by"`
}

// WaitingWorkerLost is the Waiting reason of a job whose worker stopped answering.
const WaitingWorkerLost = "worker_lost"

// Initiated is the server's answer to Initiate.
type Initiated struct {
	JobID      string `json:"job_id"`
	Status     Status `json:"status"`
	TotalFiles int    `json:"total_files"`
	Links      Links  `json:"links"`
	// Created is false when the idempotency key named a job that existed already.
	Created bool `json:"-"`
}

// Links are the paths of a job's endpoints on the server.
type Links struct {
	Status string `json:"status"`
	WS     string `json:"ws"`
	Events string `json:"events"`
	Cancel string `json:"cancel"`
}

// jobIDPattern is "dl_" and a ULID in upper-case Crockford base32.
var jobIDPattern = regexp.MustCompile(`^dl_[0-7][0-9A-HJKMNP-TV-Z]{25}$`)

// ValidJobID reports whether id has the shape of a longhaul job id, such as
// dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB. The server refuses anything else before looking it up.
func ValidJobID(id string) bool {
	return jobIDPattern.MatchString(id)
}
