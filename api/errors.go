package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/jobs"
)

// Error is a failure the client is told about, in the contract's one error shape. HTTP
// answers, WebSocket refusals and WebSocket error frames are all rendered from it.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// The stable error codes of the contract.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodePayloadTooLarge      = "payload_too_large"
	CodeNotFound             = "not_found"
	CodeConflict             = "conflict"
	CodeRateLimited          = "rate_limited"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal"
)

func invalid(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Field: field,
		Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// The errors every channel shares.
var (
	// errUnavailable is what the client hears when Redis cannot be reached: the request may
	// be retried, and no detail of the failure leaves the server.
	errUnavailable = &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
		Message: "the job store is unavailable; retry shortly"}
	errJobNotFound   = notFound("no job with this id (it may have expired)")
	errInternal      = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
	errForeignOrigin = &Error{Status: http.StatusForbidden, Code: CodeForbidden,
		Message: "this origin may not open live connections"}
	errNotAnUpgrade = invalid("", "this endpoint takes a WebSocket upgrade")
)

// retryAfterSeconds is the Retry-After of a 503.
const retryAfterSeconds = "2"

// errorBody is the contract's error shape.
type errorBody struct {
	Error *Error `json:"error"`
}

// errorFrame is an error as a live channel's message.
type errorFrame struct {
	Type  string `json:"type"`
	Error *Error `json:"error"`
}

// body is e as an HTTP answer's body.
func (e *Error) body() []byte {
	b, _ := json.Marshal(errorBody{e})
	return b
}

// frame is e as a message on a live channel.
func (e *Error) frame() []byte {
	b, _ := json.Marshal(errorFrame{Type: "error", Error: e})
	return b
}

// apiError turns any error into the one the client is told about. Errors that are not an
// *Error and not a known store error come from Redis or the disk: they are logged here, once,
// and the client hears 503, which it may retry.
func apiError(c *gin.Context, log *slog.Logger, err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, jobs.ErrNotFound):
		return errJobNotFound
	case errors.Is(err, jobs.ErrFinished):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: "the job has already finished"}
	case errors.Is(err, jobs.ErrKeyReused):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Field: "Idempotency-Key",
			Message: "this Idempotency-Key was used with a different request; use a new key for a new request"}
	}
	log.ErrorContext(c.Request.Context(), "request failed", "method", c.Request.Method,
		"path", c.FullPath(), "job", c.Param("job_id"), "err", err)
	return errUnavailable
}

// writeError answers a request with err in the contract's shape.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	writeErrorTo(c.Writer, apiError(c, log, err))
	c.Abort()
}

// writeErrorTo writes e as an HTTP answer; the WebSocket upgrader's refusals use it too.
func writeErrorTo(w http.ResponseWriter, e *Error) {
	h := w.Header()
	if e.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", retryAfterSeconds)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.Status)
	w.Write(e.body())
}
