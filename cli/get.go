package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/longhaul-dev/longhaul/client"
)

const getHelp = `Usage: longhaul get FILE_ID[,FILE_ID...] [flags]
       longhaul get --job JOB_ID [flags]

Starts a download job for the given file ids, or attaches to a job with --job, follows
its progress live and saves each file into the output directory as soon as it is ready
(as FILE_ID.bin, written under a temporary name and renamed once complete). Then it prints
a summary. On a terminal it draws a bar per file and one for the whole job; otherwise, or
with --json, it prints one JSON object per line.

Ctrl-C detaches: the job goes on on the server, and it prints the command that attaches
again (files already saved are kept, partial ones resumed). With --cancel, Ctrl-C cancels
the job instead.

Example:
  longhaul get 70000,70007,70014 -o downloads
  longhaul get --job dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB -o downloads
`

const watchHelp = `Usage: longhaul watch JOB_ID [flags]

Follows a job's progress live to its end, without saving its files, then prints a
summary. On a terminal it draws a bar per file and one for the whole job; otherwise, or
with --json, it prints one JSON object per line. Ctrl-C stops watching (the job goes on);
with --cancel, Ctrl-C cancels the job.

Example:
  longhaul watch dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB
`

func runGet(ctx context.Context, inv *invocation, args []string) int {
	fs := inv.flags("get")
	jobID := fs.String("job", "", "attach to this job instead of starting one")
	dir := fs.String("o", ".", "directory to save the files in (made if missing)")
	cancel := fs.Bool("cancel", false, "cancel the job on Ctrl-C, instead of detaching")
	rest, code := inv.parse(fs, args, getHelp)
	if code >= 0 {
		return code
	}
	var ids []int64
	switch {
	case *jobID != "" && len(rest) > 0:
		return inv.usageError("give file ids or --job, not both")
	case *jobID != "" && !client.ValidJobID(*jobID):
		return inv.usageError("%q is not a job id: %v", *jobID, client.ErrInvalidJobID)
	case *jobID == "":
		var err error
		if ids, err = parseFileIDs(rest); err != nil {
			return inv.usageError("%v", err)
		}
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return inv.usageError("output directory: %v", err)
	}
	c, err := inv.client()
	if err != nil {
		return inv.usageError("%v", err)
	}
	f := &follower{inv: inv, c: c, id: *jobID, dir: *dir, cancelOnInterrupt: *cancel}
	if f.id == "" {
		started, err := c.Initiate(ctx, ids, client.InitiateOptions{})
		if err != nil {
			return inv.fail(err)
		}
		f.id, f.created = started.JobID, true
	}
	return f.run(ctx)
}

func runWatch(ctx context.Context, inv *invocation, args []string) int {
	fs := inv.flags("watch")
	cancel := fs.Bool("cancel", false, "cancel the job on Ctrl-C, instead of only stopping to watch")
	rest, code := inv.parse(fs, args, watchHelp)
	if code >= 0 {
		return code
	}
	if len(rest) != 1 {
		return inv.usageError("takes one job id, got %d arguments", len(rest))
	}
	if !client.ValidJobID(rest[0]) {
		return inv.usageError("%q is not a job id: %v", rest[0], client.ErrInvalidJobID)
	}
	c, err := inv.client()
	if err != nil {
		return inv.usageError("%v", err)
	}
	f := &follower{inv: inv, c: c, id: rest[0], cancelOnInterrupt: *cancel}
	return f.run(ctx)
}

// parseFileIDs reads file ids given as one or more comma-separated lists.
func parseFileIDs(args []string) ([]int64, error) {
	if len(args) == 0 {
		return nil, errors.New("give the file ids to download, such as 70000,70007, or --job JOB_ID")
	}
	var ids []int64
	for _, arg := range args {
		for _, part := range strings.Split(arg, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			id, err := strconv.ParseInt(part, 10, 64)
			if err != nil || id <= 0 || id > maxFileID {
				return nil, fmt.Errorf("%q is not a file id: file ids are positive integers below 2^53", part)
			}
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("no file ids given")
	}
	return ids, nil
}

// maxFileID is the largest file id, as the API bounds them.
const maxFileID = 1<<53 - 1

// follower follows one job to its end: get (with dir set, saving each ready file) and
// watch (without).
type follower struct {
	inv               *invocation
	c                 *client.Client
	id                string
	created           bool   // the job was started by this run
	dir               string // where files are saved; empty for watch
	cancelOnInterrupt bool

	view    view
	job     *client.Job // the last state: a snapshot's job with the later events applied
	saves   map[int64]*save
	saved   chan saveResult
	pending int   // downloads running
	err     error // why the watch ended early
}

// save is the download of one ready file.
type save struct {
	path string
	size int64
	done bool
	err  error
}

type saveResult struct {
	fileID int64
	size   int64
	err    error
}

// downloadsAtOnce bounds the files saved at the same time.
const downloadsAtOnce = 4

func (f *follower) run(ctx context.Context) int {
	f.saves = map[int64]*save{}
	f.saved = make(chan saveResult)
	if f.inv.json {
		f.view = &jsonView{w: f.inv.stdout}
	} else {
		f.view = newBarsView(f.inv.stdout)
	}
	f.view.start(f.id, f.created, f.inv.server)
	slots := make(chan struct{}, downloadsAtOnce)
	events := f.c.Watch(ctx, f.id)
	for events != nil || f.pending > 0 {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			f.onEvent(ctx, ev, slots)
		case r := <-f.saved:
			f.pending--
			f.onSaved(r)
		}
	}
	if ctx.Err() != nil {
		return f.interrupted()
	}
	if f.err != nil {
		f.view.stop()
		return f.inv.fail(f.err)
	}
	code := f.exitCode()
	f.view.summary(f.summary(code))
	return code
}

func (f *follower) onEvent(ctx context.Context, ev client.Event, slots chan struct{}) {
	switch ev.Type {
	case client.EventError:
		f.err = ev.Err
		return
	case client.EventChannel:
		f.view.channel(ev.Channel, ev.Reason)
		return
	case client.EventSnapshot, client.EventJob:
		f.job = ev.Job
	case client.EventFile:
		if f.job == nil {
			return
		}
		for i := range f.job.Files {
			if f.job.Files[i].ID == ev.File.ID {
				f.job.Files[i] = *ev.File
			}
		}
		f.job.Status, f.job.Progress, f.job.Seq = ev.Status, ev.Progress, ev.Seq
	}
	f.view.event(ev, f.job)
	for _, file := range f.job.Files {
		if file.Status == client.StatusReady {
			f.startSave(ctx, file, slots)
		}
	}
}

// startSave downloads a ready file in the background, once; a file already saved at its
// path with its size is not downloaded again.
func (f *follower) startSave(ctx context.Context, file client.File, slots chan struct{}) {
	if f.dir == "" || f.saves[file.ID] != nil {
		return
	}
	s := &save{path: filepath.Join(f.dir, fmt.Sprintf("%d.bin", file.ID)), size: file.Size}
	f.saves[file.ID] = s
	f.pending++
	f.view.saving(file.ID)
	go func() {
		r := saveResult{fileID: file.ID}
		if info, err := os.Stat(s.path); err == nil && info.Size() == file.Size {
			r.size = file.Size
		} else {
			slots <- struct{}{}
			r.size, r.err = f.c.DownloadFile(ctx, f.id, file.ID, s.path)
			<-slots
		}
		f.saved <- r
	}()
}

func (f *follower) onSaved(r saveResult) {
	s := f.saves[r.fileID]
	s.done, s.err = r.err == nil, r.err
	if r.err == nil {
		s.size = r.size
	}
	if r.err != nil && errors.Is(r.err, context.Canceled) {
		return // interrupted: the part file stays, to be resumed
	}
	f.view.saved(r.fileID, s.path, r.err)
}

// interrupted ends a run stopped by Ctrl-C: detach, or cancel the job when asked.
func (f *follower) interrupted() int {
	if !f.cancelOnInterrupt {
		f.view.detached(f.id, f.reattach())
		return ExitDetached
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	job, err := f.c.Cancel(ctx, f.id)
	var e *client.Error
	if errors.As(err, &e) && e.StatusCode == http.StatusConflict {
		job, err = f.c.Status(ctx, f.id) // it ended meanwhile: report how
	}
	if err != nil {
		f.view.stop()
		return f.inv.fail(fmt.Errorf("cancel %s after Ctrl-C: %w", f.id, err))
	}
	f.job = job
	code := f.exitCode()
	f.view.summary(f.summary(code))
	return code
}

// reattach is the command that picks the job up again.
func (f *follower) reattach() string {
	if f.dir == "" {
		return "longhaul watch " + f.id
	}
	cmd := "longhaul get --job " + f.id
	if f.dir != "." {
		cmd += " -o " + f.dir
	}
	return cmd
}

// exitCode is the run's outcome: the job's, and for get whether every ready file was saved.
func (f *follower) exitCode() int {
	if f.job == nil {
		return ExitRefused
	}
	code := outcomeCode(f.job)
	if code != ExitOK || f.dir == "" {
		return code
	}
	for _, file := range f.job.Files {
		if s := f.saves[file.ID]; s == nil || !s.done {
			return ExitIncomplete
		}
	}
	return ExitOK
}

// summary is how a run ended, for the view.
func (f *follower) summary(code int) summary {
	s := summary{Type: "summary", JobID: f.id, Status: f.job.Status, Progress: f.job.Progress,
		Error: f.job.Error, ExitCode: code}
	for _, file := range f.job.Files {
		line := summaryFile{FileID: file.ID, Status: file.Status, Size: file.Size, Error: file.Error}
		if sv := f.saves[file.ID]; sv != nil {
			if sv.done {
				line.Path = sv.path
			} else if sv.err != nil {
				line.Error = "not saved: " + sv.err.Error()
			}
		}
		s.Files = append(s.Files, line)
	}
	return s
}

// summary is the last thing a run prints.
type summary struct {
	Type     string           `json:"type"`
	JobID    string           `json:"job_id"`
	Status   client.Status    `json:"status"`
	Progress client.Progress  `json:"progress"`
	Error    *client.JobError `json:"error"`
	Files    []summaryFile    `json:"files"`
	ExitCode int              `json:"exit_code"`
}

type summaryFile struct {
	FileID int64         `json:"file_id"`
	Status client.Status `json:"status"`
	Size   int64         `json:"size,omitempty"`
	Path   string        `json:"path,omitempty"` // where the file was saved
	Error  string        `json:"error,omitempty"`
}
