package jobs_test

import (
	"testing"

	"github.com/longhaul-dev/longhaul/jobs"
)

// TestAWriteAfterLostWritesTakesANewEpoch loses the record's last writes, as a failover or a
// crash of Redis within its AOF second does, under a running attempt, and checks that the
// attempt's next write goes on above the seqs it was given, in a new epoch: a poller that
// holds the ETag of a lost seq, or a live client that saw it, can no more take a later
// write for it.
func TestAWriteAfterLostWritesTakesANewEpoch(t *testing.T) {
	s := newSetup(t)
	id := jobs.NewID()
	if err := s.store.Create(s.ctx, id, []int64{70000, 70007}); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.store.Claim(s.ctx, id, "a1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.rdb.Keys(s.ctx, "longhaul:{*}:job:"+id).Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("the job's record: %v, %v", keys, err)
	}
	key := keys[0]
	saved, err := s.rdb.Dump(s.ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	for p := 10.0; p <= 50; p += 10 {
		if err := s.store.UpdateFile(s.ctx, id, "a1", jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: p}); err != nil {
			t.Fatal(err)
		}
	}
	seen, err := s.store.Get(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}

	// The writes since the claim are lost.
	if err := s.rdb.RestoreReplace(s.ctx, key, 0, saved).Err(); err != nil {
		t.Fatal(err)
	}
	if lost, _ := s.store.Get(s.ctx, id); lost.Seq != claimed.Seq || lost.Epoch != seen.Epoch {
		t.Fatalf("after the loss: seq %d epoch %s, want the claim's %d in %s", lost.Seq, lost.Epoch, claimed.Seq, seen.Epoch)
	}
	if err := s.store.UpdateFile(s.ctx, id, "a1", jobs.File{ID: 70007, Status: jobs.StatusProcessing, Percent: 10}); err != nil {
		t.Fatal(err)
	}
	after, err := s.store.Get(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Seq <= seen.Seq || after.Epoch == seen.Epoch {
		t.Errorf("the first write after the loss: seq %d in epoch %s, want above %d in another epoch than %s",
			after.Seq, after.Epoch, seen.Seq, seen.Epoch)
	}

	// Without a loss, writes stay in their epoch.
	if err := s.store.Heartbeat(s.ctx, id, "a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Complete(s.ctx, id, "a1"); err == nil {
		t.Fatal("completed with a file still open")
	}
	for _, f := range []int64{70000, 70007} {
		if err := s.store.UpdateFile(s.ctx, id, "a1", jobs.File{ID: f, Status: jobs.StatusReady, Percent: 100}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.store.Complete(s.ctx, id, "a1"); err != nil {
		t.Fatal(err)
	}
	if done, _ := s.store.Get(s.ctx, id); done.Epoch != after.Epoch || done.Seq != after.Seq+3 || done.Status != jobs.StatusCompleted {
		t.Errorf("the job ended %s at seq %d in epoch %s, want completed at %d in %s", done.Status, done.Seq, done.Epoch,
			after.Seq+3, after.Epoch)
	}
}
