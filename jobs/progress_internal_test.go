package jobs

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// progressScript runs the scripts' own progress() on a job.
var progressScript = redis.NewScript(prelude + `return progress()`)

// TestScriptsSumProgressAsTheModelDoes holds together the two places that sum a job's files
// up: the Lua scripts, whose sum goes into every job event, and ProgressOf, which makes the
// status body's. For random jobs in random states, with percents that need rounding, the
// two must agree; and the job event that ends each job must carry the model's sum too.
func TestScriptsSumProgressAsTheModelDoes(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	store := NewStore(rdb, Options{})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []Status{StatusQueued, StatusProcessing, StatusReady, StatusUnavailable, StatusFailed}
	for trial := range 60 {
		id := NewID()
		ids := make([]int64, 1+rng.IntN(40))
		for i := range ids {
			ids[i] = int64(i + 1)
		}
		if err := store.Create(ctx, id, ids); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Claim(ctx, id, "a"); err != nil {
			t.Fatal(err)
		}
		for _, fid := range ids {
			f := File{ID: fid, Status: statuses[rng.IntN(len(statuses))], Percent: 100}
			switch f.Status {
			case StatusQueued:
				continue
			case StatusProcessing:
				f.Percent = float64(rng.IntN(1000)) / 10
			}
			if err := store.UpdateFile(ctx, id, "a", f); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := progressScript.Run(ctx, rdb, []string{jobKey(id), Channel(id), auditKey(id)}).Text()
		if err != nil {
			t.Fatal(err)
		}
		job, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ProgressOf(job.Files), decodeProgress(t, raw)); diff != "" {
			t.Fatalf("trial %d, %d files: the scripts' sum differs from the model's (-model +scripts):\n%s", trial, len(ids), diff)
		}

		events := rdb.Subscribe(ctx, Channel(id))
		if _, err := events.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		switch trial % 3 {
		case 0:
			_, err = store.Cancel(ctx, id)
		case 1:
			err = store.Fail(ctx, id, "a", Error{Code: ErrorCodeTimeout, Message: "out of time"})
		case 2:
			err = store.Abandon(ctx, id, Error{Code: ErrorCodeAttempts, Message: "given up"})
		}
		if err != nil {
			t.Fatal(err)
		}
		final := lastJobEvent(t, events)
		events.Close()
		if job, err = store.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ProgressOf(job.Files), final); diff != "" {
			t.Fatalf("trial %d: the final event's progress differs from the model's (-model +event):\n%s", trial, diff)
		}
	}
}

func decodeProgress(t *testing.T, raw string) Progress {
	t.Helper()
	var p Progress
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		t.Fatalf("progress %q: %v", raw, err)
	}
	return p
}

// lastJobEvent reads events up to the job event that ends the job, and returns its progress.
func lastJobEvent(t *testing.T, events *redis.PubSub) Progress {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		msg, err := events.ReceiveMessage(ctx)
		cancel()
		if err != nil {
			t.Fatalf("no job event: %v", err)
		}
		var ev struct {
			Type     string          `json:"type"`
			Progress json.RawMessage `json:"progress"`
		}
		if err := json.Unmarshal([]byte(msg.Payload), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "job" {
			return decodeProgress(t, string(ev.Progress))
		}
	}
}
