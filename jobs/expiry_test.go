package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
)

// TestEveryKeyExpires runs jobs through every ending and checks that each key the store
// writes has an expiry, and that once the retention has passed none is left.
func TestEveryKeyExpires(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	const retention = 2 * time.Second
	store := jobs.NewStore(rdb, jobs.Options{Retention: retention})
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		id, _, err := store.Submit(ctx, jobs.Request{FileIDs: []int64{7, 8}, Principal: "p", IdempotencyKey: "key-" + string(rune('a'+i))})
		must(err)
		_, err = store.Claim(ctx, id, "a")
		must(err)
		must(store.UpdateFile(ctx, id, "a", jobs.File{ID: 7, Status: jobs.StatusReady, Percent: 100}))
		switch i % 3 {
		case 0:
			must(store.UpdateFile(ctx, id, "a", jobs.File{ID: 8, Status: jobs.StatusUnavailable, Percent: 100}))
			_, err = store.Complete(ctx, id, "a")
		case 1:
			err = store.Fail(ctx, id, "a", jobs.Error{Code: jobs.ErrorCodeTimeout, Message: "out of time"})
		case 2:
			_, err = store.Cancel(ctx, id)
		}
		must(err)
	}
	keys, err := rdb.Keys(ctx, "longhaul:*").Result()
	must(err)
	if len(keys) != 15 { // per job: record, audit, idempotency key
		t.Errorf("%d keys, want 15: %v", len(keys), keys)
	}
	for _, k := range keys {
		if ttl := rdb.TTL(ctx, k).Val(); ttl <= 0 || ttl > retention {
			t.Errorf("key %s expires in %v, want within the retention of %v", k, ttl, retention)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		left, err := rdb.Keys(ctx, "longhaul:*").Result()
		must(err)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys left 30s after the retention: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUnfinishedJobsExpireToo(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	store := jobs.NewStore(rdb, jobs.Options{ActiveTTL: time.Hour})
	ctx := context.Background()
	id := jobs.NewID()
	if err := store.Create(ctx, id, []int64{7}); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.TTL(ctx, jobs.RecordKey(id)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("a queued job expires in %v, want within its active TTL of 1h", ttl)
	}
}
