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
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/requestid"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/longhaul-dev/longhaul/webhook"
)

// JobStore is what the API needs of the job store.
type JobStore interface {
	Submit(ctx context.Context, r jobs.Request) (id string, created bool, err error)
	Regressed(ctx context.Context, id string, seen int64) (bool, error)
	Delete(ctx context.Context, id string) error
	Get(ctx context.Context, id string) (*jobs.Job, error)
	GetUnless(ctx context.Context, id string, known jobs.Known) (*jobs.Peek, error)
	Cancel(ctx context.Context, id string) (*jobs.Job, error)
	Ping(ctx context.Context) error
}

// Enqueuer puts a job's task in the queue.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Tasks looks up and takes out tasks of the queue.
type Tasks interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
}

// FileReader opens produced files.
type FileReader interface {
	Open(jobID string, fileID int64) (*storage.Object, error)
}

// FileLinker gives the URL at which a client fetches a stored file straight from where it
// is kept, such as a presigned URL of an S3 bucket, or storage.ErrNotFound.
type FileLinker interface {
	DownloadURL(ctx context.Context, jobID string, fileID int64) (string, error)
}

var (
	_ JobStore   = (*jobs.Store)(nil)
	_ Enqueuer   = (*asynq.Client)(nil)
	_ Tasks      = (*asynq.Inspector)(nil)
	_ FileReader = (*storage.Dir)(nil)
	_ FileReader = (*storage.Bucket)(nil)
	_ FileLinker = (*storage.Bucket)(nil)
)

// CallbackChecker checks a callback URL a client sent: where it may point, and that its host
// resolves there. Its refusals are *webhook.URLError.
type CallbackChecker interface {
	CheckURL(ctx context.Context, raw string) error
}

var _ CallbackChecker = webhook.Policy{}

// maxBody bounds the body of POST /v1/download/initiate.
const maxBody = 64 << 10

// initiateRequest is the body of POST /v1/download/initiate.
type initiateRequest struct {
	FileIDs        []json.RawMessage `json:"file_ids"`
	CallbackURL    *string           `json:"callback_url"`
	CallbackEvents []string          `json:"callback_events"`
}

// initiateFields are the names initiateRequest may have.
var initiateFields = []string{"file_ids", "callback_url", "callback_events"}

// callbackEvents are the events a client may ask for in callback_events.
var callbackEvents = []string{tasks.EventJobFinished, tasks.EventFileReady}

// initiateInput is what a valid body of POST /v1/download/initiate asks for.
type initiateInput struct {
	fileIDs        []int64
	callbackURL    string
	callbackEvents []string
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

// Estimator says how many bytes the files of a job will take once prepared.
type Estimator interface {
	Estimate(fileIDs []int64) int64
}

// initiate is POST /v1/download/initiate: it checks the caller's creation rate, the
// request, the size of the job and the caller's caps, in that order, before anything is
// written; then it creates the job and its task.
type initiate struct {
	access   *access
	store    JobStore
	queue    Enqueuer
	tasks    Tasks
	sizes    Estimator
	maxFiles int
	opts     tasks.Options
	log      *slog.Logger
	obs      Observer
	// callbacks checks callback URLs; nil when this server sends no webhooks.
	callbacks CallbackChecker
}

func (h *initiate) handle(c *gin.Context) {
	ctx, who := c.Request.Context(), callerOf(c)
	rate, err := h.access.limits.AllowCreate(ctx, who.principal)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	if !rate.Allowed {
		writeLimited(c, rate)
		return
	}
	rateHeaders(c, rate)
	key, err := idempotencyKey(c.Request)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	in, err := readInitiate(c.Request, h.maxFiles)
	if err == nil {
		err = h.checkCallback(ctx, in.callbackURL)
	}
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	fileIDs := in.fileIDs
	bytes := h.sizes.Estimate(fileIDs)
	if limit := h.access.limits.Config().MaxJobBytes; limit > 0 && bytes > limit {
		writeError(c, h.log, invalid("file_ids", "these files would store about %s, more than one job may (%s); split them into smaller jobs",
			describeBytes(bytes), describeBytes(limit)))
		return
	}
	id := jobs.NewIDFor(who.principal, key)
	caps, err := h.access.limits.Admit(ctx, who.principal, id, bytes)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	if !caps.Allowed {
		writeLimited(c, caps)
		return
	}
	id, created, err := h.store.Submit(ctx, jobs.Request{ID: id, FileIDs: fileIDs, Principal: who.principal, IdempotencyKey: key,
		CallbackURL: in.callbackURL, CallbackEvents: in.callbackEvents})
	if err != nil || !created {
		h.release(ctx, who.principal, id)
	}
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	if !created {
		h.replay(c, id)
		return
	}
	if err := enqueue(ctx, h.queue, id, who.principal, len(fileIDs), h.opts); err != nil {
		// Take the job back so that no job without a task remains; it also expires on
		// its own should Redis be gone for this too.
		if derr := h.store.Delete(context.WithoutCancel(ctx), id); derr != nil {
			err = errors.Join(err, derr)
		}
		h.release(ctx, who.principal, id)
		writeError(c, h.log, err)
		return
	}
	h.obs.JobCreated()
	h.log.InfoContext(ctx, "job accepted", "job", id, "files", len(fileIDs))
	c.Header("Location", linksOf(id).Status)
	c.JSON(http.StatusAccepted, initiateResponse{JobID: id, Status: string(jobs.StatusQueued),
		TotalFiles: len(fileIDs), Links: linksOf(id)})
}

// checkCallback checks the callback URL of a request, if it has one, before anything is
// written: a refused one is 400 with field callback_url.
func (h *initiate) checkCallback(ctx context.Context, url string) error {
	if url == "" {
		return nil
	}
	if h.callbacks == nil {
		return invalid("callback_url", "this server sends no webhooks: its operator has set no LONGHAUL_WEBHOOK_SECRET to sign them with")
	}
	err := h.callbacks.CheckURL(ctx, url)
	if refusal, ok := errors.AsType[*webhook.URLError](err); ok {
		return invalid("callback_url", "%s", refusal.Reason)
	}
	return err
}

// release gives back what the caps reserved for a job that was not created.
func (h *initiate) release(ctx context.Context, principal, id string) {
	if err := h.access.limits.Release(context.WithoutCancel(ctx), principal, id); err != nil {
		h.log.WarnContext(ctx, "could not give back a reserved place; it frees itself when the job is looked for", "job", id, "err", err)
	}
}

// replay answers a request whose idempotency key names a job already: 200 with what the
// first answer said, and the job's current status. A retry is what a client does when the
// first answer was lost, maybe to a Redis blip between the record and its task: a queued
// job whose task is missing gets it now, rather than wait for the janitor.
func (h *initiate) replay(c *gin.Context, id string) {
	ctx := c.Request.Context()
	job, err := h.store.Get(ctx, id)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	if job.Status == jobs.StatusQueued && !job.Enqueued {
		if _, err := h.tasks.GetTaskInfo(tasks.Queue, job.Task); errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			task, err := tasks.NewDownloadTaskWithID(job.Task, tasks.DownloadPayload{JobID: id, Principal: job.Principal},
				len(job.Files), h.opts)
			if err == nil {
				_, err = h.queue.EnqueueContext(ctx, task)
			}
			if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				writeError(c, h.log, fmt.Errorf("queue the task of job %s again: %w", id, err))
				return
			}
			h.log.WarnContext(ctx, "queued the task of a retried job that had none", "job", id)
		}
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

func enqueue(ctx context.Context, queue Enqueuer, id, principal string, files int, opts tasks.Options) error {
	// The task carries the request's id, so that the worker's log lines of the job have it.
	task, err := tasks.NewDownloadTask(tasks.DownloadPayload{JobID: id, Principal: principal,
		RequestID: requestid.From(ctx)}, files, opts)
	if err != nil {
		return err
	}
	// A conflict is this job's own task, its id being the job's: a concurrent retry with the
	// same Idempotency-Key found the job without it and queued it first (see replay).
	if _, err := queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue job %s: %w", id, err)
	}
	return nil
}

// fileIDPattern is a JSON number that is a positive integer: no sign, fraction or exponent.
var fileIDPattern = regexp.MustCompile(`^[1-9][0-9]*$`)

// readInitiate reads and checks the body of POST /v1/download/initiate. Every way a body
// can be wrong gets its own message; the ids come back de-duplicated in first-seen order.
func readInitiate(r *http.Request, maxFiles int) (initiateInput, error) {
	var in initiateInput
	req, err := decodeInitiate(r)
	if err != nil {
		return in, err
	}
	if in.fileIDs, err = checkFileIDs(req.FileIDs, maxFiles); err != nil {
		return in, err
	}
	in.callbackURL, in.callbackEvents, err = checkCallbackFields(req)
	return in, err
}

// checkCallbackFields checks the shape of callback_url and callback_events; where the URL
// may point is the CallbackChecker's to say.
func checkCallbackFields(req initiateRequest) (url string, events []string, err error) {
	if req.CallbackURL == nil {
		if req.CallbackEvents != nil {
			return "", nil, invalid("callback_events", "callback_events needs a callback_url to deliver them to")
		}
		return "", nil, nil
	}
	if url = *req.CallbackURL; url == "" {
		return "", nil, invalid("callback_url", "callback_url must be an https URL, not empty")
	}
	for i, e := range req.CallbackEvents {
		if !slices.Contains(callbackEvents, e) {
			return "", nil, invalid("callback_events", "callback_events[%d] is %q; the events are %s",
				i, clip([]byte(e)), strings.Join(callbackEvents, ", "))
		}
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	return url, events, nil
}

// decodeInitiate reads the body of POST /v1/download/initiate into its struct.
func decodeInitiate(r *http.Request) (initiateRequest, error) {
	var req initiateRequest
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return req, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
			Message: "the body must be JSON, sent with Content-Type: application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return req, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
			Message: fmt.Sprintf("the body must be at most %d KiB", maxBody>>10)}
	} else if err != nil {
		return req, invalid("", "the body could not be read")
	}
	if !utf8.Valid(body) {
		return req, invalid("", "the body is not valid UTF-8")
	}
	if err := exactFields(body, initiateFields...); err != nil {
		return req, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, decodeError(err)
	}
	if dec.More() || dec.InputOffset() != int64(len(bytes.TrimRight(body, " \t\r\n"))) {
		return req, invalid("", "the body must hold one JSON object and nothing after it")
	}
	return req, nil
}

// checkFileIDs checks file_ids and returns them de-duplicated in first-seen order.
func checkFileIDs(raws []json.RawMessage, maxFiles int) ([]int64, error) {
	if len(raws) == 0 {
		return nil, invalid("file_ids", "file_ids must contain between 1 and %d ids", maxFiles)
	}
	seen := make(map[int64]bool, len(raws))
	ids := make([]int64, 0, len(raws))
	for i, raw := range raws {
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

// exactFields refuses a JSON object whose top-level names are not exactly among names, or
// that names one twice: encoding/json matches names regardless of case and keeps the last
// of two, so {"FILE_IDS": [7]} and {"file_ids": [7], "file_ids": [14]} would otherwise pass
// as something the client may not have meant. Bodies that are not objects are left to the
// decoder's own messages.
func exactFields(body []byte, names ...string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		name, _ := tok.(string)
		if !slices.Contains(names, name) {
			return invalid("", "the body has a field %q; its fields are %s (names are case-sensitive)",
				clip([]byte(name)), strings.Join(names, ", "))
		}
		if seen[name] {
			return invalid(name, "%s appears twice in the body", name)
		}
		seen[name] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return nil
		}
	}
	return nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return invalid("", `the body is empty; send {"file_ids": [...]}`)
	case errors.As(err, &typeErr) && typeErr.Field == "callback_url":
		return invalid(typeErr.Field, "callback_url must be a string, an https URL")
	case errors.As(err, &typeErr) && strings.HasPrefix(typeErr.Field, "callback_events"):
		return invalid("callback_events", `callback_events must be a list of event names, like ["file.ready"]`)
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
	return invalid("", "the body has a field other than %s", strings.Join(initiateFields, ", "))
}

// clip shortens a raw value for an error message.
func clip(raw []byte) string {
	if len(raw) > 24 {
		return string(raw[:24]) + "..."
	}
	return string(raw)
}

// etagOf is the status ETag of a state of a job: its seq, and for a job with a callback
// the count of changes of its delivery once there is one, which the body shows although
// seq does not move with it (see jobs.Version.Tag).
func etagOf(v jobs.Version) string { return `"` + v.Tag() + `"` }

// handleStatus answers GET /v1/download/status/{job_id} in one round trip to Redis: a 304
// when the client's If-None-Match names the job's state, with nothing read or decoded beyond
// it; a 200 with the body kept for the job's state when there is one, or the record read
// and encoded in the same trip otherwise.
func handleStatus(a *access, store JobStore, kept *bodies) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, tags := c.Param("job_id"), c.GetHeader("If-None-Match")
		known := knownOf(tags)
		cached, hasCached := kept.held(id)
		if hasCached {
			known.Cached = cached.Version
		}
		peek, ok := a.peekJob(c, store, id, known)
		if !ok {
			return
		}
		if seen := seqOfTags(tags); seen > peek.Seq {
			// The client saw a seq the record no longer has: it lost writes (a failover).
			// Repaired, it takes a new epoch and a higher seq, which every client follows.
			if _, err := store.Regressed(c.Request.Context(), id, seen); err != nil {
				writeError(c, a.log, err)
				return
			}
			if peek, ok = a.peekJob(c, store, id, known); !ok {
				return
			}
		}
		c.Header("Cache-Control", "no-store")
		c.Header("ETag", etagOf(peek.Version))
		if noneMatch(tags, etagOf(peek.Version)) {
			c.Status(http.StatusNotModified)
			return
		}
		body := cached.json // the script found the state of the body kept (see knownOf)
		if peek.Job != nil {
			body = kept.of(peek.Job)
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", body)
	}
}

// knownOf is what an If-None-Match header says the client holds: "*", or the states its
// entity tags name ("7", W/"7" or "7.2"), which are exactly the tags noneMatch finds equal
// to a state's ETag. The store then leaves out a record the client has.
func knownOf(header string) jobs.Known {
	header = strings.TrimSpace(header)
	if header == "*" {
		return jobs.Known{Any: true}
	}
	var known jobs.Known
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if inner, ok := strings.CutPrefix(tag, `"`); ok && statusTag.MatchString(tag) {
			known.Tags = append(known.Tags, strings.TrimSuffix(inner, `"`))
		}
	}
	return known
}

// statusTag is an ETag as the status API writes them.
var statusTag = regexp.MustCompile(`^"(0|[1-9][0-9]*)(\.[1-9][0-9]*)?"$`)

// noneMatch reports whether an If-None-Match header matches etag, as RFC 9110 (13.1.2) says:
// "*" matches any current representation, and a list of entity tags matches when one of
// them does by the weak comparison, which ignores W/.
func noneMatch(header, etag string) bool {
	header = strings.TrimSpace(header)
	if header == "" {
		return false
	}
	if header == "*" {
		return true
	}
	want := strings.TrimPrefix(etag, "W/")
	for tag := range strings.SplitSeq(header, ",") {
		if strings.TrimPrefix(strings.TrimSpace(tag), "W/") == want {
			return true
		}
	}
	return false
}

// seqOfTags is the highest seq an If-None-Match header names (status ETags are seqs, with
// a delivery count after a dot for jobs with a callback); a tag above maxSeq is no
// client's, and does not count.
func seqOfTags(header string) int64 {
	var highest int64
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.Trim(strings.TrimPrefix(strings.TrimSpace(tag), "W/"), `"`)
		tag, _, _ = strings.Cut(tag, ".")
		if n, err := strconv.ParseInt(tag, 10, 64); err == nil && n > highest && n <= maxSeq {
			highest = n
		}
	}
	return highest
}

func handleCancel(a *access, store JobStore, queue Tasks, hooks *webhook.Announcer, obs Observer) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		id := c.Param("job_id")
		if _, ok := a.peekJob(c, store, id, jobs.Known{Any: true}); !ok {
			return
		}
		job, err := store.Cancel(ctx, id)
		if err != nil {
			a.writeJobError(c, err)
			return
		}
		// A queued task leaves the queue now; a running one stops at its next progress step,
		// when the store refuses it. Either way the job is canceled already.
		if err := queue.DeleteTask(tasks.Queue, job.Task); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			a.log.DebugContext(ctx, "canceled job's task stays until its worker sees it", "job", id, "err", err)
		}
		obs.JobFinished(jobs.StatusCanceled, job.CreatedAt)
		a.log.InfoContext(ctx, "job canceled", "job", id)
		// The running attempt, if any, announces too when it sees the job canceled; the
		// delivery's task id makes the two one.
		if err := hooks.Finished(ctx, job); err != nil {
			a.log.WarnContext(ctx, "the canceled job's end was not queued for its callback yet", "job", id, "err", err)
		}
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusAccepted, statusOf(job))
	}
}

// handleFile serves a ready file of a job, or, with links, redirects to a URL of it where it
// is kept; the checks of access and readiness come first either way.
func handleFile(a *access, store JobStore, files FileReader, links FileLinker) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.Param("job_id")
		fileID, ok := jobs.ParseFileID(c.Param("file_id"))
		if !ok {
			writeError(c, a.log, invalid("file_id", "file ids are positive integers below 2^53"))
			return
		}
		job, ok := a.readJob(c, store)
		if !ok {
			return
		}
		if !fileReady(job, fileID) {
			a.writeJobError(c, notFound("file %d is not a ready file of this job", fileID))
			return
		}
		if links != nil {
			url, err := links.DownloadURL(c.Request.Context(), id, fileID)
			if err != nil {
				a.writeStoreError(c, fileID, err)
				return
			}
			// The URL is short-lived: nothing may keep the redirect for later.
			c.Header("Cache-Control", "no-store")
			c.Redirect(http.StatusFound, url)
			return
		}
		f, err := files.Open(id, fileID)
		if err != nil {
			a.writeStoreError(c, fileID, err)
			return
		}
		defer f.Close()
		name := strconv.FormatInt(fileID, 10) + ".bin"
		c.Header("Content-Type", "application/octet-stream")
		c.Header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		// Content is derived from the file id alone and never replaced, so the id and size
		// make a strong validator; ServeContent then answers Range and conditional requests.
		c.Header("ETag", fmt.Sprintf(`"%d-%d"`, fileID, f.Size))
		w := &rangeErrors{ResponseWriter: steadyWriter{c.Writer, http.NewResponseController(c.Writer)}}
		http.ServeContent(w, c.Request, name, time.Time{}, f)
	}
}

// rangeErrors answers a Range that http.ServeContent cannot satisfy with the contract's
// error body (ServeContent writes plain text), keeping its Content-Range: bytes */SIZE.
type rangeErrors struct {
	http.ResponseWriter
	refused bool
}

func (w *rangeErrors) WriteHeader(status int) {
	if status != http.StatusRequestedRangeNotSatisfiable {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.refused = true
	w.Header().Del("Content-Length")
	w.Header().Del("Content-Disposition") // there is no attachment to name
	writeErrorTo(w.ResponseWriter, &Error{Status: status, Code: CodeInvalidRequest, Field: "Range",
		Message: "the Range asks for bytes the file does not have; its size is in Content-Range"})
}

func (w *rangeErrors) Write(b []byte) (int, error) {
	if w.refused {
		return len(b), nil // ServeContent's own message, already replaced
	}
	return w.ResponseWriter.Write(b)
}

// writeStoreError answers a file the record calls ready that storage cannot give.
func (a *access) writeStoreError(c *gin.Context, fileID int64, err error) {
	if errors.Is(err, storage.ErrNotFound) {
		writeError(c, a.log, notFound("file %d is no longer stored", fileID))
		return
	}
	writeError(c, a.log, err)
}

// steadyWriter gives each write of a download its own deadline, so a client may take as
// long as it needs for a big file while it reads, and one that stops reading is let go.
type steadyWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

// writeStall is how long one write of a download may wait for the client.
const writeStall = 30 * time.Second

func (w steadyWriter) Write(b []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(writeStall))
	return w.ResponseWriter.Write(b)
}

func fileReady(job *jobs.Job, fileID int64) bool {
	for _, f := range job.Files {
		if f.ID == fileID {
			return f.Status == jobs.StatusReady
		}
	}
	return false
}
