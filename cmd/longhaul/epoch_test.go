package main

// The epoch rule, end to end: a Redis failover (or a crash within the AOF second) can lose
// a job's last writes after a live client saw them, so the record's seq steps back below
// the client's. The loss is made here as a failover makes it: the job's record is put back
// as an older copy had it (DUMP, then RESTORE), and the job's writer goes on from there.
// This test writes in place of a worker, so that it knows exactly which writes are lost.

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	lhclient "github.com/longhaul-dev/longhaul/client"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

func TestLiveClientsThatSawLostWritesEndOnTheJobsRealState(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t, redistest.Options{})
	base := startRun(t, "api", fastEnv(t, rs.URL()))
	w := lossyWriter{t: t, base: base, rdb: rs.Client(), store: jobs.NewStore(rs.Client(), jobs.Options{})}

	t.Run("a WebSocket of the Go client, open through the loss", func(t *testing.T) {
		j := w.start(t)
		c, err := lhclient.New(base)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		events := c.Watch(ctx, j.id)
		var channel lhclient.Channel
		var last *lhclient.Job
		until := func(seq int64) {
			t.Helper()
			for ev := range events {
				switch ev.Type {
				case lhclient.EventChannel:
					channel = ev.Channel
				case lhclient.EventError:
					t.Fatalf("the watch failed: %v", ev.Err)
				case lhclient.EventSnapshot, lhclient.EventJob:
					last = ev.Job
				}
				if seq > 0 && ev.Seq >= seq {
					return
				}
			}
			if seq > 0 {
				t.Fatalf("the watch ended before seq %d", seq)
			}
		}
		until(j.savedSeq)
		j.writeWhatWillBeLost(t)
		until(j.lostSeq)
		if channel != lhclient.ChannelWebSocket {
			t.Fatalf("the watch saw seq %d over %q, want the WebSocket", j.lostSeq, channel)
		}
		j.loseAndFinish(t)
		until(0)
		j.checkEndedOnTheRecord(t, string(last.Status), last.Seq, last.Epoch, string(last.Files[0].Status))
	})

	t.Run("an event stream, open through the loss", func(t *testing.T) {
		j := w.start(t)
		s := openStream(t, base, j.id, nil, "")
		s.until(t, j.savedSeq)
		j.writeWhatWillBeLost(t)
		s.until(t, j.lostSeq)
		j.loseAndFinish(t)
		last := s.toEnd(t)
		j.checkEndedOnTheRecord(t, string(last.Job.Status), last.Seq, last.Epoch, string(last.Job.Files[0].Status))
	})

	t.Run("a poller that holds the ETag of a lost seq", func(t *testing.T) {
		j := w.start(t)
		j.writeWhatWillBeLost(t)
		held := `"` + itoa(j.lostSeq) + `"`
		// The worker that made the lost writes goes on: as many writes as were lost, the
		// last the job's end, which in the old epoch would be the very seq the poller holds.
		j.lose(t)
		j.progress(t, 50)
		j.finish(t, w.store)
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/v1/download/status/"+j.id, nil)
		req.Header.Set("If-None-Match", held)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("If-None-Match %s after the loss: %d, want 200 with the job's end", held, resp.StatusCode)
		}
		var got jobStatus
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		file := ""
		if len(got.Files) == 1 {
			file = got.Files[0].Status
		}
		j.checkEndedOnTheRecord(t, got.Status, got.Seq, got.Epoch, file)
	})

	comingBack := []struct {
		name string
		held func(j *lossyJob) (url.Values, string)
	}{
		{"an event stream that comes back with the seq and epoch it holds", func(j *lossyJob) (url.Values, string) {
			return url.Values{"seq": {itoa(j.lostSeq)}, "epoch": {j.epoch}}, ""
		}},
		{"an event stream that comes back with Last-Event-ID only", func(j *lossyJob) (url.Values, string) {
			return nil, itoa(j.lostSeq)
		}},
	}
	for _, tc := range comingBack {
		t.Run(tc.name, func(t *testing.T) {
			j := w.start(t)
			s := openStream(t, base, j.id, nil, "")
			s.until(t, j.savedSeq)
			j.writeWhatWillBeLost(t)
			s.until(t, j.lostSeq)
			s.close()
			// Nobody watches while the loss happens: the job ends below the seq seen, and
			// only the client knows.
			j.loseAndFinish(t)
			query, lastEventID := tc.held(j)
			last := openStream(t, base, j.id, query, lastEventID).toEnd(t)
			if last.Type != "snapshot" {
				t.Errorf("the stream ended on a %q, want the snapshot of the repaired record", last.Type)
			}
			j.checkEndedOnTheRecord(t, string(last.Job.Status), last.Seq, last.Epoch, string(last.Job.Files[0].Status))
		})
	}
}

// lossyWriter starts jobs over the API and writes their progress itself.
type lossyWriter struct {
	t     *testing.T
	base  string
	rdb   *redis.Client
	store *jobs.Store
}

// lossyJob is one job of a lossyWriter, with one file, and the copy of its record that the
// failover will bring back.
type lossyJob struct {
	w        lossyWriter
	id       string
	epoch    string // the record's epoch before the loss
	saved    string // the record as the failover brings it back (DUMP)
	savedSeq int64
	lostSeq  int64 // the highest seq a client saw and the failover loses
}

const lossyFile = 70000

// start makes a job, claims it and records some progress: the copy the failover brings
// back is taken there.
func (w lossyWriter) start(t *testing.T) *lossyJob {
	t.Helper()
	p := postJob(client{t, w.base}, lossyFile)
	ctx := t.Context()
	if _, err := w.store.ClaimFor(ctx, p.id, p.id, "attempt"); err != nil {
		t.Fatal(err)
	}
	j := &lossyJob{w: w, id: p.id}
	j.progress(t, 20)
	job, err := w.store.Get(ctx, p.id)
	if err != nil {
		t.Fatal(err)
	}
	j.epoch, j.savedSeq = job.Epoch, job.Seq
	if j.saved, err = w.rdb.Dump(ctx, jobs.RecordKey(p.id)).Result(); err != nil {
		t.Fatal(err)
	}
	return j
}

func (j *lossyJob) progress(t *testing.T, percent float64) {
	t.Helper()
	err := j.w.store.UpdateFile(t.Context(), j.id, "attempt", jobs.File{ID: lossyFile, Status: jobs.StatusProcessing, Percent: percent})
	if err != nil {
		t.Fatal(err)
	}
}

// writeWhatWillBeLost writes three more steps of progress, which clients see.
func (j *lossyJob) writeWhatWillBeLost(t *testing.T) {
	t.Helper()
	for _, p := range []float64{40, 60, 80} {
		j.progress(t, p)
	}
	job, err := j.w.store.Get(t.Context(), j.id)
	if err != nil {
		t.Fatal(err)
	}
	j.lostSeq = job.Seq
}

// lose brings the saved record back, as the new master of a failover has it.
func (j *lossyJob) lose(t *testing.T) {
	t.Helper()
	if err := j.w.rdb.RestoreReplace(t.Context(), jobs.RecordKey(j.id), 0, j.saved).Err(); err != nil {
		t.Fatal(err)
	}
}

// loseAndFinish loses the writes since the saved record and goes on as a worker does that
// knows nothing of them (a worker lost in the same failover, its attempt taken over): from
// what the record says now, to the end. The job ends at a seq below the one clients saw,
// so a client that waits for a higher one waits forever, unless the API repairs it.
func (j *lossyJob) loseAndFinish(t *testing.T) {
	t.Helper()
	j.lose(t)
	j.finish(t, jobs.NewStore(j.w.rdb, jobs.Options{}))
}

// finish ends the job's one file ready and the job completed through store.
func (j *lossyJob) finish(t *testing.T, store *jobs.Store) {
	t.Helper()
	ctx := t.Context()
	err := store.UpdateFile(ctx, j.id, "attempt", jobs.File{ID: lossyFile, Status: jobs.StatusReady, Percent: 100, Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Complete(ctx, j.id, "attempt"); err != nil {
		t.Fatal(err)
	}
}

// checkEndedOnTheRecord compares what a client ended on with the job's record.
func (j *lossyJob) checkEndedOnTheRecord(t *testing.T, status string, seq int64, epoch, fileStatus string) {
	t.Helper()
	job, err := j.w.store.Get(t.Context(), j.id)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{status, itoa(seq), epoch, fileStatus}
	want := []string{string(job.Status), itoa(job.Seq), job.Epoch, string(job.Files[0].Status)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the client ended on status, seq, epoch, file = %v; the record has %v", got, want)
	}
	if job.Epoch == j.epoch || job.Seq <= j.lostSeq {
		t.Errorf("the record is at seq %d in epoch %s; want a new epoch (was %s) above the lost seq %d",
			job.Seq, job.Epoch, j.epoch, j.lostSeq)
	}
}

// streamMessage is one live message of an event stream, as far as these tests read it.
type streamMessage struct {
	Type   string    `json:"type"`
	Seq    int64     `json:"seq"`
	Epoch  string    `json:"epoch"`
	Status string    `json:"status"`
	Job    *jobs.Job `json:"job"`
}

// stream is an open event stream, read in its own goroutine.
type stream struct {
	msgs  chan streamMessage
	close context.CancelFunc
	// last is the snapshot-or-job state the stream last gave, for toEnd.
	last streamMessage
}

func openStream(t *testing.T, base, id string, query url.Values, lastEventID string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	target := base + "/v1/download/" + id + "/events"
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET %s: %s", target, resp.Status)
	}
	s := &stream{msgs: make(chan streamMessage, 64), close: cancel}
	go func() {
		defer resp.Body.Close()
		defer close(s.msgs)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			var m streamMessage
			if ok && json.Unmarshal([]byte(data), &m) == nil && m.Type != "" {
				s.msgs <- m
			}
		}
	}()
	return s
}

// until reads the stream up to a message at seq or above.
func (s *stream) until(t *testing.T, seq int64) {
	t.Helper()
	for m := range s.msgs {
		s.take(m)
		if m.Seq >= seq {
			return
		}
	}
	t.Fatalf("the stream ended before seq %d", seq)
}

// toEnd reads the stream to its end and returns the last state it gave: a snapshot, or a
// job event with the epoch of the messages.
func (s *stream) toEnd(t *testing.T) streamMessage {
	t.Helper()
	for m := range s.msgs {
		s.take(m)
	}
	if s.last.Job == nil {
		t.Fatal("the stream gave no snapshot")
	}
	return s.last
}

// take keeps the state a message gives: a snapshot's job, or a job event's status over it.
func (s *stream) take(m streamMessage) {
	switch m.Type {
	case "snapshot":
		s.last = m
	case "job", "file":
		if s.last.Job == nil || m.Epoch != s.last.Epoch {
			return // only a snapshot begins another epoch
		}
		job := *s.last.Job
		job.Files = append([]jobs.File(nil), job.Files...)
		if m.Type == "job" {
			job.Status = jobs.Status(m.Status)
		} else {
			job.Files[0].Status = jobs.Status(m.Status)
		}
		s.last = streamMessage{Type: m.Type, Seq: m.Seq, Epoch: m.Epoch, Job: &job}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
