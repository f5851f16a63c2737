package jobs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/jobs"
)

// TestAJobWaitsForALostWorkerAndResumes: the record says a job waits for a worker when its
// attempt stopped showing signs of life, and says so no more once an attempt shows one.
func TestAJobWaitsForALostWorkerAndResumes(t *testing.T) {
	s := newSetup(t)
	id := jobs.NewID()
	if err := s.store.Create(s.ctx, id, []int64{7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Claim(s.ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	next := s.listen(t, id)
	job, _ := s.store.Get(s.ctx, id)
	w := jobs.Waiting{Reason: jobs.WaitingWorkerLost, Since: job.HeartbeatAt, ResumeBy: job.HeartbeatAt.Add(40 * time.Second)}

	// A sign of life after Since: not waiting.
	if err := s.store.Heartbeat(s.ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := s.store.Heartbeat(s.ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	if marked, err := s.store.MarkWaiting(s.ctx, id, w); err != nil || marked {
		t.Fatalf("marked waiting although the attempt is alive: %v, %v", marked, err)
	}
	job, _ = s.store.Get(s.ctx, id)
	w.Since, w.ResumeBy = job.HeartbeatAt, job.HeartbeatAt.Add(40*time.Second)
	if marked, err := s.store.MarkWaiting(s.ctx, id, w); err != nil || !marked {
		t.Fatalf("not marked waiting: %v, %v", marked, err)
	}
	if ev := next(); ev["type"] != "job" || ev["status"] != "processing" || ev["waiting"] == nil {
		t.Errorf("event = %v, want a job event that says it waits", ev)
	}
	if job, _ := s.store.Get(s.ctx, id); job.Waiting == nil || !job.Waiting.Since.Equal(w.Since) {
		t.Errorf("the record's waiting = %+v, want %+v", job.Waiting, w)
	}
	if marked, _ := s.store.MarkWaiting(s.ctx, id, w); marked {
		t.Error("marked waiting twice")
	}

	// A new attempt claims it: it no longer waits, and says so.
	if _, err := s.store.Claim(s.ctx, id, "b"); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev["type"] != "job" || ev["waiting"] != nil {
		t.Errorf("event = %v, want a job event without waiting", ev)
	}
	if job, _ := s.store.Get(s.ctx, id); job.Waiting != nil {
		t.Errorf("still waiting after a claim: %+v", job.Waiting)
	}
}

func TestARescuedJobIsClaimedOnlyByItsNewTask(t *testing.T) {
	s := newSetup(t)
	id := jobs.NewID()
	if err := s.store.Create(s.ctx, id, []int64{7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Claim(s.ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	rescue := id + "~1"
	if ok, err := s.store.HandOver(s.ctx, id, id, rescue); err != nil || !ok {
		t.Fatalf("hand over = %v, %v", ok, err)
	}
	if ok, _ := s.store.HandOver(s.ctx, id, id, id+"~2"); ok {
		t.Error("a second rescue of the same lost task took the job")
	}
	if _, err := s.store.ClaimFor(s.ctx, id, rescue, "b"); err != nil {
		t.Fatalf("the rescue's claim: %v", err)
	}
	// asynq recovers the lost task a minute later: it must not take the job back.
	if _, err := s.store.ClaimFor(s.ctx, id, id, "c"); !errors.Is(err, jobs.ErrSuperseded) {
		t.Errorf("the replaced task's claim = %v, want ErrSuperseded", err)
	}
	if err := s.store.UpdateFile(s.ctx, id, "b", jobs.File{ID: 7, Status: jobs.StatusProcessing, Percent: 10}); err != nil {
		t.Errorf("the rescue lost the job: %v", err)
	}
}

func TestCancelForAReasonSaysIt(t *testing.T) {
	s := newSetup(t)
	id := jobs.NewID()
	if err := s.store.Create(s.ctx, id, []int64{7}); err != nil {
		t.Fatal(err)
	}
	reason := jobs.Error{Code: jobs.ErrorCodeTaskCanceled, Message: "an operator canceled the job's task"}
	job, err := s.store.CancelBecause(s.ctx, id, reason)
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != jobs.StatusCanceled || job.Error == nil || *job.Error != reason {
		t.Errorf("job = %s with %+v, want canceled with %+v", job.Status, job.Error, reason)
	}
	plain := jobs.NewID()
	s.store.Create(s.ctx, plain, []int64{7})
	if job, _ := s.store.Cancel(s.ctx, plain); job.Error != nil {
		t.Errorf("a job its owner canceled has error %+v, want none", job.Error)
	}
}

func TestUnfinishedBeforeFindsOldUnfinishedJobs(t *testing.T) {
	s := newSetup(t)
	var ids []string
	for range 30 {
		id := jobs.NewID()
		if err := s.store.Create(s.ctx, id, []int64{7}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := s.store.Cancel(s.ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	got, err := s.store.UnfinishedBefore(s.ctx, time.Now().Add(time.Second), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 29 {
		t.Errorf("%d unfinished jobs found, want 29", len(got))
	}
	if none, _ := s.store.UnfinishedBefore(s.ctx, time.Now().Add(-time.Minute), 100); len(none) != 0 {
		t.Errorf("%d jobs made before a minute ago, want none", len(none))
	}
}

// TestARecordThatLostWritesIsRepaired: a record whose seq is below one a client saw (a
// failover lost its last writes) takes a new epoch and a seq above the one seen, and
// publishes its state.
func TestARecordThatLostWritesIsRepaired(t *testing.T) {
	s := newSetup(t)
	id := jobs.NewID()
	if err := s.store.Create(s.ctx, id, []int64{7}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.store.Get(s.ctx, id)
	if repaired, err := s.store.Regressed(s.ctx, id, 0); err != nil || repaired {
		t.Fatalf("a record at the seq seen was repaired: %v, %v", repaired, err)
	}
	next := s.listen(t, id)
	if repaired, err := s.store.Regressed(s.ctx, id, 5); err != nil || !repaired {
		t.Fatalf("repair = %v, %v", repaired, err)
	}
	after, _ := s.store.Get(s.ctx, id)
	if after.Seq <= 5 || after.Epoch == before.Epoch || after.Epoch == "" {
		t.Errorf("after the repair: seq %d epoch %q (was %q), want above 5 and a new epoch", after.Seq, after.Epoch, before.Epoch)
	}
	if ev := next(); ev["type"] != "job" || ev["epoch"] != after.Epoch || ev["seq"] != float64(after.Seq) {
		t.Errorf("event = %v, want the job's state in its new epoch", ev)
	}
}
