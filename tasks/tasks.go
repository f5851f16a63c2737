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
// job's state; the payload only names it.
type DownloadPayload struct {
	JobID string `json:"job_id"`
}

// Options derive a task's limits from the work it carries.
type Options struct {
	// FileTimeMax is the longest a file may take to prepare. If zero, 30 s is used.
	FileTimeMax time.Duration
	// FileConcurrency is how many files of a job are prepared at once. If zero, 4 is used.
	FileConcurrency int
	// MaxRetry is how many times a failed attempt is retried. If zero, 10 is used.
	MaxRetry int
	// Retention is how long a finished task stays visible in the dashboard. If zero, 24 h is used.
	Retention time.Duration
}

// Timeout is how long one attempt at a job of files files may run: twice the time its
// files take at worst, for transient errors and their back-off, and a minute more. Asynq's
// default of 30 minutes would cut long jobs short and leave short ones hanging.
func (o Options) Timeout(files int) time.Duration {
	fileTime, concurrency := o.FileTimeMax, o.FileConcurrency
	if fileTime <= 0 {
		fileTime = 30 * time.Second
	}
	if concurrency <= 0 {
		concurrency = 4
	}
	rounds := (files + concurrency - 1) / concurrency
	return time.Duration(rounds)*max(fileTime, time.Second)*2 + time.Minute
}

func (o Options) maxRetry() int {
	if o.MaxRetry <= 0 {
		return 10
	}
	return o.MaxRetry
}

func (o Options) retention() time.Duration {
	if o.Retention <= 0 {
		return 24 * time.Hour
	}
	return o.Retention
}

// NewDownloadTask returns the task of job jobID, which has files files. Its task id is the
// job id, so one job never has two tasks.
func NewDownloadTask(jobID string, files int, o Options) (*asynq.Task, error) {
	payload, err := json.Marshal(DownloadPayload{JobID: jobID})
	if err != nil {
		return nil, fmt.Errorf("encode payload of job %s: %w", jobID, err)
	}
	return asynq.NewTask(TypeDownload, payload,
		asynq.TaskID(jobID),
		asynq.Queue(Queue),
		asynq.Timeout(o.Timeout(files)),
		asynq.MaxRetry(o.maxRetry()),
		asynq.Retention(o.retention()),
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
