package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Limits of an initiate request.
const (
	maxFiles     = 1000
	maxBodyBytes = 64 << 10
)

// Task of a download, as its worker would read it.
const (
	taskType  = "download"
	taskQueue = "downloads"
)

// newRouter is the whole API of the peer. It logs no request: longhaul logs only
// warnings in the benchmark, and a line per request would measure the logger.
func newRouter(queue *asynq.Client, rdb *redis.Client, jobKey func(id string) string, log *slog.Logger) *gin.Engine {
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/healthz", func(c *gin.Context) { writeJSON(c, log, http.StatusOK, gin.H{"status": "ok"}) })
	r.POST("/v1/download/initiate", handleInitiate(queue, log))
	r.GET("/v1/download/status/:job_id", handleStatus(rdb, jobKey, log))
	return r
}

// initiateRequest is the body of POST /v1/download/initiate, and the task's payload.
type initiateRequest struct {
	FileIDs []int64 `json:"file_ids"`
}

// initiateResponse is the answer to an accepted initiate request.
type initiateResponse struct {
	JobID string `json:"job_id"`
}

// errorResponse is the body of every error.
type errorResponse struct {
	Error string `json:"error"`
}

// handleInitiate checks the body and queues one task; the task's id is the job's id.
func handleInitiate(queue *asynq.Client, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req initiateRequest
		body := http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
		if err := json.NewDecoder(body).Decode(&req); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeJSON(c, log, http.StatusRequestEntityTooLarge, errorResponse{fmt.Sprintf("the body must be at most %d bytes", maxBodyBytes)})
				return
			}
			writeJSON(c, log, http.StatusBadRequest, errorResponse{"the body must be a JSON object with file_ids, a list of positive integers"})
			return
		}
		if err := checkFileIDs(req.FileIDs); err != nil {
			writeJSON(c, log, http.StatusBadRequest, errorResponse{err.Error()})
			return
		}
		payload, err := json.Marshal(req)
		if err != nil {
			writeError(c, log, fmt.Errorf("encode payload: %w", err))
			return
		}
		info, err := queue.EnqueueContext(c.Request.Context(), asynq.NewTask(taskType, payload), asynq.Queue(taskQueue))
		if err != nil {
			writeError(c, log, fmt.Errorf("enqueue download: %w", err))
			return
		}
		writeJSON(c, log, http.StatusAccepted, initiateResponse{JobID: info.ID})
	}
}

// checkFileIDs says what is wrong with a request's file ids, if anything.
func checkFileIDs(ids []int64) error {
	if len(ids) == 0 || len(ids) > maxFiles {
		return fmt.Errorf("file_ids must hold 1 to %d ids", maxFiles)
	}
	for _, id := range ids {
		if id <= 0 {
			return errors.New("file_ids must be positive integers")
		}
	}
	return nil
}

// handleStatus answers a job's hash, field by field, as one JSON object.
func handleStatus(rdb *redis.Client, jobKey func(id string) string, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		job, err := rdb.HGetAll(c.Request.Context(), jobKey(c.Param("job_id"))).Result()
		if err != nil {
			writeError(c, log, fmt.Errorf("read job %s: %w", c.Param("job_id"), err))
			return
		}
		if len(job) == 0 {
			writeJSON(c, log, http.StatusNotFound, errorResponse{"no such job"})
			return
		}
		writeJSON(c, log, http.StatusOK, job)
	}
}

// writeError logs err and answers 500 without its details.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	log.ErrorContext(c.Request.Context(), "request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	writeJSON(c, log, http.StatusInternalServerError, errorResponse{"internal error"})
}

// writeJSON answers body with its Content-Length: net/http would send a body of over
// 2 KiB chunked, which the benchmark's HTTP client does not read.
func writeJSON(c *gin.Context, log *slog.Logger, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		log.ErrorContext(c.Request.Context(), "encode response failed", "err", err)
		c.Status(http.StatusInternalServerError)
		return
	}
	c.Header("Content-Length", strconv.Itoa(len(b)))
	c.Data(status, "application/json; charset=utf-8", b)
}
