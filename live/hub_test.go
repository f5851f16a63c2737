package live_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/live"
	"golang.org/x/sync/errgroup"
)

// countingRenderer renders jobs as JSON and counts the snapshots it renders.
type countingRenderer struct{ snapshots atomic.Int64 }

func (r *countingRenderer) Snapshot(job *jobs.Job) []byte {
	r.snapshots.Add(1)
	msg, _ := json.Marshal(map[string]any{"type": "snapshot", "seq": job.Seq, "job": job})
	return msg
}

func (r *countingRenderer) Event(_ string, _ jobs.EventHeader, payload []byte) []byte { return payload }

// sink keeps what the hub sends it.
type sink struct {
	mu     sync.Mutex
	seqs   []int64
	msgs   [][]byte
	code   int
	closed chan struct{}
	once   sync.Once
}

func newSink() *sink { return &sink{closed: make(chan struct{})} }

func (s *sink) Send(seq int64, msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs, s.msgs = append(s.seqs, seq), append(s.msgs, msg)
}

func (s *sink) Close(code int, _ string) {
	s.once.Do(func() {
		s.mu.Lock()
		s.code = code
		s.mu.Unlock()
		close(s.closed)
	})
}

func (s *sink) received() ([]int64, [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.seqs...), append([][]byte(nil), s.msgs...)
}

// waitFor waits until the sink received a message of seq.
func (s *sink) waitFor(t *testing.T, seq int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if seqs, _ := s.received(); len(seqs) > 0 && seqs[len(seqs)-1] >= seq {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no message of seq %d in 5 s", seq)
}

type hubSetup struct {
	hub    *live.Hub
	store  *jobs.Store
	reads  *redistest.Commands // the commands of the store's client
	render *countingRenderer
}

func newHubSetup(t *testing.T) hubSetup {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	storeRDB := rs.Client()
	reads := redistest.RecordCommands(storeRDB)
	store := jobs.NewStore(storeRDB, jobs.Options{})
	render := &countingRenderer{}
	hub := live.NewHub(rs.Client(), store, render, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	hub.Start()
	t.Cleanup(func() { hub.Shutdown(live.CloseGoingAway, "test over") })
	return hubSetup{hub: hub, store: store, reads: reads, render: render}
}

// runningJob creates a job of files and claims it with token "a".
func (s hubSetup) runningJob(t *testing.T, files ...int64) string {
	t.Helper()
	id := jobs.NewID()
	if err := s.store.Create(t.Context(), id, files); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Claim(t.Context(), id, "a"); err != nil {
		t.Fatal(err)
	}
	return id
}

func (s hubSetup) watch(t *testing.T, id string) *sink {
	t.Helper()
	out := newSink()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stop, err := s.hub.Watch(ctx, id, out, live.Held{})
	if err != nil {
		t.Fatalf("watch job %s: %v", id, err)
	}
	t.Cleanup(stop)
	return out
}

// watchMany starts n watches of job id at once.
func (s hubSetup) watchMany(t *testing.T, id string, n int) []*sink {
	t.Helper()
	sinks := make([]*sink, n)
	var g errgroup.Group
	for i := range sinks {
		sinks[i] = newSink()
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			stop, err := s.hub.Watch(ctx, id, sinks[i], live.Held{})
			if err == nil {
				t.Cleanup(stop)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return sinks
}

func TestConcurrentWatchersAtOneSeqShareOneReadAndTheSameBytes(t *testing.T) {
	s := newHubSetup(t)
	id := s.runningJob(t, 70000, 70001)
	if err := s.store.UpdateFile(t.Context(), id, "a", jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: 40}); err != nil {
		t.Fatal(err)
	}
	before := s.reads.Of("hgetall")

	sinks := s.watchMany(t, id, 200)

	if n := s.reads.Of("hgetall") - before; n != 1 {
		t.Errorf("200 watchers at one seq read the record %d times, want once", n)
	}
	if n := s.render.snapshots.Load(); n != 1 {
		t.Errorf("the snapshot was rendered %d times, want once", n)
	}
	_, first := sinks[0].received()
	if len(first) != 1 || !bytes.Contains(first[0], []byte(`"seq":2`)) {
		t.Fatalf("first watcher got %q, want one snapshot at seq 2", first)
	}
	for i, sk := range sinks {
		if _, msgs := sk.received(); len(msgs) != 1 || !bytes.Equal(msgs[0], first[0]) {
			t.Errorf("watcher %d got %q, want the same snapshot as the first", i, msgs)
		}
	}
}

func TestANewerSeqIsNeverAnsweredWithAnOlderSnapshot(t *testing.T) {
	s := newHubSetup(t)
	id := s.runningJob(t, 70000)
	early := s.watch(t, id) // a snapshot at seq 1 (the claim's event)

	if err := s.store.UpdateFile(t.Context(), id, "a", jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: 50}); err != nil {
		t.Fatal(err)
	}
	early.waitFor(t, 2) // the hub has dispatched seq 2: the snapshot at 1 is old now
	before := s.reads.Of("hgetall")

	late := s.watch(t, id)

	seqs, msgs := late.received()
	if len(seqs) == 0 || seqs[0] != 2 || !bytes.Contains(msgs[0], []byte(`"percent":50`)) {
		t.Fatalf("a watcher that joined after seq 2 got %v %q, want a snapshot at seq 2", seqs, msgs)
	}
	if n := s.reads.Of("hgetall") - before; n != 1 {
		t.Errorf("the new watcher read the record %d times, want once (the old snapshot is not reused)", n)
	}
	again := s.watch(t, id)
	if seqs, _ := again.received(); len(seqs) == 0 || seqs[0] != 2 {
		t.Errorf("another watcher at seq 2 got %v, want the snapshot at seq 2", seqs)
	}
	if n := s.reads.Of("hgetall") - before; n != 1 {
		t.Errorf("two watchers at seq 2 read the record %d times, want once", n)
	}
}

// Watchers that join while the job moves each get a snapshot and then every later event
// up to the final one, without a gap: no shared snapshot is older than an event they missed.
func TestWatchersJoiningWhileTheJobMovesMissNothing(t *testing.T) {
	s := newHubSetup(t)
	id := s.runningJob(t, 70000)
	var sinks []*sink
	var mu sync.Mutex
	var g errgroup.Group
	g.Go(func() error {
		for p := 1.0; p < 100; p += 3 {
			if err := s.store.UpdateFile(t.Context(), id, "a", jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: p}); err != nil {
				return err
			}
		}
		return nil
	})
	for range 10 {
		joined := s.watchMany(t, id, 10)
		mu.Lock()
		sinks = append(sinks, joined...)
		mu.Unlock()
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := s.store.UpdateFile(t.Context(), id, "a", jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	final, err := s.store.Complete(t.Context(), id, "a")
	if err != nil || final != jobs.StatusCompleted {
		t.Fatalf("complete: %v, %v", final, err)
	}
	job, err := s.store.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for i, sk := range sinks {
		select {
		case <-sk.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("watcher %d not closed 10 s after the job ended", i)
		}
		seqs, _ := sk.received()
		for k := 1; k < len(seqs); k++ {
			if seqs[k] != seqs[k-1]+1 {
				t.Errorf("watcher %d got seqs %v: a gap or a repeat after its snapshot", i, seqs)
				break
			}
		}
		if last := seqs[len(seqs)-1]; last != job.Seq || sk.code != live.CloseNormal {
			t.Errorf("watcher %d ended at seq %d with close %d, want seq %d and 1000", i, last, sk.code, job.Seq)
		}
	}
}
