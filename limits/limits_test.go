package limits_test

import (
	"context"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/limits"
	"github.com/redis/go-redis/v9"
)

type setup struct {
	rdb   *redis.Client
	store *jobs.Store
	ctx   context.Context
}

func newSetup(t *testing.T) setup {
	t.Helper()
	rdb := redistest.Start(t, redistest.Options{}).Client()
	return setup{rdb: rdb, store: jobs.NewStore(rdb, jobs.Options{}), ctx: context.Background()}
}

func (s setup) limits(cfg limits.Config) *limits.Limits {
	return limits.New(s.rdb, s.store, cfg, time.Hour)
}

func TestCreationRateIsSharedByEveryInstance(t *testing.T) {
	s := newSetup(t)
	cfg := limits.Config{CreateRate: 1, CreateBurst: 5}
	a, b := s.limits(cfg), s.limits(cfg) // two API instances on one Redis
	allowed := 0
	for i := range 6 {
		l := a
		if i%2 == 1 {
			l = b
		}
		d, err := l.AllowCreate(s.ctx, "key:k1")
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowed++
		} else if d.RetryAfter <= 0 || d.Reason == "" || d.Limit != 5 {
			t.Errorf("refusal %+v lacks what the client is told", d)
		}
	}
	if allowed != 5 {
		t.Errorf("%d of 6 creations allowed across two instances, want the burst of 5", allowed)
	}
	if d, _ := a.AllowCreate(s.ctx, "key:k2"); !d.Allowed {
		t.Error("another principal was refused: limits are per principal")
	}
}

func TestUnfinishedJobsCapFreesAsJobsEnd(t *testing.T) {
	s := newSetup(t)
	l := s.limits(limits.Config{MaxUnfinished: 2})
	admit := func(id string) bool {
		t.Helper()
		d, err := l.Admit(s.ctx, "key:k", id, 0)
		if err != nil {
			t.Fatal(err)
		}
		return d.Allowed
	}
	first, second, third := jobs.NewID(), jobs.NewID(), jobs.NewID()
	for _, id := range []string{first, second} {
		if !admit(id) {
			t.Fatalf("job %s refused below the cap", id)
		}
		if err := s.store.Create(s.ctx, id, []int64{7}); err != nil {
			t.Fatal(err)
		}
	}
	if admit(third) {
		t.Fatal("a third unfinished job was admitted with a cap of 2")
	}
	if _, err := s.store.Cancel(s.ctx, first); err != nil {
		t.Fatal(err)
	}
	if !admit(third) {
		t.Error("a job was refused although one of the two before it had ended")
	}
}

func TestStoredBytesCapCountsUntilJobsExpire(t *testing.T) {
	s := newSetup(t)
	l := s.limits(limits.Config{MaxStoredBytes: 100})
	kept, gone := jobs.NewID(), jobs.NewID()
	for _, id := range []string{kept, gone} {
		if d, err := l.Admit(s.ctx, "addr:203.0.113.9", id, 50); err != nil || !d.Allowed {
			t.Fatalf("admit %s = %+v, %v", id, d, err)
		}
		if err := s.store.Create(s.ctx, id, []int64{7}); err != nil {
			t.Fatal(err)
		}
	}
	next := jobs.NewID()
	if d, _ := l.Admit(s.ctx, "addr:203.0.113.9", next, 1); d.Allowed || d.Reason == "" {
		t.Fatalf("admitted %+v past 100 bytes", d)
	}
	// A finished job's files still count while it is kept; an expired one's no longer do.
	if _, err := s.store.Cancel(s.ctx, kept); err != nil {
		t.Fatal(err)
	}
	if d, _ := l.Admit(s.ctx, "addr:203.0.113.9", next, 1); d.Allowed {
		t.Fatal("admitted while both jobs are still kept")
	}
	if err := s.rdb.Del(s.ctx, jobs.RecordKey(gone)).Err(); err != nil {
		t.Fatal(err)
	}
	if d, _ := l.Admit(s.ctx, "addr:203.0.113.9", next, 50); !d.Allowed {
		t.Error("refused although an expired job's 50 bytes are free")
	}
}

func TestRunningAndLivePlacesLapseOrComeBack(t *testing.T) {
	s := newSetup(t)
	l := s.limits(limits.Config{MaxRunning: 1, MaxLive: 1})
	soon := time.Now().Add(300 * time.Millisecond)
	if ok, err := l.StartRunning(s.ctx, "key:k", "a", soon); err != nil || !ok {
		t.Fatalf("first running job refused: %v", err)
	}
	if ok, _ := l.StartRunning(s.ctx, "key:k", "a", soon); !ok {
		t.Error("the job that holds the place was refused it again (a retried attempt)")
	}
	if ok, _ := l.StartRunning(s.ctx, "key:k", "b", soon); ok {
		t.Error("a second job ran with a cap of 1")
	}
	time.Sleep(400 * time.Millisecond) // the worker of "a" died: its place lapses
	if ok, _ := l.StartRunning(s.ctx, "key:k", "b", time.Now().Add(time.Minute)); !ok {
		t.Error("a lapsed place was not given to the next job")
	}
	if err := l.StopRunning(s.ctx, "key:k", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.StartRunning(s.ctx, "key:k", "c", time.Now().Add(time.Minute)); !ok {
		t.Error("a place given back was not taken")
	}

	if ok, _ := l.OpenLive(s.ctx, "key:k", "conn1"); !ok {
		t.Fatal("first live connection refused")
	}
	if ok, _ := l.OpenLive(s.ctx, "key:k", "conn2"); ok {
		t.Error("a second live connection was let in with a cap of 1")
	}
	if err := l.CloseLive(s.ctx, "key:k", "conn1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.OpenLive(s.ctx, "key:k", "conn2"); !ok {
		t.Error("a closed connection's place was not given back")
	}
}

func TestZeroTurnsEveryLimitOff(t *testing.T) {
	s := newSetup(t)
	l := s.limits(limits.Config{})
	for range 50 {
		for _, allowed := range []func() bool{
			func() bool { d, _ := l.AllowCreate(s.ctx, "p"); return d.Allowed },
			func() bool { d, _ := l.AllowNotFound(s.ctx, "p"); return d.Allowed },
			func() bool { d, _ := l.Admit(s.ctx, "p", jobs.NewID(), 1<<40); return d.Allowed },
			func() bool { ok, _ := l.StartRunning(s.ctx, "p", jobs.NewID(), time.Now().Add(time.Hour)); return ok },
			func() bool { ok, _ := l.OpenLive(s.ctx, "p", jobs.NewID()); return ok },
		} {
			if !allowed() {
				t.Fatal("a limit of 0 refused")
			}
		}
	}
	if n := s.rdb.DBSize(s.ctx).Val(); n != 0 {
		t.Errorf("limits that are off wrote %d keys", n)
	}
}
