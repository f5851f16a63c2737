package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/live"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/longhaul-dev/longhaul/webhook"
)

// This file is the wire format of a job: the status body, the live snapshot and the live
// events, as the contract defines them. The store keeps the job's state; what only the API
// knows (the URLs of its own routes, the polling interval) is added here.

// pollAfterMS is the interval the status body suggests to polling clients.
const pollAfterMS = 1000

// statusBody is the body of GET /v1/download/status/{job_id}, and the job of a snapshot.
type statusBody struct {
	JobID       string        `json:"job_id"`
	Status      jobs.Status   `json:"status"`
	Seq         int64         `json:"seq"`
	Epoch       string        `json:"epoch"`
	Progress    jobs.Progress `json:"progress"`
	Files       []fileBody    `json:"files"`
	Error       *jobs.Error   `json:"error"`
	Waiting     *jobs.Waiting `json:"waiting"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
	FinishedAt  *time.Time    `json:"finished_at"`
	PollAfterMS int           `json:"poll_after_ms"`
	// Callback is the job's webhook and how the delivery of its end fares, when it has one.
	Callback *jobs.Callback `json:"callback,omitempty"`
}

// fileBody is one file of the status body: its state, and where to download it once ready.
type fileBody struct {
	jobs.File
	DownloadURL string `json:"download_url,omitempty"`
}

func statusOf(job *jobs.Job) statusBody {
	files := make([]fileBody, len(job.Files))
	for i, f := range job.Files {
		files[i] = fileBody{File: f}
		if f.Status == jobs.StatusReady {
			files[i].DownloadURL = fileURL(job.ID, f.ID)
		}
	}
	return statusBody{JobID: job.ID, Status: job.Status, Seq: job.Seq, Epoch: job.Epoch, Progress: job.Progress, Files: files,
		Error: job.Error, Waiting: job.Waiting, CreatedAt: job.CreatedAt, UpdatedAt: job.UpdatedAt, FinishedAt: job.FinishedAt,
		PollAfterMS: pollAfterMS, Callback: job.Callback}
}

// WebhookBodies render the bodies of a job's webhooks as the API renders the job, for the
// workers that deliver them.
type WebhookBodies struct{}

var _ webhook.Renderer = WebhookBodies{}

// FinishedBody is the job's status body, without its callback: the state of the delivery
// changes with every attempt, and the body of one delivery must not.
func (WebhookBodies) FinishedBody(job *jobs.Job) ([]byte, error) {
	body := statusOf(job)
	body.Callback = nil
	return json.Marshal(body)
}

// fileReadyBody is the body of a file.ready delivery.
type fileReadyBody struct {
	Event string   `json:"event"`
	JobID string   `json:"job_id"`
	File  fileBody `json:"file"`
}

// FileReadyBody says that file fileID of the job is ready, with the file's entry of the
// status body.
func (WebhookBodies) FileReadyBody(job *jobs.Job, fileID int64) ([]byte, error) {
	for _, f := range job.Files {
		if f.ID == fileID && f.Status == jobs.StatusReady {
			return json.Marshal(fileReadyBody{Event: tasks.EventFileReady, JobID: job.ID,
				File: fileBody{File: f, DownloadURL: fileURL(job.ID, f.ID)}})
		}
	}
	return nil, fmt.Errorf("file %d is not a ready file of job %s", fileID, job.ID)
}

// renderer renders jobs for the hub. A snapshot wraps the job's status body, which it
// shares with the status reads of the same state.
type renderer struct{ bodies *bodies }

var _ live.Renderer = renderer{}

// Snapshot is the first message of every live connection: {"type":"snapshot","seq","epoch",
// "job"}, the job being its status body.
func (r renderer) Snapshot(job *jobs.Job) []byte {
	body := r.bodies.of(job)
	epoch, _ := json.Marshal(job.Epoch)
	msg := make([]byte, 0, len(body)+len(epoch)+64)
	msg = append(msg, `{"type":"snapshot","seq":`...)
	msg = strconv.AppendInt(msg, job.Seq, 10)
	msg = append(msg, `,"epoch":`...)
	msg = append(msg, epoch...)
	msg = append(msg, `,"job":`...)
	msg = append(msg, body...)
	return append(msg, '}')
}

// Event passes the store's event on, adding the download URL to the event of a file that
// became ready, so the event carries every field of the file's entry in the status body.
func (renderer) Event(jobID string, ev jobs.EventHeader, payload []byte) []byte {
	if ev.Type != "file" || ev.Status != jobs.StatusReady || !bytes.HasSuffix(payload, []byte("}")) {
		return payload
	}
	var file struct {
		ID int64 `json:"file_id"`
	}
	if json.Unmarshal(payload, &file) != nil {
		return payload
	}
	url := strconv.Quote(fileURL(jobID, file.ID))
	out := make([]byte, 0, len(payload)+len(url)+20)
	out = append(out, payload[:len(payload)-1]...)
	out = append(out, `,"download_url":`...)
	out = append(out, url...)
	return append(out, '}')
}
