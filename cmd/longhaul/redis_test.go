package main

import (
	"context"
	"errors"
	"fmt"
	"net"
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
