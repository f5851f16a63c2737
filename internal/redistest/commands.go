package redistest

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Commands records the commands a client sends, in order, by lower-case name: the round
// trips an operation costs, for tests that prove how few it takes. Commands inside a script
// run in Redis and are not seen here; INFO commandstats counts those.
type Commands struct {
	mu    sync.Mutex
	names []string
}

// RecordCommands starts recording the commands c sends.
func RecordCommands(c *redis.Client) *Commands {
	cmds := &Commands{}
	c.AddHook(cmds)
	return cmds
}

// Of counts the commands of name sent so far.
func (c *Commands) Of(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, sent := range c.names {
		if sent == name {
			n++
		}
	}
	return n
}

// During returns the commands sent while f ran.
func (c *Commands) During(f func()) []string {
	c.mu.Lock()
	from := len(c.names)
	c.mu.Unlock()
	f()
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names[from:]...)
}

func (c *Commands) add(cmd redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names = append(c.names, strings.ToLower(cmd.Name()))
}

// DialHook, ProcessHook and ProcessPipelineHook make Commands a redis.Hook.

func (c *Commands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *Commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *Commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.add(cmd)
		}
		return next(ctx, cmds)
	}
}
