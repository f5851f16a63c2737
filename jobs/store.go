package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors of the store that callers act on.
var (
	// ErrNotFound: no such job, or it expired.
	ErrNotFound = errors.New("job not found")
	// ErrFinished: the job is completed, failed or canceled and takes no more changes.
	ErrFinished = errors.New("job already finished")
	// ErrFenced: another attempt claimed the job since; the caller must stop.
	ErrFenced = errors.New("job claimed by another attempt")
	// ErrFileFinished: the file is terminal and never changes again.
	ErrFileFinished = errors.New("file already finished")
	// ErrBackwards: the update would move a percent backwards.
	ErrBackwards = errors.New("progress would go backwards")
	// ErrNotAFile: the file is not part of the job.
	ErrNotAFile = errors.New("file is not part of the job")
	// ErrUnfinished: the job still has files that are not terminal.
	ErrUnfinished = errors.New("job has files still open")
)

// Store keeps jobs in Redis. It is safe for concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	retention time.Duration
	activeTTL time.Duration
	now       func() time.Time
}

// Defaults of Options, also the defaults of the settings that configure them.
const (
	RetentionDefault = 24 * time.Hour
	ActiveTTLDefault = 7 * 24 * time.Hour
)

// Options configure a Store.
type Options struct {
	// Retention is how long a finished job is kept. If zero, RetentionDefault is used.
	Retention time.Duration
	// ActiveTTL bounds how long an unfinished job is kept, so that a job whose every
	// attempt was lost cannot stay in Redis forever. If zero, ActiveTTLDefault is used.
	ActiveTTL time.Duration
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.Retention <= 0 {
		o.Retention = RetentionDefault
	}
	if o.ActiveTTL <= 0 {
		o.ActiveTTL = ActiveTTLDefault
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, opts Options) *Store {
	opts = opts.WithDefaults()
	return &Store{rdb: rdb, retention: opts.Retention, activeTTL: opts.ActiveTTL, now: opts.Now}
}

// Keys of one job. The hash tag keeps a job's keys in one Redis Cluster slot, so that a
// script can touch them together.
func jobKey(id string) string   { return "longhaul:{" + id + "}:job" }
func auditKey(id string) string { return "longhaul:{" + id + "}:audit" }

// Channel is the pub/sub channel that carries the events of job id.
func Channel(id string) string { return "longhaul:events:" + id }

// JobIDOfChannel returns the job id of a channel named by Channel.
func JobIDOfChannel(channel string) string {
	return strings.TrimPrefix(channel, "longhaul:events:")
}

func (s *Store) timestamp() string { return s.now().UTC().Format(time.RFC3339) }

// Create stores a new queued job with the given files, in one transaction.
func (s *Store) Create(ctx context.Context, id string, fileIDs []int64) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.queueCreate(ctx, p, id, fileIDs, "")
		return nil
	})
	if err != nil {
		return fmt.Errorf("create job %s: %w", id, err)
	}
	return nil
}

// queueCreate queues the commands that create a job; idemKey names its idempotency key,
// if it has one.
func (s *Store) queueCreate(ctx context.Context, p redis.Pipeliner, id string, fileIDs []int64, idemKey string) {
	now := s.timestamp()
	ids := make([]string, len(fileIDs))
	fields := []any{"id", id, "status", string(StatusQueued), "seq", 0, "created_at", now,
		"updated_at", now, "attempts", 0}
	for i, fid := range fileIDs {
		ids[i] = strconv.FormatInt(fid, 10)
		entry, _ := json.Marshal(File{ID: fid, Status: StatusQueued})
		fields = append(fields, "f:"+ids[i], entry, "s:"+ids[i], string(StatusQueued), "p:"+ids[i], 0)
	}
	fields = append(fields, "files", strings.Join(ids, ","))
	if idemKey != "" {
		fields = append(fields, "idempotency_key", idemKey)
	}
	p.HSet(ctx, jobKey(id), fields...)
	p.Expire(ctx, jobKey(id), s.activeTTL)
}

// Delete removes a job and its idempotency key. The API uses it to take back a job whose
// task could not be queued, so that a retry with the same key starts afresh.
func (s *Store) Delete(ctx context.Context, id string) error {
	keys := []string{jobKey(id), auditKey(id)}
	if ik, err := s.rdb.HGet(ctx, jobKey(id), "idempotency_key").Result(); err == nil {
		keys = append(keys, ik)
	}
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("delete job %s: %w", id, err)
	}
	return nil
}

// Get reads a job in one command, so the result is one consistent state.
func (s *Store) Get(ctx context.Context, id string) (*Job, error) {
	h, err := s.rdb.HGetAll(ctx, jobKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, ErrNotFound
	}
	return decodeJob(h)
}

func decodeJob(h map[string]string) (*Job, error) {
	j := &Job{ID: h["id"], Status: Status(h["status"]), Files: []File{}}
	j.Seq, _ = strconv.ParseInt(h["seq"], 10, 64)
	j.CreatedAt, _ = time.Parse(time.RFC3339, h["created_at"])
	j.UpdatedAt, _ = time.Parse(time.RFC3339, h["updated_at"])
	if t, err := time.Parse(time.RFC3339, h["finished_at"]); err == nil {
		j.FinishedAt = &t
	}
	if e := h["error"]; e != "" {
		j.Error = new(Error)
		if err := json.Unmarshal([]byte(e), j.Error); err != nil {
			return nil, fmt.Errorf("decode error of job %s: %w", j.ID, err)
		}
	}
	for id := range strings.SplitSeq(h["files"], ",") {
		var f File
		if err := json.Unmarshal([]byte(h["f:"+id]), &f); err != nil {
			return nil, fmt.Errorf("decode file %s of job %s: %w", id, j.ID, err)
		}
		j.Files = append(j.Files, f)
	}
	j.Progress = ProgressOf(j.Files)
	return j, nil
}

// Claim makes the attempt with the given token the owner of the job, so that every earlier
// attempt is fenced off, and moves a queued job to processing. It returns the job as the
// new attempt finds it, checkpoints included.
func (s *Store) Claim(ctx context.Context, id, token string) (*Job, error) {
	if err := s.run(ctx, claimScript, id, token, s.timestamp()); err != nil {
		return nil, fmt.Errorf("claim job %s: %w", id, err)
	}
	return s.Get(ctx, id)
}

// UpdateFile records the new state of one file for the attempt with the given token, and
// publishes it. Once the file is terminal it never changes again.
func (s *Store) UpdateFile(ctx context.Context, id, token string, f File) error {
	entry, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode file %d of job %s: %w", f.ID, id, err)
	}
	err = s.run(ctx, updateFileScript, id, token, f.ID, string(f.Status),
		strconv.FormatFloat(f.Percent, 'f', -1, 64), entry, s.timestamp())
	if err != nil {
		return fmt.Errorf("update file %d of job %s: %w", f.ID, id, err)
	}
	return nil
}

// Complete ends a job whose files are all terminal: completed when one is ready, failed
// otherwise. It returns the final status.
func (s *Store) Complete(ctx context.Context, id, token string) (Status, error) {
	noFiles := Error{Code: ErrorCodeNoFiles, Message: "none of the job's files could be produced"}
	st, err := s.finish(ctx, "complete", id, token, noFiles, "")
	if err != nil {
		return "", fmt.Errorf("complete job %s: %w", id, err)
	}
	return st, nil
}

// Fail ends a job as failed with jobErr; its files still open end failed with the same
// message. Files already ready stay ready.
func (s *Store) Fail(ctx context.Context, id, token string, jobErr Error) error {
	if _, err := s.finish(ctx, "fail", id, token, jobErr, jobErr.Message); err != nil {
		return fmt.Errorf("fail job %s: %w", id, err)
	}
	return nil
}

// Abandon ends as failed a job that no attempt will finish: its task was given up (archived)
// without the attempt knowing, as when a worker dies on its last retry. It needs no token.
func (s *Store) Abandon(ctx context.Context, id string, jobErr Error) error {
	if _, err := s.finish(ctx, "abandon", id, "", jobErr, jobErr.Message); err != nil {
		return fmt.Errorf("abandon job %s: %w", id, err)
	}
	return nil
}

// Cancel ends a queued or running job as canceled; its files not yet terminal end
// canceled, and ready ones stay ready. A finished job gives ErrFinished.
func (s *Store) Cancel(ctx context.Context, id string) (*Job, error) {
	if _, err := s.finish(ctx, "cancel", id, "", Error{}, ""); err != nil {
		return nil, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return s.Get(ctx, id)
}

func (s *Store) finish(ctx context.Context, mode, id, token string, jobErr Error, fileErr string) (Status, error) {
	errJSON, _ := json.Marshal(jobErr)
	fileErrJSON, _ := json.Marshal(fileErr)
	res, err := finishScript.Run(ctx, s.rdb, []string{jobKey(id), Channel(id), auditKey(id)},
		mode, token, s.timestamp(), int64(s.retention/time.Second), errJSON, fileErrJSON).Result()
	if err != nil {
		return "", err
	}
	if code, ok := res.(int64); ok {
		return "", scriptError(code)
	}
	if err := s.expireIdempotencyKey(ctx, id); err != nil {
		return "", err
	}
	return Status(res.(string)), nil
}

// Refused reports whether err is the store's answer about a job (not found, finished,
// fenced off, ...), as opposed to a failure to reach Redis, which may be retried.
func Refused(err error) bool {
	for _, refusal := range []error{ErrNotFound, ErrFinished, ErrFenced, ErrFileFinished, ErrBackwards,
		ErrNotAFile, ErrUnfinished, ErrKeyReused} {
		if errors.Is(err, refusal) {
			return true
		}
	}
	return false
}

// run runs a script on job id's keys and turns its return code into an error.
func (s *Store) run(ctx context.Context, script *redis.Script, id string, args ...any) error {
	code, err := script.Run(ctx, s.rdb, []string{jobKey(id), Channel(id), auditKey(id)}, args...).Int64()
	if err != nil {
		return err
	}
	return scriptError(code)
}

func scriptError(code int64) error {
	switch code {
	case codeNotFound:
		return ErrNotFound
	case codeFinished:
		return ErrFinished
	case codeFenced:
		return ErrFenced
	case codeFileFinished:
		return ErrFileFinished
	case codeBackwards:
		return ErrBackwards
	case codeNotAFile:
		return ErrNotAFile
	case codeUnfinished:
		return ErrUnfinished
	}
	return nil
}

// Audit lists the preparations that made a file ready, as "file_id token" in order. It is
// kept outside the workers so that a test can prove no file was made ready twice.
func (s *Store) Audit(ctx context.Context, id string) ([]string, error) {
	entries, err := s.rdb.LRange(ctx, auditKey(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read audit of job %s: %w", id, err)
	}
	return entries, nil
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.rdb.Ping(ctx).Err()
}

// Exists reports whether job id still has a record: false once it expired.
func (s *Store) Exists(ctx context.Context, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, jobKey(id)).Result()
	if err != nil {
		return false, fmt.Errorf("check job %s: %w", id, err)
	}
	return n == 1, nil
}
