package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/limits"
)

// This file is who may do what: API keys, ownership of jobs, live-channel tickets and the
// limits each caller is held to.

// AuthMode says whether requests need an API key.
type AuthMode string

// The auth modes: keys (every API route needs a key; the default of `longhaul api`) and
// none (anyone who reaches the port may do anything; the zero-setup demo).
const (
	AuthKeys AuthMode = "keys"
	AuthNone AuthMode = "none"
)

// KeyStore finds API keys.
type KeyStore interface {
	Lookup(ctx context.Context, secret string) (auth.Key, error)
	Get(ctx context.Context, id string) (auth.Key, error)
}

// TicketStore issues and redeems live-channel tickets.
type TicketStore interface {
	Issue(ctx context.Context, jobID, keyID string) (string, time.Time, error)
	Redeem(ctx context.Context, jobID, ticket string) (keyID string, err error)
}

var (
	_ KeyStore    = (*auth.Keys)(nil)
	_ TicketStore = (*auth.Tickets)(nil)
)

// caller is who sent a request.
type caller struct {
	// principal names the caller for ownership and limits: "key:<id>", or "addr:<ip>"
	// when auth is off.
	principal string
	// key is the caller's API key; nil when auth is off.
	key *auth.Key
}

// admin reports whether the caller holds an admin key.
func (c caller) admin() bool { return c.key != nil && c.key.Role == auth.RoleAdmin }

// sees reports whether the caller may know of job: its own, every job for an admin, and
// every job when auth is off (no key, no owner).
func (c caller) sees(job *jobs.Job) bool { return c.owns(job.Principal) }

// owns reports whether the caller may see the jobs of principal.
func (c caller) owns(principal string) bool {
	return c.key == nil || c.admin() || principal == c.principal
}

func principalOfKey(k auth.Key) string { return "key:" + k.ID }

const callerKey = "longhaul.caller"

func callerOf(c *gin.Context) caller {
	who, _ := c.Get(callerKey)
	return who.(caller)
}

var (
	errNoKey = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
		Message: "this server needs an API key: send it as Authorization: Bearer <key>"}
	errBadKey = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
		Message: "the API key is unknown or revoked"}
	errBadTicket = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
		Message: "the ticket is unknown, used, expired or for another job: ask for a new one (POST .../ticket)"}
	errKeyInURL = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
		Message: "an API key never goes in a URL, where logs keep it: ask for a ticket (POST .../ticket) and pass that"}
	errNotAdmin = &Error{Status: http.StatusForbidden, Code: CodeForbidden,
		Message: "this needs an admin key"}
)

// access holds what identify and the limits need.
type access struct {
	mode    AuthMode
	keys    KeyStore
	tickets TicketStore
	limits  *limits.Limits
	log     *slog.Logger
}

// identify finds out who sent the request: with auth on, the Bearer key of the
// Authorization header, else 401; with auth off, the client's address.
func (a *access) identify(c *gin.Context) {
	who, err := a.callerOfHeader(c)
	if err != nil {
		a.refuse(c, err)
		return
	}
	c.Set(callerKey, who)
}

func (a *access) callerOfHeader(c *gin.Context) (caller, error) {
	if a.mode == AuthNone {
		return caller{principal: "addr:" + c.ClientIP()}, nil
	}
	scheme, secret, found := strings.Cut(c.GetHeader("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return caller{}, errNoKey
	}
	key, err := a.keys.Lookup(c.Request.Context(), strings.TrimSpace(secret))
	if errors.Is(err, auth.ErrUnknownKey) {
		return caller{}, errBadKey
	} else if err != nil {
		return caller{}, err
	}
	return caller{principal: principalOfKey(key), key: &key}, nil
}

// identifyLive is identify for the live channels, whose browsers cannot send headers: a
// ticket in the URL, redeemed once, names the key; a client that can send the header may.
// A key in the URL is refused outright.
func (a *access) identifyLive(c *gin.Context) {
	for _, values := range c.Request.URL.Query() {
		for _, v := range values {
			if auth.LooksLikeKey(v) {
				a.refuse(c, errKeyInURL)
				return
			}
		}
	}
	ticket := c.Query("ticket")
	if a.mode == AuthNone || ticket == "" {
		a.identify(c)
		return
	}
	ctx := c.Request.Context()
	keyID, err := a.tickets.Redeem(ctx, c.Param("job_id"), ticket)
	if errors.Is(err, auth.ErrBadTicket) {
		a.refuse(c, errBadTicket)
		return
	} else if err != nil {
		writeError(c, a.log, err)
		return
	}
	key, err := a.keys.Get(ctx, keyID)
	if errors.Is(err, auth.ErrUnknownKey) {
		a.refuse(c, errBadKey)
		return
	} else if err != nil {
		writeError(c, a.log, err)
		return
	}
	c.Set(callerKey, caller{principal: principalOfKey(key), key: &key})
	c.Set(ticketChecked, true)
}

// ticketChecked marks a live request whose ticket was issued for its job, which was the
// caller's to see then: the watch need not read the job again to check.
const ticketChecked = "longhaul.ticket"

// hiddenJob reports whether the job a live request names is one the caller may not see,
// so that the channel answers as for a job that does not exist. A ticket was issued for a
// job its key could see, and without keys every job is visible: only a client key sent in
// the header needs the job read here. It answers the request itself and reports false
// when the job cannot be read.
func (a *access) hiddenJob(c *gin.Context, store JobStore) (hidden, ok bool) {
	who := callerOf(c)
	if _, viaTicket := c.Get(ticketChecked); viaTicket || who.key == nil || who.admin() {
		return false, true
	}
	// Only the owner is needed: a reconnect storm of clients with keys must not read and
	// decode the whole record once per connection (the watch shares one snapshot).
	peek, err := store.GetUnless(c.Request.Context(), c.Param("job_id"), jobs.Known{Any: true})
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return false, true // the watch finds it missing, as for anyone
	case err != nil:
		writeError(c, a.log, err)
		return false, false
	}
	return !who.owns(peek.Principal), true
}

// refuse answers 401 with the challenge the contract names, or err as it is.
func (a *access) refuse(c *gin.Context, err error) {
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="longhaul"`)
	}
	writeError(c, a.log, err)
}

// requireAdmin lets only admin keys through; with auth off, nobody.
func requireAdmin(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !callerOf(c).admin() {
			writeError(c, log, errNotAdmin)
		}
	}
}

// readJob reads the job the request names, as the caller may see it: a job of another
// client is not found, exactly as one that does not exist. Every answer of 404 counts
// against the caller's not-found rate, past which it gets 429: guessing ids stops there.
func (a *access) readJob(c *gin.Context, store JobStore) (*jobs.Job, bool) {
	job, err := store.Get(c.Request.Context(), c.Param("job_id"))
	if err == nil && !callerOf(c).sees(job) {
		err = jobs.ErrNotFound
	}
	if err != nil {
		a.writeJobError(c, err)
		return nil, false
	}
	return job, true
}

// peekJob is readJob for a caller that may hold the job's state already (see
// jobs.Store.GetUnless): the same access check, on the job's owner alone. With
// jobs.Known{Any: true} it checks access and nothing more: the record is neither read nor
// decoded.
func (a *access) peekJob(c *gin.Context, store JobStore, id string, known jobs.Known) (*jobs.Peek, bool) {
	peek, err := store.GetUnless(c.Request.Context(), id, known)
	if err == nil && !callerOf(c).owns(peek.Principal) {
		err = jobs.ErrNotFound
	}
	if err != nil {
		a.writeJobError(c, err)
		return nil, false
	}
	return peek, true
}

// writeJobError answers a request about a job with err, holding 404s to the not-found rate.
func (a *access) writeJobError(c *gin.Context, err error) {
	e := apiError(c, a.log, err) // logs a failure of Redis, once
	if e.Status == http.StatusNotFound {
		if d, lerr := a.limits.AllowNotFound(c.Request.Context(), callerOf(c).principal); lerr == nil && !d.Allowed {
			writeLimited(c, d)
			c.Abort()
			return
		}
	}
	writeErrorTo(c.Writer, e)
	c.Abort()
}

// writeLimited answers 429 with what the contract says a refusal carries.
func writeLimited(c *gin.Context, d limits.Decision) {
	rateHeaders(c, d)
	c.Header("Retry-After", strconv.Itoa(seconds(d.RetryAfter)))
	writeErrorTo(c.Writer, &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: d.Reason})
}

// rateHeaders describes a rate, when the decision is about one.
func rateHeaders(c *gin.Context, d limits.Decision) {
	if d.Limit == 0 {
		return
	}
	c.Header("RateLimit-Limit", strconv.Itoa(d.Limit))
	c.Header("RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
	c.Header("RateLimit-Reset", strconv.Itoa(seconds(d.Reset)))
}

// seconds rounds up to whole seconds, at least one.
func seconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

// meBody is the body of GET /v1/me.
type meBody struct {
	Auth AuthMode  `json:"auth"`
	Key  *auth.Key `json:"key,omitempty"`
}

func handleMe(mode AuthMode) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, meBody{Auth: mode, Key: callerOf(c).key})
	}
}

// ticketBody is the body of POST /v1/download/{job_id}/ticket.
type ticketBody struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

func handleTicket(a *access, store JobStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := a.peekJob(c, store, c.Param("job_id"), jobs.Known{Any: true}); !ok {
			return
		}
		keyID := ""
		if k := callerOf(c).key; k != nil {
			keyID = k.ID
		}
		ticket, expires, err := a.tickets.Issue(c.Request.Context(), c.Param("job_id"), keyID)
		if err != nil {
			writeError(c, a.log, err)
			return
		}
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusCreated, ticketBody{Ticket: ticket, ExpiresAt: expires})
	}
}

// describeBytes is a size for a message.
func describeBytes(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
