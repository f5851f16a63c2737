package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
)

// Compared is one load of longhaul beside its baseline, at one level of clients.
type Compared struct {
	Clients  int
	Longhaul Result
	Baseline Result
}

// Ratio is longhaul's rate over the baseline's.
func (c Compared) Ratio() float64 {
	if c.Baseline.Rate() == 0 {
		return 0
	}
	return c.Longhaul.Rate() / c.Baseline.Rate()
}

// taskOptions are the task options of the API processes the benchmark runs: a file time of
// 0 and longhaul's defaults otherwise.
var taskOptions = tasks.Options{FileConcurrency: 4, Retention: 24 * time.Hour}

// initiateBody is the request of every initiation: the two ids of the README's example.
var initiateBody = []byte(`{"file_ids": [70000, 70007]}`)

// runInitiate measures POST /v1/download/initiate beside asynq.Client.EnqueueContext of
// the same task, at each level of clients.
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
	queue := asynq.NewClientFromRedisClient(r.rdb)
	cpu := meterOf(lh, r.redis)
	client, err := newRawHTTP(lh.URL)
	if err != nil {
		return err
	}
	defer client.close()

	post := func(ctx context.Context, _ int) error {
		return postInitiate(ctx, client)
	}
	enqueue := func(ctx context.Context, _ int) error {
		task, err := tasks.NewDownloadTask(jobs.NewID(), 2, taskOptions)
		if err != nil {
			return err
		}
		_, err = queue.EnqueueContext(ctx, task)
		return err
	}
	for _, n := range b.plan.Clients {
		c := Compared{Clients: n}
		c.Longhaul, c.Baseline, err = b.alternate(ctx, n,
			named{"POST /v1/download/initiate", post}, named{"asynq EnqueueContext", enqueue},
			lh, cpu, fmt.Sprintf("initiate-%d.cpu.pprof", n))
		if err != nil {
			return err
		}
		b.logf("  initiate x%d: %.0f/s p99 %v; asynq %.0f/s p99 %v", n, c.Longhaul.Rate(),
			c.Longhaul.Lat.Quantile(0.99), c.Baseline.Rate(), c.Baseline.Lat.Quantile(0.99))
		rep.Initiate = append(rep.Initiate, c)
	}
	return nil
}

// named is an operation with the name the report gives it.
type named struct {
	name string
	op   Op
}

// alternate measures a and base with n clients: a warm-up of each, then rounds that take
// turns at going first, so that a change of the machine's load hits both alike. The rounds
// are summed up. When profiling, the longhaul process lh is profiled through a's rounds.
func (b *bench) alternate(ctx context.Context, n int, a, base named, lh *longhaul, cpu *cpuMeter, profile string) (Result, Result, error) {
	closedLoop(ctx, a.name, n, b.plan.Warmup, a.op)
	closedLoop(ctx, base.name, n, b.plan.Warmup, base.op)
	ra, rb := Result{Name: a.name, Clients: n}, Result{Name: base.name, Clients: n}
	for round := range b.plan.Rounds {
		measureA := func() {
			wait := b.profileDuring(ctx, lh, b.plan.Duration, fmt.Sprintf("r%d-%s", round, profile))
			used := cpu.start()
			r := closedLoop(ctx, a.name, n, b.plan.Duration, a.op)
			r.CPU = used()
			ra.Add(r)
			if err := wait(); err != nil {
				b.logf("  profile: %v", err)
			}
		}
		measureB := func() {
			used := cpu.start()
			r := closedLoop(ctx, base.name, n, b.plan.Duration, base.op)
			r.CPU = used()
			rb.Add(r)
		}
		if round%2 == 0 {
			measureA()
			measureB()
		} else {
			measureB()
			measureA()
		}
	}
	if err := ra.Err(); err != nil {
		return ra, rb, err
	}
	return ra, rb, rb.Err()
}

func postInitiate(ctx context.Context, client *rawHTTP) error {
	status, n, err := client.do(ctx, http.MethodPost, "/v1/download/initiate", "Content-Type: application/json\r\n", initiateBody)
	if err != nil {
		return err
	}
	if status != http.StatusAccepted || n < 100 {
		return fmt.Errorf("initiate answered %d with %d bytes", status, n)
	}
	return nil
}

// newHTTPClient keeps a connection per client alive, so that the loads measure requests,
// not TCP handshakes.
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

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// meterOf meters the API process, Redis and the benchmark process itself, whose clients
// drive the load.
func meterOf(lh *longhaul, rs *devbin.Redis) *cpuMeter {
	m := &cpuMeter{}
	m.add("api", lh.PID())
	m.add("redis", rs.Process().PID())
	m.add("bench", os.Getpid())
	return m
}
