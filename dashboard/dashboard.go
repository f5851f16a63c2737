// Package dashboard mounts asynqmon, the queue dashboard, under /monitoring/. Access
// control for it goes here, in front of the handler, when it comes.
package dashboard

import (
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
)

// RootPath is where the dashboard is served.
const RootPath = "/monitoring"

// New returns the dashboard, reading the queues through rdb.
func New(rdb redis.UniversalClient) http.Handler {
	return asynqmon.New(asynqmon.Options{
		RootPath:     RootPath,
		RedisConnOpt: sharedClient{rdb},
	})
}

// sharedClient hands asynqmon the process's one Redis client instead of letting it dial
// its own from separate settings.
type sharedClient struct{ rdb redis.UniversalClient }

var _ asynq.RedisConnOpt = sharedClient{}

// MakeRedisClient returns the shared client.
func (s sharedClient) MakeRedisClient() any { return s.rdb }
