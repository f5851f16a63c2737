package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

// The loads of the status stage beside the servers' keys: longhaul answers 200, and 304 to
// a matching If-None-Match, which neither peer has; a raw HGETALL of the record is the Redis
// work under every server's read; /healthz is longhaul's HTTP floor, with no Redis at all.
const (
	keyStatus200 = "longhaul-200"
	keyStatus304 = "longhaul-304"
	keyHGetAll   = "hgetall"
	keyHealth    = "healthz"
)

// minStatusBody is the least a status body of one of the prepared jobs holds, at any of the
// servers: every one of them lists the job's four files.
const minStatusBody = 200

// statusFiles is a job as the status body shows it mid-way: one file ready, one
// unavailable, one half done, one queued.
var statusFiles = []int64{70000, 70001, 70007, 70014}

// runStatus measures GET /v1/download/status/{id} of longhaul (200, and 304 with a matching
// If-None-Match), of the Gin peer (one HGETALL of the same record) and of the Node peer (one
// BullMQ getJob of a hash holding the same job), beside a raw HGETALL and longhaul's
// /healthz, at each level of clients.
func (b *bench) runStatus(ctx context.Context, rep *Report) error {
	r, err := b.newRig(ctx, "status")
	if err != nil {
		return err
	}
	defer r.close()
	lh, err := r.longhaul(ctx, "api", nil)
	if err != nil {
		return err
	}
	store := jobs.NewStore(r.rdb, jobs.Options{})
	ids, etags, err := statusJobs(ctx, r.rdb, store, b.plan.StatusJobs)
	if err != nil {
		return err
	}
	if err := writeBullJobs(ctx, r.rdb, store, ids); err != nil {
		return err
	}
	peers, err := r.peers(ctx)
	if err != nil {
		return err
	}
	client, err := r.httpLoad()
	if err != nil {
		return err
	}
	defer client.close()

	get := loadSpec{Want: http.StatusOK, MinBody: minStatusBody}
	get304 := loadSpec{Want: http.StatusNotModified}
	for i, id := range ids {
		get.Requests = append(get.Requests, httpRequest{Method: http.MethodGet, Path: "/v1/download/status/" + id})
		get304.Requests = append(get304.Requests, httpRequest{Method: http.MethodGet, Path: "/v1/download/status/" + id,
			Header: "If-None-Match: " + etags[i] + "\r\n"})
	}
	health := loadSpec{Want: http.StatusOK, Requests: []httpRequest{{Method: http.MethodGet, Path: "/healthz"}}}
	next := make([]int, maxOf(b.plan.Clients))
	hgetall := func(ctx context.Context, w int) error {
		next[w]++
		h, err := r.rdb.HGetAll(ctx, recordKey(ids[(w+next[w])%len(ids)])).Result()
		if err == nil && len(h) == 0 {
			err = fmt.Errorf("HGETALL found no record")
		}
		return err
	}
	loads := []load{
		r.httpLoadOf(keyStatus200, lh.server(), client, get),
		r.httpLoadOf(keyStatus304, lh.server(), client, get304),
	}
	for _, p := range peers {
		loads = append(loads, r.httpLoadOf(p.Key, p, client, get))
	}
	loads = append(loads, inProcess(keyHGetAll, "raw HGETALL", hgetall), r.httpLoadOf(keyHealth, lh.server(), client, health))
	for _, n := range b.plan.Clients {
		results, err := b.compare(ctx, r, client, n, loads, fmt.Sprintf("status-%d.cpu.pprof", n))
		if err != nil {
			return err
		}
		row := RequestRow{Clients: n, Results: results}
		b.logf("  status x%d: %s", n, row.summary())
		rep.Status = append(rep.Status, row)
	}
	return nil
}

// recordKey is the Redis key of a job's record, as jobs/store.go names it. statusJobs
// checks that the name still holds, so that the baseline never reads empty keys.
func recordKey(id string) string { return jobs.RecordKey(id) }

// statusJobs creates n jobs half way through, and returns their ids and ETags.
func statusJobs(ctx context.Context, rdb redis.UniversalClient, store *jobs.Store, n int) ([]string, []string, error) {
	ids, etags := make([]string, n), make([]string, n)
	for i := range ids {
		id := jobs.NewID()
		if err := store.Create(ctx, id, statusFiles); err != nil {
			return nil, nil, err
		}
		if _, err := store.Claim(ctx, id, "bench"); err != nil {
			return nil, nil, err
		}
		updates := []jobs.File{
			{ID: 70000, Status: jobs.StatusReady, Percent: 100, Attempt: 1, Size: 4096},
			{ID: 70001, Status: jobs.StatusUnavailable, Percent: 100, Error: "file 70001 is not available"},
			{ID: 70007, Status: jobs.StatusProcessing, Percent: 50, Attempt: 1},
		}
		for _, f := range updates {
			if err := store.UpdateFile(ctx, id, "bench", f); err != nil {
				return nil, nil, err
			}
		}
		job, err := store.Get(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		ids[i], etags[i] = id, `"`+strconv.FormatInt(job.Seq, 10)+`"`
	}
	if h, err := rdb.HGetAll(ctx, recordKey(ids[0])).Result(); err != nil || h["id"] != ids[0] {
		return nil, nil, fmt.Errorf("the job record is not at %s any more (%v): update recordKey to jobs/store.go", recordKey(ids[0]), err)
	}
	return ids, etags, nil
}

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
