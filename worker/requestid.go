package worker

import (
	"context"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/requestid"
	"github.com/longhaul-dev/longhaul/tasks"
)

// withRequestOf is ctx carrying the id of the request that created t's job, for the log lines
// of asynq's own calls, which hand over a context of their own.
func withRequestOf(ctx context.Context, t *asynq.Task) context.Context {
	p, err := tasks.ParseDownloadPayload(t.Payload())
	if err != nil {
		return ctx
	}
	return requestid.With(ctx, p.RequestID)
}
