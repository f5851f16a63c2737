package main

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

// jobWatcher follows the events of every job through one pattern subscription, to see
// when jobs finish without polling their records.
type jobWatcher struct {
	ps   *redis.PubSub
	want int
	done chan struct{} // closed when want jobs have finished

	mu        sync.Mutex
	first     time.Time            // the first event of any job
	last      time.Time            // the latest final event
	finished  map[string]time.Time // job id → when its final event arrived
	completed int
}

// watchJobs subscribes to every job's channel and returns once the subscription is live.
func watchJobs(ctx context.Context, rdb *redis.Client, want int) (*jobWatcher, error) {
	ps := rdb.PSubscribe(ctx, jobs.EventsPattern)
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, err
	}
	w := &jobWatcher{ps: ps, want: want, done: make(chan struct{}), finished: map[string]time.Time{}}
	go w.run()
	return w, nil
}

func (w *jobWatcher) run() {
	for {
		msg, err := w.ps.Receive(context.Background())
		if err != nil {
			return // closed
		}
		m, ok := msg.(*redis.Message)
		if !ok {
			continue
		}
		now := time.Now()
		payload := []byte(m.Payload)
		w.mu.Lock()
		if w.first.IsZero() {
			w.first = now
		}
		if bytes.HasPrefix(payload, []byte(`{"type":"job"`)) && finalStatus(payload) {
			id := jobs.JobIDOfChannel(m.Channel)
			if _, seen := w.finished[id]; !seen {
				w.finished[id] = now
				w.last = now
				if bytes.Contains(payload, []byte(`"status":"completed"`)) {
					w.completed++
				}
				if len(w.finished) == w.want {
					close(w.done)
				}
			}
		}
		w.mu.Unlock()
	}
}

func finalStatus(payload []byte) bool {
	for _, s := range []string{"completed", "failed", "canceled"} {
		if bytes.Contains(payload, []byte(`"status":"`+s+`"`)) {
			return true
		}
	}
	return false
}

// wait blocks until every job has finished, the timeout passes or ctx ends; it reports
// whether they all finished.
func (w *jobWatcher) wait(ctx context.Context, timeout time.Duration) bool {
	select {
	case <-w.done:
		return true
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	return false
}

// span is from the first event to the last final one, with the counts of finished and
// completed jobs.
func (w *jobWatcher) span() (first, last time.Time, finished, completed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first, w.last, len(w.finished), w.completed
}

// finishedAt is when job id finished, if it has.
func (w *jobWatcher) finishedAt(id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.finished[id]
	return t, ok
}

func (w *jobWatcher) close() { w.ps.Close() }
