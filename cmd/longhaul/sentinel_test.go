package main

// longhaul on a Sentinel group (a master, a replica and three Sentinels, from the process
// kit) whose master is killed in the middle of a run.

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/redistest"
)

// sentinelTarget names the Sentinel group s to longhaul: its Sentinels and the name they
// know the master by.
func sentinelTarget(s *redistest.Sentinels) map[string]string {
	return map[string]string{"REDIS_SENTINEL_ADDRS": strings.Join(s.Addrs, ","), "REDIS_SENTINEL_MASTER": s.MasterName}
}

// TestSentinelFailoverMidRun kills the master of a Sentinel group with SIGKILL while 50
// jobs run on two workers behind two APIs. While no master exists, every request to the
// APIs (status, create, readiness, the dashboard) is answered at once, with 503 and
// Retry-After when it needs Redis, never 500. The Sentinels promote the replica, the old
// master comes back as its replica, and every job ends completed, none stuck, its live
// client on the same final state; no process goes on hitting the old master (READONLY)
// once it is a replica.
func TestSentinelFailoverMidRun(t *testing.T) {
	s := redistest.StartSentinels(t, redistest.SentinelOptions{AppendOnly: true})
	env := fastEnvOn(t, sentinelTarget(s), "LONGHAUL_FILE_TIME_MIN", "500ms", "LONGHAUL_FILE_TIME_MAX", "1500ms",
		"LONGHAUL_FILE_CONCURRENCY", "2", "LONGHAUL_DASHBOARD", "readonly")
	bases, procs := startProcesses(t, env, 2, 2)

	ids := []int64{70000, 70007, 70014, 70021}
	var held []*followedJob
	for i := range 50 {
		held = append(held, followJob(t, bases[i%2], bases[(i+1)%2], ids...))
	}
	// The last job was acknowledged a second ago, so the replica has every job; some run,
	// some wait in the queue.
	time.Sleep(time.Second)
	gap := startProbing(t, bases, held[0].id)
	old := s.Master()
	oldAddr := s.KillMaster()
	killed := time.Now()
	s.WaitForFailover(oldAddr)
	t.Logf("the Sentinels promoted the replica %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	time.Sleep(time.Second) // the clients learn of it
	gap.stop()
	gap.check(t)

	if err := old.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.WaitHealthy() // the old master is now a replica of the new one
	for _, j := range held {
		final := j.untilDone(time.Minute - time.Since(killed))
		checkCompleted(t, final, ids)
		checkFollowed(t, j, final)
	}
	t.Logf("%d jobs completed %v after the kill", len(held), time.Since(killed).Round(100*time.Millisecond))
	checkFewLines(t, procs, "READONLY", 3)
}

// prober sends requests to the APIs while Redis fails over, and records their answers.
type prober struct {
	quit chan struct{}
	done sync.WaitGroup

	mu      sync.Mutex
	answers map[string][]probeAnswer // request → its answers; guarded by mu
}

type probeAnswer struct {
	status     int
	retryAfter string
	err        error
}

// startProbing sends, every 50 ms to each API until stop, the requests a client or a load
// balancer sends: the status of job id, a create, /readyz and the dashboard's queue list.
func startProbing(t *testing.T, bases []string, id string) *prober {
	p := &prober{quit: make(chan struct{}), answers: map[string][]probeAnswer{}}
	hc := &http.Client{Timeout: 10 * time.Second}
	requests := []struct{ method, path, body string }{
		{"GET", "/v1/download/status/" + id, ""},
		{"POST", "/v1/download/initiate", `{"file_ids":[70000]}`},
		{"GET", "/readyz", ""},
		{"GET", "/monitoring/api/queues", ""},
	}
	for _, base := range bases {
		for _, r := range requests {
			p.done.Go(func() {
				for {
					select {
					case <-p.quit:
						return
					case <-time.After(50 * time.Millisecond):
					}
					req, _ := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
					req.Header.Set("Content-Type", "application/json")
					a := probeAnswer{}
					if resp, err := hc.Do(req); err != nil {
						a.err = err
					} else {
						resp.Body.Close()
						a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
					}
					p.mu.Lock()
					p.answers[r.method+" "+r.path] = append(p.answers[r.method+" "+r.path], a)
					p.mu.Unlock()
				}
			})
		}
	}
	return p
}

func (p *prober) stop() {
	close(p.quit)
	p.done.Wait()
}

// check checks that every request got an answer, a 5xx only as 503 with Retry-After, and
// that the requests that need Redis met the outage at least once.
func (p *prober) check(t *testing.T) {
	t.Helper()
	for req, answers := range p.answers {
		counts := map[int]int{}
		for _, a := range answers {
			counts[a.status]++
			switch {
			case a.err != nil:
				t.Errorf("%s during the failover: %v", req, a.err)
			case a.status >= 500 && a.status != http.StatusServiceUnavailable:
				t.Errorf("%s during the failover answered %d; want 503 when Redis is away", req, a.status)
			case a.status == http.StatusServiceUnavailable && a.retryAfter == "":
				t.Errorf("%s during the failover answered 503 without Retry-After", req)
			}
		}
		t.Logf("%s during the failover: %v", req, counts)
		if counts[http.StatusServiceUnavailable] == 0 {
			t.Errorf("%s never answered 503 during the failover (answers %v): the test missed the outage", req, counts)
		}
	}
}

// checkFewLines checks that no process logged a line with word more than limit times: a
// process that loops on an error logs it again and again.
func checkFewLines(t *testing.T, procs []*devbin.Longhaul, word string, limit int) {
	t.Helper()
	for _, p := range procs {
		n := strings.Count(p.Log(), word)
		if n > limit {
			t.Errorf("%s logged %s %d times, want at most %d: end of its log:\n%s", p.Name(), word, n, limit, p.Tail(20))
		}
	}
}
