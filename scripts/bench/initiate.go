package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
)

// RequestRow is the loads of a request stage (initiate, status) at one level of clients,
// longhaul's first.
type RequestRow struct {
	Clients int
	Results []Result
}

// Get is the result of the load key, if it ran.
func (r RequestRow) Get(key string) (Result, bool) {
	for _, res := range r.Results {
		if res.Key == key {
			return res, true
		}
	}
	return Result{}, false
}

// Ratio is the rate of load a over that of load b; 0 when either did not run.
func (r RequestRow) Ratio(a, b string) float64 {
	ra, okA := r.Get(a)
	rb, okB := r.Get(b)
	if !okA || !okB || rb.Rate() == 0 {
		return 0
	}
	return ra.Rate() / rb.Rate()
}

// summary is the row as one log line: each load's rate and p99.
func (r RequestRow) summary() string {
	parts := make([]string, len(r.Results))
	for i, res := range r.Results {
		parts[i] = fmt.Sprintf("%s %.0f/s p99 %v", res.Key, res.Rate(), res.Lat.Quantile(0.99))
	}
	return strings.Join(parts, "; ")
}

// keyAsynq is the raw enqueue of the initiate stage: the Redis work under every server's
// initiate, with no HTTP at all.
const keyAsynq = "asynq"

// taskOptions are the task options of the API processes the benchmark runs: a file time of
// 0 and longhaul's defaults otherwise.
var taskOptions = tasks.Options{FileConcurrency: 4, Retention: 24 * time.Hour}

// initiateBody is the request of every initiation: the two ids of the README's example.
var initiateBody = []byte(`{"file_ids": [70000, 70007]}`)

// minInitiateBody is the least an accepted initiation answers: {"job_id":"..."} with an id
// of 29 characters (longhaul's) or 36 (the peers' UUIDs), so 42 bytes and more.
const minInitiateBody = 40

// initiateSpec is POST /v1/download/initiate with initiateBody, answered 202 with a job id.
var initiateSpec = loadSpec{
	Requests: []httpRequest{{Method: http.MethodPost, Path: "/v1/download/initiate",
		Header: "Content-Type: application/json\r\n", Body: initiateBody}},
	Want: http.StatusAccepted, MinBody: minInitiateBody,
}

// runInitiate measures POST /v1/download/initiate of longhaul, of the Gin peer and of the
// Node peer, all on one Redis and from the same HTTP client process, beside a raw
// asynq.Client.EnqueueContext of longhaul's task, at each level of clients.
func (b *bench) runInitiate(ctx context.Context, rep *Report) error {
	r, err := b.newRig(ctx, "initiate")
	if err != nil {
		return err
	}
	defer r.close()
	lh, err := r.longhaul(ctx, "api", nil)
	if err != nil {
		return err
	}
	peers, err := r.peers(ctx)
	if err != nil {
		return err
	}
	client, err := r.httpLoad()
	if err != nil {
		return err
	}
	defer client.close()
	queue := asynq.NewClientFromRedisClient(r.rdb)
	enqueue := func(ctx context.Context, _ int) error {
		task, err := tasks.NewDownloadTask(tasks.DownloadPayload{JobID: jobs.NewID()}, 2, taskOptions)
		if err != nil {
			return err
		}
		_, err = queue.EnqueueContext(ctx, task)
		return err
	}
	loads := []load{r.httpLoadOf(keyLonghaul, lh.server(), client, initiateSpec)}
	for _, p := range peers {
		loads = append(loads, r.httpLoadOf(p.Key, p, client, initiateSpec))
	}
	loads = append(loads, inProcess(keyAsynq, "asynq EnqueueContext", enqueue))
	for _, n := range b.plan.Clients {
		results, err := b.compare(ctx, r, client, n, loads, fmt.Sprintf("initiate-%d.cpu.pprof", n))
		if err != nil {
			return err
		}
		row := RequestRow{Clients: n, Results: results}
		b.logf("  initiate x%d: %s", n, row.summary())
		rep.Initiate = append(rep.Initiate, row)
	}
	return nil
}

// newHTTPClient keeps a connection per client alive, for the few requests the benchmark
// makes outside its loads.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns * 2,
			MaxIdleConnsPerHost: conns * 2,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
}
