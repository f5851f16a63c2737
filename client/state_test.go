package client

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The merge rules are what a person watching relies on: nothing goes backwards, nothing
// old replaces something new. Each case starts from a snapshot at seq 10 with one file
// half done, applies messages in order, and checks what the job looks like.
func TestStateKeepsItsPromises(t *testing.T) {
	since := time.Date(2026, 11, 29, 22, 0, 0, 0, time.UTC)
	start := func() *Job {
		return &Job{ID: "dl_1", Status: StatusProcessing, Seq: 10,
			Files: []File{{ID: 1, Status: StatusProcessing, Percent: 50}, {ID: 2, Status: StatusQueued}}}
	}
	file := func(seq int64, status Status, percent float64) *liveMessage {
		return &liveMessage{Type: "file", Seq: seq, FileID: 1, Status: status, Percent: percent}
	}
	cases := []struct {
		name        string
		messages    []*liveMessage
		wantResults []applied
		want        func(j *Job)
	}{
		{"progress never goes backwards", []*liveMessage{file(11, StatusProcessing, 40)},
			[]applied{appliedUnchanged}, func(j *Job) {}},
		{"a ready file stays ready", []*liveMessage{file(11, StatusReady, 100), file(12, StatusProcessing, 10)},
			[]applied{appliedChanged, appliedUnchanged}, func(j *Job) {
				j.Files[0] = File{ID: 1, Status: StatusReady, Percent: 100}
				j.Progress.Percent, j.Progress.FilesDone, j.Progress.FilesReady = 50, 1, 1
			}},
		{"a repeat is stale, a skip is a gap", []*liveMessage{file(10, StatusProcessing, 90), file(12, StatusProcessing, 90)},
			[]applied{appliedStale, appliedGap}, func(j *Job) {}},
		{"waiting is set, kept, and cleared by null", []*liveMessage{
			{Type: "job", Seq: 11, Status: StatusProcessing,
				Waiting: []byte(`{"reason":"worker_lost","since":"2026-11-29T22:00:00Z","resume_by":"2026-11-29T22:00:30Z"}`)},
			file(12, StatusProcessing, 60),
			{Type: "job", Seq: 13, Status: StatusProcessing, Waiting: []byte(`null`)},
		}, []applied{appliedChanged, appliedChanged, appliedChanged}, func(j *Job) {
			j.Files[0].Percent = 60
			j.Progress.Percent = 30
		}},
		{"a job never goes back to queued", []*liveMessage{{Type: "job", Seq: 11, Status: StatusQueued}},
			[]applied{appliedUnchanged}, func(j *Job) {}},
		{"a finished job stops waiting", []*liveMessage{
			{Type: "job", Seq: 11, Status: StatusProcessing, Waiting: []byte(`{"reason":"worker_lost"}`)},
			{Type: "job", Seq: 12, Status: StatusFailed, Error: []byte(`{"code":"timeout","message":"the job ran out of time"}`)},
		}, []applied{appliedChanged, appliedChanged}, func(j *Job) {
			j.Status = StatusFailed
			j.Error = &JobError{Code: "timeout", Message: "the job ran out of time"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s jobState
			s.applySnapshot(start())
			want := s.job.clone()
			var got []applied
			for _, m := range tc.messages {
				got = append(got, s.applyEvent(m))
			}
			if diff := cmp.Diff(tc.wantResults, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			tc.want(want)
			want.Seq = s.job.Seq
			if diff := cmp.Diff(want, &s.job); diff != "" {
				t.Errorf("job (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("waiting while it lasts", func(t *testing.T) {
		var s jobState
		s.applySnapshot(start())
		s.applyEvent(&liveMessage{Type: "job", Seq: 11, Status: StatusProcessing,
			Waiting: []byte(`{"reason":"worker_lost","since":"2026-11-29T22:00:00Z","resume_by":"2026-11-29T22:00:30Z"}`)})
		s.applyEvent(file(12, StatusProcessing, 60)) // absent: it still waits
		want := &Waiting{Reason: WaitingWorkerLost, Since: since, ResumeBy: since.Add(30 * time.Second)}
		if diff := cmp.Diff(want, s.job.Waiting); diff != "" {
			t.Errorf("waiting (-want +got):\n%s", diff)
		}
	})

	t.Run("a snapshot of another epoch replaces the state whole, even at a lower seq", func(t *testing.T) {
		var s jobState
		lost := start()
		lost.Epoch = "A"
		s.applySnapshot(lost)
		s.applyEvent(&liveMessage{Type: "file", Seq: 11, Epoch: "A", FileID: 1, Status: StatusReady, Percent: 100})
		// The failover lost seq 11 (the file was at 50%, and is at 20% again); a reader
		// repaired the record into epoch B, which goes on from there.
		real := &Job{ID: "dl_1", Status: StatusProcessing, Seq: 9, Epoch: "B",
			Files: []File{{ID: 1, Status: StatusProcessing, Percent: 20}, {ID: 2, Status: StatusQueued}}}
		if !s.applySnapshot(real) {
			t.Fatal("the snapshot of epoch B was refused")
		}
		want := real.clone()
		want.Progress = Progress{Percent: 10, FilesTotal: 2}
		if diff := cmp.Diff(want, &s.job); diff != "" {
			t.Errorf("job (-want +got):\n%s", diff)
		}
		if r := s.applyEvent(&liveMessage{Type: "file", Seq: 10, Epoch: "B", FileID: 2, Status: StatusProcessing, Percent: 5}); r != appliedChanged {
			t.Errorf("the next event of epoch B: %v, want applied", r)
		}
	})

	t.Run("an event of another epoch is a gap, whatever its seq", func(t *testing.T) {
		var s jobState
		job := start()
		job.Epoch = "A"
		s.applySnapshot(job)
		for _, seq := range []int64{5, 11} {
			if r := s.applyEvent(&liveMessage{Type: "file", Seq: seq, Epoch: "B", FileID: 1, Status: StatusReady, Percent: 100}); r != appliedGap {
				t.Errorf("event of epoch B at seq %d: %v, want a gap", seq, r)
			}
		}
		if s.job.Files[0].Status != StatusProcessing {
			t.Errorf("file 1 is %s, want it untouched by another epoch's event", s.job.Files[0].Status)
		}
	})

	t.Run("an older snapshot changes nothing", func(t *testing.T) {
		var s jobState
		s.applySnapshot(start())
		s.applyEvent(file(11, StatusReady, 100))
		old := start()
		if s.applySnapshot(old) || s.job.Files[0].Status != StatusReady {
			t.Errorf("a snapshot at seq 10 was taken over seq 11: file 1 is %s", s.job.Files[0].Status)
		}
	})
}

// A watch that comes back to a live channel says what it holds, so that the server can
// repair a record that lost writes the watch saw before it sends the first snapshot.
func TestLiveQuerySaysWhatTheWatchHolds(t *testing.T) {
	cases := []struct {
		ticket string
		held   *Job
		want   string
	}{
		{"", nil, ""},
		{"lht_x", nil, "ticket=lht_x"},
		{"", &Job{Seq: 17, Epoch: "3H23UMRB"}, "epoch=3H23UMRB&seq=17"},
		{"lht_x", &Job{Seq: 0}, "seq=0&ticket=lht_x"}, // an old server's record has no epoch
	}
	for _, tc := range cases {
		if got := liveQuery(tc.ticket, tc.held).Encode(); got != tc.want {
			t.Errorf("liveQuery(%q, %+v) = %q, want %q", tc.ticket, tc.held, got, tc.want)
		}
	}
}
