package api

import (
	"bytes"
	"testing"

	"github.com/longhaul-dev/longhaul/jobs"
)

func TestBodiesAreKeptPerStateWithinTheirBound(t *testing.T) {
	job := func(id string, seq int64) *jobs.Job {
		return &jobs.Job{ID: id, Seq: seq, Epoch: "e1", Status: jobs.StatusProcessing, Files: []jobs.File{}}
	}
	first := job(jobs.NewID(), 3)
	probe := newBodies(1 << 20)
	size := len(probe.of(first))
	b := newBodies(2*size + size/2) // room for two bodies of this size

	kept := b.of(first)
	if again := b.of(job(first.ID, 3)); &again[0] != &kept[0] {
		t.Error("a second body of the same state was encoded again")
	}
	if newer := b.of(job(first.ID, 4)); bytes.Equal(newer, kept) || !bytes.Contains(newer, []byte(`"seq":4`)) {
		t.Errorf("the body of seq 4 is %s, want a new one", newer)
	}
	for range 5 {
		b.of(job(jobs.NewID(), 1))
		if b.size > b.maxBytes || len(b.byJob) > 2 {
			t.Fatalf("%d bodies of %d bytes kept, bound %d", len(b.byJob), b.size, b.maxBytes)
		}
	}
}
