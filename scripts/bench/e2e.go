package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// E2EResult is one end-to-end run: jobs posted over HTTP and run by worker processes.
type E2EResult struct {
	Workers, Jobs, FilesPerJob, Clients int
	// Took is from the first POST to the last job completed; Posting is the POSTs alone.
	Took, Posting time.Duration
	// JobLatency is from a job's POST to its completion.
	JobLatency Hist
	// Single is the same latency for jobs posted one at a time to idle workers, each
	// after the last one completed.
	Single Hist
}

// JobRate is the jobs per second, first POST to last completion.
func (e E2EResult) JobRate() float64 { return rate(e.Jobs, e.Took) }

// FileRate is the files per second, first POST to last completion.
func (e E2EResult) FileRate() float64 { return rate(e.Jobs*e.FilesPerJob, e.Took) }

// e2eBody is the request of every end-to-end job.
var e2eBody = []byte(`{"file_ids": [7, 14, 21, 28]}`)

// runEndToEnd posts jobs to one `longhaul api` with concurrent clients while 1, then 2,
// `longhaul worker` processes run them, and times the whole from the first POST to the
// last job completed.
func (b *bench) runEndToEnd(ctx context.Context, rep *Report) error {
	for _, workers := range b.plan.E2EWorkers {
		res, err := b.endToEnd(ctx, workers)
		if err != nil {
			return err
		}
		b.logf("  e2e with %d workers: %d jobs in %v (%.0f jobs/s, %.0f files/s)", workers, res.Jobs,
			res.Took.Round(time.Millisecond), res.JobRate(), res.FileRate())
		rep.E2E = append(rep.E2E, res)
	}
	return nil
}

func (b *bench) endToEnd(ctx context.Context, workers int) (E2EResult, error) {
	p := b.plan
	res := E2EResult{Workers: workers, Jobs: p.E2EJobs, FilesPerJob: len(workerFiles), Clients: p.E2EClients}
	r, err := b.newRig(ctx, "e2e-"+strconv.Itoa(workers))
	if err != nil {
		return res, err
	}
	defer r.close()
	rdb := r.rdb
	lh, err := r.longhaul(ctx, "api", nil)
	if err != nil {
		return res, err
	}
	var workerProcs []*longhaul
	for range workers {
		wp, err := r.longhaul(ctx, "worker", map[string]string{"LONGHAUL_WORKER_CONCURRENCY": strconv.Itoa(p.WorkerConcurrency)})
		if err != nil {
			return res, err
		}
		workerProcs = append(workerProcs, wp)
	}
	if err := awaitWorkers(ctx, rdb, workers); err != nil {
		return res, err
	}
	w, err := watchJobs(ctx, rdb, p.E2EJobs)
	if err != nil {
		return res, err
	}
	defer w.close()

	var waits []func() error
	for i, wp := range workerProcs {
		waits = append(waits, b.profileDuring(ctx, wp, 3*time.Second, fmt.Sprintf("e2e-%dw-worker%d.cpu.pprof", workers, i)))
	}
	waits = append(waits, b.profileDuring(ctx, lh, 3*time.Second, fmt.Sprintf("e2e-%dw-api.cpu.pprof", workers)))
	start := time.Now()
	posted, err := postJobs(ctx, lh.URL, p.E2EJobs, p.E2EClients)
	if err != nil {
		return res, err
	}
	res.Posting = time.Since(start)
	if !w.wait(ctx, 5*time.Minute) {
		_, _, n, _ := w.span()
		return res, fmt.Errorf("only %d of %d jobs finished in 5 minutes", n, p.E2EJobs)
	}
	_, last, _, completed := w.span()
	res.Took = last.Sub(start)
	for _, wait := range waits {
		if err := wait(); err != nil {
			b.logf("  profile: %v", err)
		}
	}
	if completed != p.E2EJobs {
		return res, fmt.Errorf("%d of %d jobs completed", completed, p.E2EJobs)
	}
	for id, at := range posted {
		done, _ := w.finishedAt(id)
		res.JobLatency.Record(done.Sub(at))
	}
	res.Single, err = singleJobs(ctx, rdb, lh.URL, b.plan.E2ESingles)
	return res, err
}

// singleJobs posts n jobs one at a time, each once the last has completed, and returns
// their latencies: what a user of an idle system waits.
func singleJobs(ctx context.Context, rdb *redis.Client, base string, n int) (Hist, error) {
	var h Hist
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	for range n {
		w, err := watchJobs(ctx, rdb, 1)
		if err != nil {
			return h, err
		}
		sleep(ctx, 50*time.Millisecond) // the workers go idle
		at := time.Now()
		if _, err := initiate(ctx, client, base, e2eBody); err != nil {
			w.close()
			return h, err
		}
		ok := w.wait(ctx, time.Minute)
		_, last, _, _ := w.span()
		w.close()
		if !ok {
			return h, fmt.Errorf("a single job did not finish in a minute")
		}
		h.Record(last.Sub(at))
	}
	return h, nil
}

// awaitWorkers waits until n worker processes have announced themselves to asynq.
func awaitWorkers(ctx context.Context, rdb *redis.Client, n int) error {
	insp := asynq.NewInspectorFromRedisClient(rdb)
	deadline := time.Now().Add(30 * time.Second)
	for {
		servers, err := insp.Servers()
		if err == nil && len(servers) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d workers up after 30s (%v)", len(servers), n, err)
		}
		sleep(ctx, 50*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// postJobs posts n jobs with clients concurrent clients and returns when each was sent.
func postJobs(ctx context.Context, base string, n, clients int) (map[string]time.Time, error) {
	client := newHTTPClient(clients)
	defer client.CloseIdleConnections()
	var (
		mu     sync.Mutex
		posted = make(map[string]time.Time, n)
		next   = make(chan struct{}, n)
		errs   = make(chan error, clients)
		wg     sync.WaitGroup
	)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range clients {
		wg.Go(func() {
			for range next {
				at := time.Now()
				id, err := initiate(ctx, client, base, e2eBody)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				posted[id] = at
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return posted, nil
}

// initiate posts one job and returns its id.
func initiate(ctx context.Context, client *http.Client, base string, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/download/initiate", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		JobID string `json:"job_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("initiate answered %d (%v)", resp.StatusCode, err)
	}
	return out.JobID, nil
}
