package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Client talks to one longhaul server. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	http      *http.Client
	key       string
	userAgent string
	retries   int
	timeout   time.Duration
	backoff   backoff
	live      liveTimings
	giveUp    time.Duration
	bodies    *bodyCache
}

// Option configures a Client.
type Option func(*Client)

// New returns a client of the longhaul server at baseURL, such as http://localhost:3000.
// A path in baseURL (a server behind a proxy at /longhaul/) is kept.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("longhaul server address %q: want http://host:port or https://host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("longhaul server address %q: want no query, fragment or user", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	c := &Client{
		base:      u,
		http:      &http.Client{Transport: defaultTransport()},
		userAgent: "longhaul-client",
		retries:   4,
		timeout:   30 * time.Second,
		backoff:   backoff{base: 500 * time.Millisecond, max: 15 * time.Second},
		live:      defaultLiveTimings,
		giveUp:    5 * time.Minute,
		bodies:    newBodyCache(256),
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// defaultTransport is http.DefaultTransport's settings with a bound on waiting for an
// answer's headers, so a server that accepts and then says nothing cannot hang a call.
func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}

// WithHTTPClient makes the client send its requests with hc. Its Timeout must be zero (or
// longer than any event stream or download): Watch and Download read long bodies. If not
// given, a client with a 30 s bound on waiting for response headers is used.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http = hc }
}

// WithKey makes the client send key as "Authorization: Bearer <key>" on every REST call,
// and fetch a one-time ticket for each live connection. The key is never put in a URL.
func WithKey(key string) Option {
	return func(c *Client) { c.key = key }
}

// WithUserAgent sets the User-Agent of every request. If not given, "longhaul-client".
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// WithRetries sets how many times a request that may safely be repeated is retried after a
// network error, 502, 503, 504 or 429. If not given, 4; zero turns retries off.
func WithRetries(n int) Option {
	return func(c *Client) { c.retries = max(0, n) }
}

// WithBackoff sets the first delay between retries and reconnects, which doubles (with
// jitter) per failure up to most. If not given, 500 ms and 15 s.
func WithBackoff(first, most time.Duration) Option {
	return func(c *Client) {
		if first > 0 && most >= first {
			c.backoff = backoff{base: first, max: most}
		}
	}
}

// WithRequestTimeout bounds each attempt of a REST call (not downloads or live streams).
// If not given, 30 s.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithGiveUp sets how long Watch goes on trying while neither a live channel nor polling
// reaches the server; then it ends with an error that wraps ErrUnreachable. If not given,
// 5 minutes.
func WithGiveUp(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.giveUp = d
		}
	}
}

// Error is an error answer of the server, in the contract's one error shape.
type Error struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Code is the contract's stable machine word: invalid_request, not_found, conflict,
	// unauthorized, rate_limited, unavailable, ...
	Code string
	// Message is the server's explanation, for people.
	Message string
	// Field names the input field at fault, when there is one.
	Field string
	// RetryAfter is how long the server asked the client to wait, when it said.
	RetryAfter time.Duration
}

// Error says what the server answered; for a 401 it says what to check.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d): %s", e.Code, e.StatusCode, e.Message)
	if e.Field != "" {
		fmt.Fprintf(&b, " (field %s)", e.Field)
	}
	if e.StatusCode == http.StatusUnauthorized {
		b.WriteString(": the API key is missing, wrong or revoked")
	}
	return b.String()
}

// ErrUnreachable is wrapped by the error of a call that got no answer from the server: the
// connection was refused or cut, the name did not resolve, or the server stayed silent.
var ErrUnreachable = errors.New("server unreachable")

// IsNotFound reports whether err is the server saying that the job (or file) does not
// exist, or has expired.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// request is one REST call.
type request struct {
	method string
	path   string // below the base URL
	body   []byte
	header http.Header
	// retry says whether the request may be sent again after a failure.
	retry bool
	// ok lists the statuses that are answers rather than errors.
	ok []int
}

// answer is a REST call's successful response, its body read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// call sends r, retrying it when it may be and the failure is passing, and returns the
// first answer whose status r accepts. Anything else is an *Error, or an error that wraps
// ErrUnreachable, or ctx's error.
func (c *Client) call(ctx context.Context, r request) (*answer, error) {
	for attempt := 0; ; attempt++ {
		a, err := c.callOnce(ctx, r)
		if err == nil || !r.retry || attempt >= c.retries || !retryable(err) || ctx.Err() != nil {
			return a, err
		}
		wait := c.backoff.delay(attempt + 1)
		var e *Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			wait = min(e.RetryAfter, maxRetryAfter)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// maxRetryAfter bounds how long one Retry-After makes the client wait.
const maxRetryAfter = 5 * time.Minute

func (c *Client) callOnce(ctx context.Context, r request) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.url(r.path, nil), body)
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", r.method, r.path, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.unreachable(ctx, r.method, r.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, c.unreachable(ctx, r.method, r.path, err)
	}
	for _, s := range r.ok {
		if resp.StatusCode == s {
			return &answer{status: s, header: resp.Header, body: data}, nil
		}
	}
	return nil, errorOf(resp, data)
}

// maxBody bounds a REST answer: a status body of 1000 files is about 150 KiB.
const maxBody = 16 << 20

// authorize puts the key, the user agent and nothing else that identifies the caller on req.
func (c *Client) authorize(req *http.Request) {
	req.Header.Set("User-Agent", c.userAgent)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
}

// url is the absolute URL of path on the server, with query. Paths are built from
// validated ids only, so they need no escaping.
func (c *Client) url(path string, query url.Values) string {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	return u.String()
}

// unreachable wraps a transport failure; a cancelled ctx stays ctx's error.
func (c *Client) unreachable(ctx context.Context, method, path string, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%s %s on %s: %w: %w", method, path, c.base.Host, ErrUnreachable, err)
}

// retryable reports whether a failure may pass: no answer at all, or an answer that says
// to come back.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		switch e.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable,
			http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	return errors.Is(err, ErrUnreachable) || errors.As(err, &ne)
}

// errorOf reads an error answer. A body in the contract's shape gives code, message and
// field; anything else (a proxy's page) gives the status's own words.
func errorOf(resp *http.Response, data []byte) *Error {
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	e := &Error{StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	if json.Unmarshal(data, &body) == nil && body.Error != nil && body.Error.Code != "" {
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
		return e
	}
	e.Code = codeOfStatus(resp.StatusCode)
	e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
	if e.Message == "" {
		e.Message = "unexpected answer"
	}
	return e
}

// codeOfStatus is the contract's code for an answer that came without one.
func codeOfStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "unavailable"
	}
	return "internal"
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

// backoff is an exponential delay with equal jitter: half of each delay is fixed, so
// retries spread out but never bunch at zero.
type backoff struct {
	base, max time.Duration
}

// delay is the wait before retry n (1 is the first).
func (b backoff) delay(n int) time.Duration {
	ceiling := b.max
	if n < 32 {
		ceiling = min(b.max, b.base<<max(0, n-1))
	}
	return ceiling/2 + rand.N(ceiling/2+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bodyCache remembers the last status body of recent jobs, for If-None-Match. It forgets
// an arbitrary job when it holds too many.
type bodyCache struct {
	mu     sync.Mutex
	size   int
	bodies map[string]cachedBody
}

type cachedBody struct {
	etag string
	body []byte
}

func newBodyCache(size int) *bodyCache {
	return &bodyCache{size: size, bodies: map[string]cachedBody{}}
}

func (bc *bodyCache) get(id string) (cachedBody, bool) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	b, ok := bc.bodies[id]
	return b, ok
}

func (bc *bodyCache) put(id string, b cachedBody) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if _, known := bc.bodies[id]; !known && len(bc.bodies) >= bc.size {
		for other := range bc.bodies {
			delete(bc.bodies, other)
			break
		}
	}
	bc.bodies[id] = b
}
