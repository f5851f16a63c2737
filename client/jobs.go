package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// InitiateOptions are the optional parts of Initiate.
type InitiateOptions struct {
	// IdempotencyKey makes a repeat of the same request return the same job, also from
	// another process. If empty, a random key is made for this call, so that its own
	// retries never start a second job.
	IdempotencyKey string
	// CallbackURL, when set, is where the server POSTs the job's final status body,
	// signed as the Standard Webhooks specification says, when the job ends.
	CallbackURL string
	// CallbackEvents asks for more deliveries to CallbackURL: EventFileReady POSTs each
	// file as it becomes ready.
	CallbackEvents []string
}

// EventFileReady is the callback event of a file that became ready.
const EventFileReady = "file.ready"

// Initiate starts a job that prepares the files with the given ids. A network error, 502,
// 503, 504 or 429 is retried (after the server's Retry-After, when it gives one) under the
// same idempotency key, so a retry returns the job the first attempt may have created.
func (c *Client) Initiate(ctx context.Context, fileIDs []int64, opts InitiateOptions) (*Initiated, error) {
	key := opts.IdempotencyKey
	if key == "" {
		key = newIdempotencyKey()
	}
	body, err := json.Marshal(struct {
		FileIDs        []int64  `json:"file_ids"`
		CallbackURL    string   `json:"callback_url,omitempty"`
		CallbackEvents []string `json:"callback_events,omitempty"`
	}{fileIDs, opts.CallbackURL, opts.CallbackEvents})
	if err != nil {
		return nil, fmt.Errorf("encode file ids: %w", err)
	}
	a, err := c.call(ctx, request{
		method: http.MethodPost,
		path:   "/v1/download/initiate",
		body:   body,
		header: http.Header{"Idempotency-Key": {key}},
		retry:  true,
		ok:     []int{http.StatusAccepted, http.StatusOK},
	})
	if err != nil {
		return nil, fmt.Errorf("start a job: %w", err)
	}
	var in Initiated
	if err := json.Unmarshal(a.body, &in); err != nil {
		return nil, fmt.Errorf("read the answer to initiate: %w", err)
	}
	in.Created = a.status == http.StatusAccepted
	return &in, nil
}

// newIdempotencyKey is 128 random bits in hex.
func newIdempotencyKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Status returns the job's current state. It asks with If-None-Match when it has seen the
// job before, and a 304 gives the body it saw last.
func (c *Client) Status(ctx context.Context, id string) (*Job, error) {
	if err := checkJobID(id); err != nil {
		return nil, err
	}
	cached, _ := c.bodies.get(id)
	job, _, err := c.status(ctx, id, cached.etag, true)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", id, err)
	}
	if job == nil {
		return decodeJob(cached.body)
	}
	return job, nil
}

// status reads the job's status body; with etag it may answer (nil, etag, nil) for "not
// modified". Every body read is remembered for Status.
func (c *Client) status(ctx context.Context, id, etag string, retry bool) (*Job, string, error) {
	h := http.Header{}
	if etag != "" {
		h.Set("If-None-Match", etag)
	}
	a, err := c.call(ctx, request{
		method: http.MethodGet,
		path:   "/v1/download/status/" + id,
		header: h,
		retry:  retry,
		ok:     []int{http.StatusOK, http.StatusNotModified},
	})
	if err != nil {
		return nil, "", err
	}
	if a.status == http.StatusNotModified {
		if _, ok := c.bodies.get(id); ok {
			return nil, etag, nil
		}
		// Nothing remembered (another client's tag): ask for the body itself.
		return c.status(ctx, id, "", retry)
	}
	job, err := decodeJob(a.body)
	if err != nil {
		return nil, "", err
	}
	tag := a.header.Get("ETag")
	if tag != "" {
		c.bodies.put(id, cachedBody{etag: tag, body: a.body})
	}
	return job, tag, nil
}

func decodeJob(body []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, fmt.Errorf("read a status body: %w", err)
	}
	return &j, nil
}

// Cancel cancels a queued or running job and returns its state, canceled. Files that were
// ready stay downloadable. Cancelling a finished job is an *Error with status 409, except
// when the job was canceled already (a retry of a cancel that went through).
func (c *Client) Cancel(ctx context.Context, id string) (*Job, error) {
	if err := checkJobID(id); err != nil {
		return nil, err
	}
	a, err := c.call(ctx, request{
		method: http.MethodDelete,
		path:   "/v1/download/" + id,
		retry:  true,
		ok:     []int{http.StatusAccepted},
	})
	var e *Error
	if errors.As(err, &e) && e.StatusCode == http.StatusConflict {
		if job, serr := c.Status(ctx, id); serr == nil && job.Status == StatusCanceled {
			return job, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cancel %s: %w", id, err)
	}
	return decodeJob(a.body)
}

// ErrInvalidJobID is wrapped by the error of a call given an id that is not a job id; no
// request is sent.
var ErrInvalidJobID = errors.New("job ids look like dl_ followed by 26 characters of Crockford base32")

// checkJobID refuses an id that the server would refuse, before any request.
func checkJobID(id string) error {
	if !ValidJobID(id) {
		return fmt.Errorf("job id %q: %w", id, ErrInvalidJobID)
	}
	return nil
}
