package devbin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// groupWaitLimit bounds every wait of a Sentinel group or a Cluster: its start, a failover,
// its return to health. They take seconds; the limit is for a machine that is very busy.
const groupWaitLimit = time.Minute

// groupTailLines is how much of each server's log an error of a group shows.
const groupTailLines = 15

// running reports whether the server's current process runs.
func running(r *Redis) bool { return !r.Process().Exited() }

// byAddr is the server of servers that listens on addr, or nil.
func byAddr(servers []*Redis, addr string) *Redis {
	for _, r := range servers {
		if r.Addr() == addr {
			return r
		}
	}
	return nil
}

// firstAnswer asks the running servers in turn, through their clients (in the same order),
// and returns the first answer.
func firstAnswer[C, T any](ctx context.Context, servers []*Redis, clients []C, ask func(context.Context, C) (T, error)) (T, error) {
	var errs []error
	for i, c := range clients {
		if !running(servers[i]) {
			continue
		}
		v, err := ask(ctx, c)
		if err == nil {
			return v, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", servers[i].Addr(), err))
	}
	var none T
	if len(errs) == 0 {
		return none, errors.New("none of them runs")
	}
	return none, errors.Join(errs...)
}

// waitHealthy polls check until it returns nil. Once limit has passed or ctx has ended, it
// returns an error with what check found last and the end of every server's log.
func waitHealthy(ctx context.Context, what string, servers []*Redis, check func(context.Context) error) error {
	var last error
	err := WaitUntil(ctx, groupWaitLimit, what, func() bool {
		last = check(ctx)
		return last == nil
	})
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w; last seen: %v%s", err, last, logTails(servers))
}

// logTails is the end of the log of every server, for an error.
func logTails(servers []*Redis) string {
	var b strings.Builder
	for _, r := range servers {
		p := r.Process()
		fmt.Fprintf(&b, "\n--- %s (pid %d), end of its log %s:\n%s", p.Name(), p.PID(), p.LogPath(), p.Tail(groupTailLines))
	}
	return b.String()
}

// infoFields are the fields of an INFO reply.
func infoFields(info string) map[string]string {
	fields := map[string]string{}
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields
}

// replication is the INFO replication of the server c talks to.
func replication(ctx context.Context, c *redis.Client) (map[string]string, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return nil, err
	}
	return infoFields(info), nil
}

// closeAll closes clients.
func closeAll[C interface{ Close() error }](clients []C) {
	for _, c := range clients {
		c.Close()
	}
}
