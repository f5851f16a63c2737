// Package client is a Go client of longhaul's API: start a download job, follow its
// progress live, cancel it, and download its files.
//
//	c, err := client.New("http://localhost:3000", client.WithKey(os.Getenv("LONGHAUL_API_KEY")))
//	job, err := c.Initiate(ctx, []int64{70000, 70007}, client.InitiateOptions{})
//	for ev := range c.Watch(ctx, job.JobID) {
//		fmt.Println(ev.Type, ev.Progress.Percent)
//	}
//
// Calls that may safely be repeated are retried on network errors, 502, 503, 504 and 429,
// honouring Retry-After; Initiate sends an Idempotency-Key (its own when the caller gives
// none), so that a retry never starts a second job. Watch follows the same ladder as
// longhaul's page: WebSocket, then Server-Sent Events, then polling, with a snapshot first
// and a resync whenever events went missing. Download and DownloadFile resume a cut transfer
// with Range and If-Range.
//
// Every error answer of the server is an *Error with the contract's code, message, field
// and HTTP status; a call that got no answer at all returns an error that wraps
// ErrUnreachable.
//
// The package speaks the wire contract of docs/API.md and imports nothing else of
// longhaul's, so that programs using it do not link the server's dependencies.
package client
