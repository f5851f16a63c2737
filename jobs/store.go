package jobs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
	// ErrKeyReused: the idempotency key was used before with a different request.
	ErrKeyReused = errors.New("idempotency key used with a different request")
	// ErrIDTaken: a job with this id exists already.
	ErrIDTaken = errors.New("job id taken")
	// ErrSuperseded: another task runs the job now; the caller's task must end.
	ErrSuperseded = errors.New("job handed over to another task")
)

// Store keeps jobs in Redis. It is safe for concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	scripts   scripts
	retention time.Duration
	activeTTL time.Duration
	now       func() time.Time
	// newEpoch names one history of a job's record: a new one begins when the record is
	// created or repaired after it lost writes (see Regressed).
	newEpoch func() string
	// floors holds, per job this process runs an attempt of, the highest seq its writes
	// were given (see floor).
	floors floors
}

// floors remember the highest seq each running attempt's writes were given, so that its
// next write finds out when the record lost some of them (a failover, or a crash of Redis
// within its AOF second): the record then goes on above them, in a new epoch, and no
// client that saw a lost seq mistakes a later write for it. Writes of another process (a
// cancel from the API) take the record as it is.
type floors struct {
	mu   sync.Mutex
	byID map[string]int64
}

// of is the floor of job id as a script argument: "" when none is known.
func (f *floors) of(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq, ok := f.byID[id]; ok {
		return strconv.FormatInt(seq, 10)
	}
	return ""
}

// raise records that a write of job id was given seq.
func (f *floors) raise(id string, seq int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byID == nil {
		f.byID = map[string]int64{}
	}
	f.byID[id] = max(f.byID[id], seq)
}

// forget drops the floor of a job whose attempt here ended.
func (f *floors) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.byID, id)
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
	// Sharded publishes events on shard channels (SPUBLISH), as a Redis Cluster wants.
	Sharded bool
	// NewEpoch names a new epoch of a record. If nil, 8 random characters are used.
	NewEpoch func() string
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
	if o.NewEpoch == nil {
		o.NewEpoch = func() string { return rand.Text()[:8] }
	}
	return o
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, opts Options) *Store {
	opts = opts.WithDefaults()
	return &Store{rdb: rdb, scripts: newScripts(opts.Sharded), retention: opts.Retention, activeTTL: opts.ActiveTTL,
		now: opts.Now, newEpoch: opts.NewEpoch}
}

// The keys of a job all carry its group as their hash tag (see group), so that in a Redis
// Cluster they share one slot and one script can touch them together.
func jobKey(id string) string   { return "longhaul:{" + group(id) + "}:job:" + id }
func auditKey(id string) string { return "longhaul:{" + group(id) + "}:audit:" + id }

// RecordKey is the Redis key of job id's record, for tools and tests that look into Redis.
func RecordKey(id string) string { return jobKey(id) }

// Patterns that match the keys and channels of every job, for tools and tests that look
// into Redis (KEYS, SCAN, PSUBSCRIBE). The job id is what follows the last colon.
const (
	RecordsPattern = "longhaul:{*}:job:*"
	EventsPattern  = "longhaul:{*}:events:*"
)

// unfinishedKey is the index of a group's unfinished jobs: a sorted set of job ids by
// creation time, so that the janitor can find a job that waits for a task that is gone.
func unfinishedKey(g string) string { return "longhaul:{" + g + "}:unfinished" }

// idempotencyKey is where a client's Idempotency-Key is kept, in the group its hash names.
// The key is hashed with its principal: clients choose it, so it may hold anything printable
// at any length the API allows, and two principals' keys never meet.
func idemKeyOf(principal, key string) (name, g string) {
	scoped := principal + "\x00" + key
	sum := sha256.Sum256([]byte(scoped))
	g = groupOf(scoped)
	return "longhaul:{" + g + "}:idem:" + hex.EncodeToString(sum[:]), g
}

// Channel is the pub/sub channel that carries the events of job id.
func Channel(id string) string { return "longhaul:{" + group(id) + "}:events:" + id }

// JobIDOfChannel returns the job id of a channel named by Channel.
func JobIDOfChannel(channel string) string {
	return channel[strings.LastIndexByte(channel, ':')+1:]
}

func (s *Store) timestamp() string { return s.now().UTC().Format(time.RFC3339) }

// Request is what a job is created from.
type Request struct {
	// FileIDs are the files of the job, de-duplicated, in order.
	FileIDs []int64
	// Principal is who asks: an API key's id, or a client's address when auth is off. It
	// owns the job, and scopes its idempotency key.
	Principal string
	// IdempotencyKey, when not empty, makes a retry of the same request within the
	// retention return the job the first one created.
	IdempotencyKey string
	// ID is the id of the new job; if empty, a new one is made.
	ID string
	// CallbackURL, when not empty, is where the job's webhooks go, and CallbackEvents
	// the events asked for beside its end.
	CallbackURL    string
	CallbackEvents []string
}

// Create stores a new queued job with the given id and files.
func (s *Store) Create(ctx context.Context, id string, fileIDs []int64) error {
	_, _, err := s.Submit(ctx, Request{ID: id, FileIDs: fileIDs})
	return err
}

// Submit creates the job r asks for, in one script: the record, the idempotency key and
// the entry in its group's index of unfinished jobs. When r's idempotency key names a job
// already, Submit returns that job's id and created is false; concurrent requests with one
// key create one job between them. A key used before with other file ids gives ErrKeyReused.
func (s *Store) Submit(ctx context.Context, r Request) (id string, created bool, err error) {
	id, ik, fp := r.ID, "", ""
	if r.IdempotencyKey != "" {
		var g string
		ik, g = idemKeyOf(r.Principal, r.IdempotencyKey)
		fp = fingerprint(r)
		if id == "" {
			id = newIDInGroup(g)
		} else if group(id) != g {
			return "", false, fmt.Errorf("create job %s: its id is not in the group of its idempotency key", id)
		}
	} else if id == "" {
		id = NewID()
	}
	if ik == "" {
		ik = "longhaul:{" + group(id) + "}:idem:" // never written: the script needs a key of the group
	}
	ids := make([]string, len(r.FileIDs))
	for i, fid := range r.FileIDs {
		ids[i] = strconv.FormatInt(fid, 10)
	}
	res, err := s.scripts.create.Run(ctx, s.rdb, []string{jobKey(id), ik, unfinishedKey(group(id))},
		id, strings.Join(ids, ","), r.Principal, s.timestamp(), s.now().UnixMilli(),
		s.activeTTL.Milliseconds(), boolArg(r.IdempotencyKey != ""), fp, s.newEpoch(),
		r.CallbackURL, strings.Join(r.CallbackEvents, ",")).Slice()
	if err != nil {
		return "", false, fmt.Errorf("create job %s: %w", id, err)
	}
	switch code, _ := res[0].(int64); code {
	case 1:
		return id, true, nil
	case 0:
		held, heldFP, _ := strings.Cut(res[1].(string), " ")
		if heldFP != fp {
			return "", false, ErrKeyReused
		}
		return held, false, nil
	default:
		return "", false, fmt.Errorf("create job %s: %w", id, scriptError(code))
	}
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// fingerprint names a request by its file ids, in order, after de-duplication, and its
// callback if it has one: a retry that names another callback is another request.
func fingerprint(r Request) string {
	var b strings.Builder
	for _, id := range r.FileIDs {
		b.WriteString(strconv.FormatInt(id, 10))
		b.WriteByte(',')
	}
	if r.CallbackURL != "" {
		b.WriteString("\x00" + r.CallbackURL + "\x00" + strings.Join(r.CallbackEvents, ","))
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:16])
}

// Delete removes a job, its idempotency key and its index entry, in one script. The API
// uses it to take back a job whose task could not be queued, so that a retry with the same
// key starts afresh.
func (s *Store) Delete(ctx context.Context, id string) error {
	err := s.scripts.delete.Run(ctx, s.rdb, []string{jobKey(id), auditKey(id), unfinishedKey(group(id))}, id).Err()
	if err != nil {
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

// Version is one state of a job's record: its seq within its epoch, and for a job with a
// callback how many times the delivery of its end changed, which changes the job's status
// body but not its seq (seq counts the job's events).
type Version struct {
	Seq        int64
	Epoch      string
	Deliveries int
}

// VersionOf is the state job is in.
func VersionOf(job *Job) Version {
	v := Version{Seq: job.Seq, Epoch: job.Epoch}
	if job.Callback != nil {
		v.Deliveries = job.Callback.Revision
	}
	return v
}

// Tag names the state within its epoch, as the status ETag does: the seq, and after a dot
// the count of delivery changes once there is one ("17", "17.2").
func (v Version) Tag() string {
	tag := strconv.FormatInt(v.Seq, 10)
	if v.Deliveries > 0 {
		tag += "." + strconv.Itoa(v.Deliveries)
	}
	return tag
}

// Known is what a caller holds of a job already, so that GetUnless need not send it again.
type Known struct {
	// Tags are the states a client holds, named as Version.Tag does (the entity tags of its
	// If-None-Match).
	Tags []string
	// Any says the client takes whatever the record is now (If-None-Match: *).
	Any bool
	// Cached is the state of a body the caller keeps; none if its Epoch is empty.
	Cached Version
}

// Peek is what GetUnless found of a job.
type Peek struct {
	Version
	// Principal owns the job, for the caller's access check.
	Principal string
	// Job is the whole record, or nil when the caller holds its state already (see Known).
	Job *Job
}

// GetUnless reads job id in one script unless the caller knows its current state already:
// then it returns only the state's seq, epoch and owner, and decodes nothing.
func (s *Store) GetUnless(ctx context.Context, id string, known Known) (*Peek, error) {
	tags := "*"
	if !known.Any {
		tags = strings.Join(known.Tags, ",")
	}
	cachedTag := ""
	if known.Cached.Epoch != "" {
		cachedTag = known.Cached.Tag()
	}
	res, err := s.scripts.peek.Run(ctx, s.rdb, []string{jobKey(id)}, tags, cachedTag, known.Cached.Epoch).Slice()
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	switch code, _ := res[0].(int64); code {
	case 0:
		seq, _ := strconv.ParseInt(res[1].(string), 10, 64)
		deliveries, _ := strconv.Atoi(res[4].(string))
		return &Peek{Version: Version{Seq: seq, Epoch: res[2].(string), Deliveries: deliveries}, Principal: res[3].(string)}, nil
	case 1:
		flat, _ := res[1].([]any)
		h := make(map[string]string, len(flat)/2)
		for i := 0; i+1 < len(flat); i += 2 {
			k, _ := flat[i].(string)
			v, _ := flat[i+1].(string)
			h[k] = v
		}
		job, err := decodeJob(h)
		if err != nil {
			return nil, err
		}
		return &Peek{Version: VersionOf(job), Principal: job.Principal, Job: job}, nil
	default:
		return nil, ErrNotFound
	}
}

func decodeJob(h map[string]string) (*Job, error) {
	j := &Job{ID: h["id"], Status: Status(h["status"]), Epoch: h["epoch"], Principal: h["principal"], Task: h["task"],
		Enqueued: h["enqueued"] == "1", Files: []File{}}
	if j.Task == "" {
		j.Task = j.ID
	}
	j.Seq, _ = strconv.ParseInt(h["seq"], 10, 64)
	j.Attempts, _ = strconv.Atoi(h["attempts"])
	if ms, err := strconv.ParseInt(h["heartbeat_at"], 10, 64); err == nil {
		j.HeartbeatAt = time.UnixMilli(ms).UTC()
	}
	if w := h["waiting"]; w != "" {
		j.Waiting = new(Waiting)
		if err := json.Unmarshal([]byte(w), j.Waiting); err != nil {
			return nil, fmt.Errorf("decode waiting of job %s: %w", j.ID, err)
		}
	}
	if url := h["cb_url"]; url != "" {
		j.Callback = &Callback{URL: url, Events: []string{}, State: DeliveryState(h["cb_state"]), LastError: h["cb_error"]}
		j.Callback.Attempts, _ = strconv.Atoi(h["cb_attempts"])
		j.Callback.Revision, _ = strconv.Atoi(h["cb_rev"])
		for e := range strings.SplitSeq(h["cb_events"], ",") {
			if e != "" {
				j.Callback.Events = append(j.Callback.Events, e)
			}
		}
	}
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
// new attempt finds it, checkpoints included. The attempt runs the job's task: the job
// id's, or the one a rescue named (see HandOver); another gives ErrSuperseded.
func (s *Store) Claim(ctx context.Context, id, token string) (*Job, error) {
	return s.ClaimFor(ctx, id, id, token)
}

// ClaimFor is Claim for an attempt of task taskID.
func (s *Store) ClaimFor(ctx context.Context, id, taskID, token string) (*Job, error) {
	if err := s.run(ctx, s.scripts.claim, id, token, s.timestamp(), taskID, s.now().UnixMilli()); err != nil {
		return nil, fmt.Errorf("claim job %s: %w", id, err)
	}
	job, err := s.Get(ctx, id)
	if err == nil {
		s.floors.forget(id) // an attempt before this one, in this process, is over
		s.floors.raise(id, job.Seq)
	}
	return job, err
}

// Regressed repairs the record of job id when its seq is below seen, a seq someone saw: it
// lost writes (a failover, or a Redis crash within the AOF second). The record then takes a
// new epoch and a seq above seen, and publishes its state. It reports whether it repaired.
func (s *Store) Regressed(ctx context.Context, id string, seen int64) (bool, error) {
	n, err := s.scripts.regressed.Run(ctx, s.rdb, s.keys(id), seen, s.newEpoch()).Int()
	if err == nil && n < 0 {
		err = scriptError(int64(n))
	}
	if err != nil {
		return false, fmt.Errorf("repair job %s: %w", id, err)
	}
	return n == 1, nil
}

// Heartbeat records that the attempt with the given token is alive. A job said to wait for
// a worker says it no longer does.
func (s *Store) Heartbeat(ctx context.Context, id, token string) error {
	if err := s.runAbove(ctx, s.scripts.heartbeat, id, token, s.now().UnixMilli()); err != nil {
		return fmt.Errorf("heartbeat of job %s: %w", id, err)
	}
	return nil
}

// runAbove runs a script of the running attempt's writes with the job's floor and a new
// epoch after args, and raises the floor to the seq it returns (see floors). A refusal
// that ends the attempt (the job is gone or ended, another attempt owns it) ends what this
// process keeps of the job.
func (s *Store) runAbove(ctx context.Context, script *redis.Script, id string, args ...any) error {
	seq, err := script.Run(ctx, s.rdb, s.keys(id), append(args, s.floors.of(id), s.newEpoch())...).Int64()
	if err != nil {
		return err
	}
	if err := scriptError(seq); err != nil {
		if attemptOver(err) {
			s.floors.forget(id)
		}
		return err
	}
	s.floors.raise(id, seq)
	return nil
}

// MarkWaiting says that a running job waits for a worker, because its attempt showed no
// sign of life since w.Since: it publishes a job event with w, unless a sign of life came
// after all or the job says so already. It reports whether it did.
func (s *Store) MarkWaiting(ctx context.Context, id string, w Waiting) (bool, error) {
	raw, _ := json.Marshal(w)
	n, err := s.scripts.wait.Run(ctx, s.rdb, s.keys(id), w.Since.Add(time.Millisecond).UnixMilli(), raw, s.timestamp()).Int()
	if err != nil {
		return false, fmt.Errorf("mark job %s waiting: %w", id, err)
	}
	return n == 1, nil
}

// HandOver makes task to the job's task in place of task from, whose worker was lost: from
// then on only an attempt of to may claim the job. It reports false when the job's task is
// another than from already (someone handed it over first).
func (s *Store) HandOver(ctx context.Context, id, from, to string) (bool, error) {
	n, err := s.scripts.handOver.Run(ctx, s.rdb, s.keys(id), from, to).Int()
	if err == nil && n < 0 {
		err = scriptError(int64(n))
	}
	if err != nil {
		return false, fmt.Errorf("hand job %s over to task %s: %w", id, to, err)
	}
	return n == 1, nil
}

// MarkEnqueued records that job id's task was seen in the queue: should it go missing
// later, an operator removed it, and the job must end rather than be queued again.
func (s *Store) MarkEnqueued(ctx context.Context, id string) error {
	if err := s.rdb.HSet(ctx, jobKey(id), "enqueued", "1").Err(); err != nil {
		return fmt.Errorf("mark job %s enqueued: %w", id, err)
	}
	return nil
}

// UpdateFile records the new state of one file for the attempt with the given token, and
// publishes it. Once the file is terminal it never changes again.
func (s *Store) UpdateFile(ctx context.Context, id, token string, f File) error {
	entry, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode file %d of job %s: %w", f.ID, id, err)
	}
	err = s.runAbove(ctx, s.scripts.updateFile, id, token, f.ID, string(f.Status),
		strconv.FormatFloat(f.Percent, 'f', -1, 64), entry, s.timestamp(), s.now().UnixMilli())
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
	return s.CancelBecause(ctx, id, Error{})
}

// CancelBecause cancels a job as Cancel does, for a reason other than its owner's wish,
// which its error then says: an operator canceled its task from the dashboard.
func (s *Store) CancelBecause(ctx context.Context, id string, reason Error) (*Job, error) {
	if _, err := s.finish(ctx, "cancel", id, "", reason, ""); err != nil {
		return nil, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return s.Get(ctx, id)
}

func (s *Store) finish(ctx context.Context, mode, id, token string, jobErr Error, fileErr string) (Status, error) {
	errJSON := []byte("null")
	if jobErr != (Error{}) {
		errJSON, _ = json.Marshal(jobErr)
	}
	fileErrJSON, _ := json.Marshal(fileErr)
	floor := ""
	if mode == "complete" || mode == "fail" {
		floor = s.floors.of(id)
	}
	res, err := s.scripts.finish.Run(ctx, s.rdb, s.keys(id),
		mode, token, s.timestamp(), int64(s.retention/time.Second), errJSON, fileErrJSON, floor, s.newEpoch()).Slice()
	if err != nil {
		return "", err
	}
	if code, _ := res[0].(int64); code < 0 {
		if err := scriptError(code); attemptOver(err) {
			s.floors.forget(id)
		}
		return "", scriptError(code)
	}
	s.floors.forget(id)
	// The idempotency key, named in the record, now lives as long as its job. It shares the
	// job's slot, but a script may only touch the keys it is given, and only the record
	// knows this one's name.
	if ik, _ := res[2].(string); ik != "" {
		if err := s.rdb.Expire(ctx, ik, s.retention).Err(); err != nil {
			return "", err
		}
	}
	return Status(res[1].(string)), nil
}

// RecordDelivery records how the delivery of job id's end fares after its attempt-th
// attempt. An older attempt's report, arriving late, changes nothing, and a job whose record
// is gone is not brought back (ErrNotFound). It leaves seq alone: the delivery is not the
// job's progress, and the status ETag names it apart (see the API).
func (s *Store) RecordDelivery(ctx context.Context, id string, state DeliveryState, attempt int, lastError string) error {
	code, err := s.scripts.delivery.Run(ctx, s.rdb, []string{jobKey(id)}, string(state), attempt, lastError).Int64()
	if err == nil {
		err = scriptError(code)
	}
	if err != nil {
		return fmt.Errorf("record the webhook delivery of job %s: %w", id, err)
	}
	return nil
}

// Refused reports whether err is the store's answer about a job (not found, finished,
// fenced off, ...), as opposed to a failure to reach Redis, which may be retried.
func Refused(err error) bool {
	for _, refusal := range []error{ErrNotFound, ErrFinished, ErrFenced, ErrFileFinished, ErrBackwards,
		ErrNotAFile, ErrUnfinished, ErrKeyReused, ErrIDTaken, ErrSuperseded} {
		if errors.Is(err, refusal) {
			return true
		}
	}
	return false
}

// attemptOver reports whether a refusal means that the attempt can write no more.
func attemptOver(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrFinished) || errors.Is(err, ErrFenced)
}

// keys are the keys every script of job id is given, as the prelude names them.
func (s *Store) keys(id string) []string {
	return []string{jobKey(id), Channel(id), auditKey(id), unfinishedKey(group(id))}
}

// run runs a script on job id's keys and turns its return code into an error.
func (s *Store) run(ctx context.Context, script *redis.Script, id string, args ...any) error {
	code, err := script.Run(ctx, s.rdb, s.keys(id), args...).Int64()
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
	case codeIDTaken:
		return ErrIDTaken
	case codeSuperseded:
		return ErrSuperseded
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

// Unfinished returns those of ids whose job exists and is not finished, in one round trip.
func (s *Store) Unfinished(ctx context.Context, ids []string) ([]string, error) {
	statuses := make([]*redis.StringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			statuses[i] = p.HGet(ctx, jobKey(id), "status")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read the status of %d jobs: %w", len(ids), err)
	}
	var out []string
	for i, st := range statuses {
		if status, err := st.Result(); err == nil && !Status(status).Terminal() {
			out = append(out, ids[i])
		}
	}
	return out, nil
}

// Existing returns those of ids whose job still has a record, in one round trip.
func (s *Store) Existing(ctx context.Context, ids []string) ([]string, error) {
	found := make([]*redis.IntCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			found[i] = p.Exists(ctx, jobKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check %d jobs: %w", len(ids), err)
	}
	var out []string
	for i, n := range found {
		if n.Val() == 1 {
			out = append(out, ids[i])
		}
	}
	return out, nil
}

// groups are the names of the 1,024 slot groups: every pair of Crockford base32 characters.
func groups() []string {
	out := make([]string, 0, len(crockford)*len(crockford))
	for _, a := range crockford {
		for _, b := range crockford {
			out = append(out, string(a)+string(b))
		}
	}
	return out
}

// UnfinishedBefore returns the ids of the unfinished jobs created before t, at most
// perGroup of each group, from every group's index in one round trip (a Cluster client
// sends each node its share).
func (s *Store) UnfinishedBefore(ctx context.Context, t time.Time, perGroup int) ([]string, error) {
	all := groups()
	found := make([]*redis.StringSliceCmd, len(all))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, g := range all {
			found[i] = p.ZRangeByScore(ctx, unfinishedKey(g), &redis.ZRangeBy{Min: "-inf",
				Max: strconv.FormatInt(t.UnixMilli(), 10), Count: int64(perGroup)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the unfinished jobs: %w", err)
	}
	var ids []string
	for _, f := range found {
		ids = append(ids, f.Val()...)
	}
	return ids, nil
}

// ForgetUnfinished takes job id out of its group's index of unfinished jobs: its record is
// gone (it expired unfinished).
func (s *Store) ForgetUnfinished(ctx context.Context, id string) error {
	if err := s.rdb.ZRem(ctx, unfinishedKey(group(id)), id).Err(); err != nil {
		return fmt.Errorf("forget job %s: %w", id, err)
	}
	return nil
}

// Exists reports whether job id still has a record: false once it expired.
func (s *Store) Exists(ctx context.Context, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, jobKey(id)).Result()
	if err != nil {
		return false, fmt.Errorf("check job %s: %w", id, err)
	}
	return n == 1, nil
}
