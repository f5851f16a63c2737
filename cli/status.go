package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/longhaul-dev/longhaul/client"
)

const statusHelp = `Usage: longhaul status JOB_ID [flags]

Prints a job's status: the job, its progress and every file. On a terminal it prints a
table; otherwise, or with --json, the status body of the API as one JSON object.

Example:
  longhaul status dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB
`

func runStatus(ctx context.Context, inv *invocation, args []string) int {
	id, c, code := inv.jobCommand(args, "status", statusHelp)
	if code >= 0 {
		return code
	}
	job, err := c.Status(ctx, id)
	if err != nil {
		return inv.fail(err)
	}
	inv.printJob(job)
	if job.Status.Terminal() {
		return outcomeCode(job)
	}
	return ExitOK
}

const cancelHelp = `Usage: longhaul cancel JOB_ID [flags]

Cancels a queued or running job. Files not yet ready end canceled; files already ready
stay downloadable. Cancelling a job that has finished is refused (exit code 5).

Example:
  longhaul cancel dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB
`

func runCancel(ctx context.Context, inv *invocation, args []string) int {
	id, c, code := inv.jobCommand(args, "cancel", cancelHelp)
	if code >= 0 {
		return code
	}
	job, err := c.Cancel(ctx, id)
	var e *client.Error
	if errors.As(err, &e) && e.StatusCode == http.StatusConflict {
		if done, serr := c.Status(ctx, id); serr == nil {
			err = fmt.Errorf("nothing to cancel, the job is %s: %w", done.Status, err)
		}
	}
	if err != nil {
		return inv.fail(err)
	}
	inv.printJob(job)
	return ExitOK
}

// jobCommand parses the arguments of a command that takes one job id, and makes the
// client. A code of -1 means go on.
func (inv *invocation) jobCommand(args []string, name, help string) (string, *client.Client, int) {
	fs := inv.flags(name)
	rest, code := inv.parse(fs, args, help)
	if code >= 0 {
		return "", nil, code
	}
	if len(rest) != 1 {
		return "", nil, inv.usageError("takes one job id, got %d arguments", len(rest))
	}
	if !client.ValidJobID(rest[0]) {
		return "", nil, inv.usageError("%q is not a job id: %v", rest[0], client.ErrInvalidJobID)
	}
	c, err := inv.client()
	if err != nil {
		return "", nil, inv.usageError("%v", err)
	}
	return rest[0], c, -1
}

// printJob prints a status body: JSON as the API has it, or a table for people.
func (inv *invocation) printJob(job *client.Job) {
	if inv.json {
		writeJSON(inv.stdout, job)
		return
	}
	w := inv.stdout
	fmt.Fprintf(w, "%s  %s  %s\n", job.ID, job.Status, progressLine(job.Progress))
	if job.Error != nil {
		fmt.Fprintf(w, "  error %s: %s\n", job.Error.Code, job.Error.Message)
	}
	if job.Waiting != nil {
		fmt.Fprintf(w, "  %s\n", waitingLine(job.Waiting))
	}
	for _, f := range job.Files {
		fmt.Fprintf(w, "  %-8d %-12s %5.1f%%  %s\n", f.ID, f.Status, f.Percent, fileNote(f))
	}
}

// progressLine is a job's progress in words.
func progressLine(p client.Progress) string {
	return fmt.Sprintf("%.1f%% (%d/%d files: %d ready, %d unavailable, %d failed)", p.Percent, p.FilesDone,
		p.FilesTotal, p.FilesReady, p.FilesUnavailable, p.FilesFailed)
}

// waitingLine says why a job is paused and when it should go on.
func waitingLine(w *client.Waiting) string {
	s := "waiting: " + w.Reason
	if w.Reason == client.WaitingWorkerLost {
		s = "waiting: its worker was lost"
	}
	if !w.Since.IsZero() {
		s += " at " + w.Since.Local().Format(time.TimeOnly)
	}
	if !w.ResumeBy.IsZero() {
		s += "; it resumes from its checkpoint by " + w.ResumeBy.Local().Format(time.TimeOnly)
	}
	return s
}

// fileNote is what a file's row says beside its status.
func fileNote(f client.File) string {
	switch {
	case f.Error != "":
		return f.Error
	case f.Status == client.StatusReady:
		return fmt.Sprintf("%d bytes", f.Size)
	case f.Attempt > 1:
		return fmt.Sprintf("attempt %d", f.Attempt)
	}
	return ""
}

// outcomeCode is the exit code of a job that has ended.
func outcomeCode(job *client.Job) int {
	switch {
	case job.Status == client.StatusFailed || job.Status == client.StatusCanceled:
		return ExitJobFailed
	}
	for _, f := range job.Files {
		if f.Status != client.StatusReady {
			return ExitIncomplete
		}
	}
	return ExitOK
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		data, _ = json.Marshal(map[string]string{"type": "error", "message": err.Error()})
	}
	w.Write(append(data, '\n'))
}
