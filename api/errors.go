package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/jobs"
)

// Error is a failure the client is told about, in the contract's one error shape.
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

// errUnavailable is what the client hears when Redis cannot be reached: the request may be
// retried, and no detail of the failure leaves the server.
var errUnavailable = &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
	Message: "the job store is unavailable; retry shortly"}

// retryAfterSeconds is the Retry-After of a 503.
const retryAfterSeconds = "2"

// errorBody is the contract's error shape.
type errorBody struct {
	Error *Error `json:"error"`
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
		return notFound("no job with this id (it may have expired)")
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
	e := apiError(c, log, err)
	if e.Status == http.StatusServiceUnavailable {
		c.Header("Retry-After", retryAfterSeconds)
	}
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(e.Status, errorBody{e})
}
