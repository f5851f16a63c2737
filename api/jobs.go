package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/longhaul-dev/longhaul/tasks"
)

// JobStore is what the API needs of the job store.
type JobStore interface {
	Submit(ctx context.Context, r jobs.Request) (id string, created bool, err error)
	Delete(ctx context.Context, id string) error
	Get(ctx context.Context, id string) (*jobs.Job, error)
	Cancel(ctx context.Context, id string) (*jobs.Job, error)
	Ping(ctx context.Context) error
}

// Enqueuer puts a job's task in the queue.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// TaskDeleter takes a queued task out of its queue.
type TaskDeleter interface {
	DeleteTask(queue, id string) error
}

// FileReader opens produced files.
type FileReader interface {
	Open(jobID string, fileID int64) (*storage.Object, error)
}

var (
	_ JobStore    = (*jobs.Store)(nil)
	_ Enqueuer    = (*asynq.Client)(nil)
	_ TaskDeleter = (*asynq.Inspector)(nil)
	_ FileReader  = (*storage.Dir)(nil)
)

// maxBody bounds the body of POST /v1/download/initiate.
const maxBody = 64 << 10

// initiateRequest is the body of POST /v1/download/initiate.
type initiateRequest struct {
	FileIDs []json.RawMessage `json:"file_ids"`
}

// initiateResponse is the body of its 202.
type initiateResponse struct {
	JobID      string   `json:"job_id"`
	Status     string   `json:"status"`
	TotalFiles int      `json:"total_files"`
	Links      jobLinks `json:"links"`
}

type jobLinks struct {
	Status string `json:"status"`
	WS     string `json:"ws"`
	Events string `json:"events"`
	Cancel string `json:"cancel"`
}

func linksOf(id string) jobLinks {
	return jobLinks{Status: pathOf(pathStatus, id), WS: pathOf(pathWS, id),
		Events: pathOf(pathEvents, id), Cancel: pathOf(pathJob, id)}
}

func handleInitiate(store JobStore, queue Enqueuer, maxFiles int, opts tasks.Options, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		key, err := idempotencyKey(c.Request)
		if err != nil {
			writeError(c, log, err)
			return
		}
		fileIDs, err := readInitiate(c.Request, maxFiles)
		if err != nil {
			writeError(c, log, err)
			return
		}
		ctx := c.Request.Context()
		id, created, err := store.Submit(ctx, jobs.Request{FileIDs: fileIDs, IdempotencyKey: key})
		if err != nil {
			writeError(c, log, err)
			return
		}
		if !created {
			replayInitiate(c, store, id, log)
			return
		}
		if err := enqueue(ctx, queue, id, len(fileIDs), opts); err != nil {
			// Take the job back so that no job without a task remains; it also expires on
			// its own should Redis be gone for this too.
			if derr := store.Delete(context.WithoutCancel(ctx), id); derr != nil {
				err = errors.Join(err, derr)
			}
			writeError(c, log, err)
			return
		}
		log.InfoContext(ctx, "job accepted", "job", id, "files", len(fileIDs))
		c.Header("Location", linksOf(id).Status)
		c.JSON(http.StatusAccepted, initiateResponse{JobID: id, Status: string(jobs.StatusQueued),
			TotalFiles: len(fileIDs), Links: linksOf(id)})
	}
}

// replayInitiate answers a request whose idempotency key names a job already: 200 with
// what the first answer said, and the job's current status.
func replayInitiate(c *gin.Context, store JobStore, id string, log *slog.Logger) {
	job, err := store.Get(c.Request.Context(), id)
	if err != nil {
		writeError(c, log, err)
		return
	}
	c.Header("Location", linksOf(id).Status)
	c.JSON(http.StatusOK, initiateResponse{JobID: id, Status: string(job.Status),
		TotalFiles: len(job.Files), Links: linksOf(id)})
}

// idempotencyKey reads the optional Idempotency-Key header: 1 to 255 printable ASCII
// characters.
func idempotencyKey(r *http.Request) (string, error) {
	values, present := r.Header["Idempotency-Key"]
	if !present {
		return "", nil
	}
	key := values[0]
	valid := len(values) == 1 && len(key) >= 1 && len(key) <= 255
	for i := 0; valid && i < len(key); i++ {
		valid = key[i] >= 0x20 && key[i] <= 0x7e
	}
	if !valid {
		return "", invalid("Idempotency-Key", "Idempotency-Key must be one value of 1 to 255 printable ASCII characters")
	}
	return key, nil
}

func enqueue(ctx context.Context, queue Enqueuer, id string, files int, opts tasks.Options) error {
	task, err := tasks.NewDownloadTask(id, files, opts)
	if err != nil {
		return err
	}
	if _, err := queue.EnqueueContext(ctx, task); err != nil {
		return fmt.Errorf("enqueue job %s: %w", id, err)
	}
	return nil
}

// fileIDPattern is a JSON number that is a positive integer: no sign, fraction or exponent.
var fileIDPattern = regexp.MustCompile(`^[1-9][0-9]*$`)

// readInitiate reads and checks the body of POST /v1/download/initiate. Every way a body
// can be wrong gets its own message; the ids come back de-duplicated in first-seen order.
func readInitiate(r *http.Request, maxFiles int) ([]int64, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
			Message: "the body must be JSON, sent with Content-Type: application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
			Message: fmt.Sprintf("the body must be at most %d KiB", maxBody>>10)}
	} else if err != nil {
		return nil, invalid("", "the body could not be read")
	}
	if !utf8.Valid(body) {
		return nil, invalid("", "the body is not valid UTF-8")
	}
	var req initiateRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, decodeError(err)
	}
	if dec.More() || dec.InputOffset() != int64(len(bytes.TrimRight(body, " \t\r\n"))) {
		return nil, invalid("", "the body must hold one JSON object and nothing after it")
	}
	if len(req.FileIDs) == 0 {
		return nil, invalid("file_ids", "file_ids must contain between 1 and %d ids", maxFiles)
	}
	seen := make(map[int64]bool, len(req.FileIDs))
	ids := make([]int64, 0, len(req.FileIDs))
	for i, raw := range req.FileIDs {
		id, err := strconv.ParseInt(string(raw), 10, 64)
		if !fileIDPattern.Match(raw) || err != nil || id > jobs.MaxFileID {
			return nil, invalid("file_ids", "file_ids[%d] must be a positive integer below 2^53, not %s", i, clip(raw))
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) > maxFiles {
		return nil, invalid("file_ids", "file_ids must contain between 1 and %d ids", maxFiles)
	}
	return ids, nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return invalid("", `the body is empty; send {"file_ids": [...]}`)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return invalid(typeErr.Field, "%s must be a list of integers", typeErr.Field)
	case errors.As(err, &typeErr):
		return invalid("", `the body must be a JSON object like {"file_ids": [...]}`)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("", "the body is not valid JSON")
	}
	// What is left is an unknown field: its name is in the decoder's message.
	return invalid("", "the body has a field other than file_ids")
}

// clip shortens a raw value for an error message.
func clip(raw []byte) string {
	if len(raw) > 24 {
		return string(raw[:24]) + "..."
	}
	return string(raw)
}

func etagOf(job *jobs.Job) string { return `"` + strconv.FormatInt(job.Seq, 10) + `"` }

func handleStatus(store JobStore, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		job, err := store.Get(c.Request.Context(), c.Param("job_id"))
		if err != nil {
			writeError(c, log, err)
			return
		}
		c.Header("Cache-Control", "no-store")
		c.Header("ETag", etagOf(job))
		if match := c.GetHeader("If-None-Match"); match != "" && match == etagOf(job) {
			c.Status(http.StatusNotModified)
			return
		}
		c.JSON(http.StatusOK, statusOf(job))
	}
}

func handleCancel(store JobStore, queue TaskDeleter, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		id := c.Param("job_id")
		job, err := store.Cancel(ctx, id)
		if err != nil {
			writeError(c, log, err)
			return
		}
		// A queued task leaves the queue now; a running one stops at its next progress step,
		// when the store refuses it. Either way the job is canceled already.
		if err := queue.DeleteTask(tasks.Queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			log.DebugContext(ctx, "canceled job's task stays until its worker sees it", "job", id, "err", err)
		}
		log.InfoContext(ctx, "job canceled", "job", id)
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusAccepted, statusOf(job))
	}
}

func handleFile(store JobStore, files FileReader, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.Param("job_id")
		fileID, ok := jobs.ParseFileID(c.Param("file_id"))
		if !ok {
			writeError(c, log, invalid("file_id", "file ids are positive integers below 2^53"))
			return
		}
		job, err := store.Get(c.Request.Context(), id)
		if err != nil {
			writeError(c, log, err)
			return
		}
		if !fileReady(job, fileID) {
			writeError(c, log, notFound("file %d is not a ready file of this job", fileID))
			return
		}
		f, err := files.Open(id, fileID)
		if errors.Is(err, storage.ErrNotFound) {
			writeError(c, log, notFound("file %d is no longer stored", fileID))
			return
		} else if err != nil {
			writeError(c, log, err)
			return
		}
		defer f.Close()
		name := strconv.FormatInt(fileID, 10) + ".bin"
		c.Header("Content-Type", "application/octet-stream")
		c.Header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		// Content is derived from the file id alone and never replaced, so the id and size
		// make a strong validator; ServeContent then answers Range and conditional requests.
		c.Header("ETag", fmt.Sprintf(`"%d-%d"`, fileID, f.Size))
		http.ServeContent(c.Writer, c.Request, name, time.Time{}, f)
	}
}

func fileReady(job *jobs.Job, fileID int64) bool {
	for _, f := range job.Files {
		if f.ID == fileID {
			return f.Status == jobs.StatusReady
		}
	}
	return false
}
