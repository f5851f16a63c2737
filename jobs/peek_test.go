package jobs_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

// commandStats are the calls of each command Redis counted, those of scripts included.
func commandStats(t *testing.T, rdb *redis.Client) map[string]int {
	t.Helper()
	info, err := rdb.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		calls[name] = n
	}
	return calls
}

func TestGetUnless(t *testing.T) {
	s := newSetup(t)
	id := jobs.NewID()
	if err := s.store.Create(s.ctx, id, []int64{70000, 70001}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Claim(s.ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	want, err := s.store.Get(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.GetUnless(s.ctx, id, jobs.Known{}); err != nil { // loads the script
		t.Fatal(err)
	}
	current := jobs.Version{Seq: want.Seq, Epoch: want.Epoch}

	cases := []struct {
		name       string
		known      jobs.Known
		wantRecord bool
	}{
		{"nothing known", jobs.Known{}, true},
		{"an older seq", jobs.Known{Tags: []string{strconv.FormatInt(want.Seq-1, 10)}}, true},
		{"the client's seq", jobs.Known{Tags: []string{strconv.FormatInt(want.Seq-1, 10), current.Tag()}}, false},
		{"any", jobs.Known{Any: true}, false},
		{"the cached state", jobs.Known{Cached: current}, false},
		{"the cached seq of another epoch", jobs.Known{Cached: jobs.Version{Seq: want.Seq, Epoch: "other"}}, true},
		{"an older cached state", jobs.Known{Cached: jobs.Version{Seq: want.Seq - 1, Epoch: want.Epoch}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := commandStats(t, s.rdb)
			peek, err := s.store.GetUnless(s.ctx, id, c.known)
			if err != nil {
				t.Fatal(err)
			}
			after := commandStats(t, s.rdb)
			if peek.Version != current || peek.Principal != want.Principal {
				t.Errorf("peek = %+v, want the state %+v of principal %q", peek, current, want.Principal)
			}
			if n := after["evalsha"] - before["evalsha"]; n != 1 || after["eval"] != before["eval"] {
				t.Errorf("%d EVALSHA (and %d EVAL), want one round trip", n, after["eval"]-before["eval"])
			}
			read := after["hgetall"] - before["hgetall"]
			switch {
			case c.wantRecord && (peek.Job == nil || read != 1):
				t.Fatalf("record %v after %d HGETALL, want it read once", peek.Job, read)
			case c.wantRecord:
				if diff := cmp.Diff(want, peek.Job); diff != "" {
					t.Errorf("record differs from Get's (-want +got):\n%s", diff)
				}
			case peek.Job != nil || read != 0:
				t.Errorf("record %v after %d HGETALL, want it neither read nor decoded", peek.Job, read)
			}
		})
	}
	if _, err := s.store.GetUnless(s.ctx, jobs.NewID(), jobs.Known{Any: true}); err != jobs.ErrNotFound {
		t.Errorf("an unknown job: %v, want ErrNotFound", err)
	}
}
