package api

import (
	"encoding/json"
	"sync"

	"github.com/longhaul-dev/longhaul/jobs"
)

// bodies keeps the latest status body of the jobs read lately, encoded, so that every
// status read and live snapshot of a job at one seq and epoch encodes it once: a body is
// only ever given for the state it was made of. It holds at most maxBytes of bodies; past
// that, bodies are let go in no particular order (Go's map order), which costs a later
// reader one encoding, never a wrong body.
type bodies struct {
	maxBytes int

	mu    sync.Mutex
	size  int                    // the bytes of every body held; guarded by mu
	byJob map[string]encodedBody // guarded by mu
}

// encodedBody is the status body of one state of a job.
type encodedBody struct {
	jobs.Version
	json []byte
}

// bodiesMaxBytes bounds the bodies one API process keeps: a few hundred jobs of 1,000 files.
const bodiesMaxBytes = 32 << 20

func newBodies(maxBytes int) *bodies {
	return &bodies{maxBytes: maxBytes, byJob: map[string]encodedBody{}}
}

// held returns the body kept for job id, if any.
func (b *bodies) held(id string) (encodedBody, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.byJob[id]
	return e, ok
}

// of returns the status body of job: the one kept for its seq and epoch, or a new one, kept
// from now on.
func (b *bodies) of(job *jobs.Job) []byte {
	v := jobs.VersionOf(job)
	if e, ok := b.held(job.ID); ok && e.Version == v {
		return e.json
	}
	body, _ := json.Marshal(statusOf(job))
	b.keep(job.ID, encodedBody{Version: v, json: body})
	return body
}

func (b *bodies) keep(id string, e encodedBody) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.byJob[id]; ok {
		b.size -= len(old.json)
		delete(b.byJob, id)
	}
	for other, old := range b.byJob {
		if b.size+len(e.json) <= b.maxBytes {
			break
		}
		b.size -= len(old.json)
		delete(b.byJob, other)
	}
	if len(e.json) > b.maxBytes {
		return
	}
	b.byJob[id] = e
	b.size += len(e.json)
}
