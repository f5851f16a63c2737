package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// replyError is an error reply of Redis, as go-redis gives it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func TestTopologyChangedOnlyOnTheNetworkAndClusterDown(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"no error", nil, false},
		{"a nil reply", redis.Nil, false},
		{"a script's error", replyError("ERR Error running script"), false},
		{"a MOVED, which go-redis follows by itself", replyError("MOVED 3999 127.0.0.1:6381"), false},
		{"the cluster is down", replyError("CLUSTERDOWN The cluster is down"), true},
		{"a refused dial", refused, true},
		{"a refused dial, wrapped", fmt.Errorf("get job x: %w", refused), true},
		{"a read that timed out", context.DeadlineExceeded, true},
		{"a caller that gave up", context.Canceled, false},
	} {
		if got := topologyChanged(c.err); got != c.want {
			t.Errorf("%s (%v): topologyChanged = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestRedisLogSpeaksInTheLogsFormat(t *testing.T) {
	var out strings.Builder
	l := redisLog{slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l.Printf(t.Context(), "pool.go:770: redis: connection pool: failed to dial after %d attempts: %v", 2, "connection refused")
	l.Printf(t.Context(), "sentinel: new master=%q addr=%q", "longhaul", "127.0.0.1:6380")
	type line struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
	}
	var lines []line
	for text := range strings.Lines(out.String()) {
		var l line
		if err := json.Unmarshal([]byte(text), &l); err != nil {
			t.Fatalf("a line of go-redis is not JSON: %q", text)
		}
		lines = append(lines, l)
	}
	if len(lines) != 2 || lines[0].Level != "WARN" || !strings.Contains(lines[0].Msg, "failed to dial after 2 attempts") ||
		lines[1].Level != "INFO" || !strings.HasPrefix(lines[1].Msg, "sentinel: new master") {
		t.Errorf("go-redis's lines as logged: %+v; want the failed dial at WARN, the Sentinels' news at INFO", lines)
	}
}
