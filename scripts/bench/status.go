package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

// StatusRow is the status loads at one level of clients: the two HTTP paths, the store's
// read they are built on, and the raw HGETALL under it.
type StatusRow struct {
	Clients    int
	OK         Compared // 200 beside raw HGETALL
	NotChanged Compared // 304 beside raw HGETALL
	StoreGet   Result   // jobs.Store.Get: HGETALL and decoding
	// Health is GET /healthz: the API process's HTTP floor, with no Redis at all.
	Health Result
}

// statusFiles is a job as the status body shows it mid-way: one file ready, one
// unavailable, one half done, one queued.
var statusFiles = []int64{70000, 70001, 70007, 70014}

// runStatus measures GET /v1/download/status/{id}, with and without a matching
// If-None-Match, beside a raw HGETALL of the same record.
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
	rdb := r.rdb
	store := jobs.NewStore(rdb, jobs.Options{})
	ids, etags, err := statusJobs(ctx, rdb, store, b.plan.StatusJobs)
	if err != nil {
		return err
	}
	client, err := newRawHTTP(lh.URL)
	if err != nil {
		return err
	}
	defer client.close()
	cpu := meterOf(lh, r.redis)

	next := make([]int, maxOf(b.plan.Clients))
	pick := func(w int) int { next[w]++; return next[w] % len(ids) }
	get := func(ctx context.Context, w int) error {
		return getStatus(ctx, client, ids[pick(w)], "", http.StatusOK)
	}
	get304 := func(ctx context.Context, w int) error {
		i := pick(w)
		return getStatus(ctx, client, ids[i], etags[i], http.StatusNotModified)
	}
	hgetall := func(ctx context.Context, w int) error {
		h, err := rdb.HGetAll(ctx, recordKey(ids[pick(w)])).Result()
		if err == nil && len(h) == 0 {
			err = fmt.Errorf("HGETALL found no record")
		}
		return err
	}
	storeGet := func(ctx context.Context, w int) error {
		_, err := store.Get(ctx, ids[pick(w)])
		return err
	}
	health := func(ctx context.Context, w int) error {
		status, _, err := client.do(ctx, http.MethodGet, "/healthz", "", nil)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("healthz answered %d", status)
		}
		return err
	}
	for _, n := range b.plan.Clients {
		row := StatusRow{Clients: n}
		raw := named{"raw HGETALL", hgetall}
		row.OK.Clients, row.NotChanged.Clients = n, n
		row.OK.Longhaul, row.OK.Baseline, err = b.alternate(ctx, n, named{"GET status (200)", get}, raw,
			lh, cpu, fmt.Sprintf("status200-%d.cpu.pprof", n))
		if err != nil {
			return err
		}
		row.NotChanged.Longhaul, row.NotChanged.Baseline, err = b.alternate(ctx, n,
			named{"GET status (304)", get304}, raw, lh, cpu, fmt.Sprintf("status304-%d.cpu.pprof", n))
		if err != nil {
			return err
		}
		used := cpu.start()
		row.StoreGet = closedLoop(ctx, "jobs.Store.Get", n, b.plan.Duration, storeGet)
		row.StoreGet.CPU = used()
		if err := row.StoreGet.Err(); err != nil {
			return err
		}
		used = cpu.start()
		row.Health = closedLoop(ctx, "GET /healthz", n, b.plan.Duration, health)
		row.Health.CPU = used()
		if err := row.Health.Err(); err != nil {
			return err
		}
		b.logf("  status x%d: 200 %.0f/s, 304 %.0f/s, Store.Get %.0f/s, HGETALL %.0f/s", n,
			row.OK.Longhaul.Rate(), row.NotChanged.Longhaul.Rate(), row.StoreGet.Rate(), row.OK.Baseline.Rate())
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

func getStatus(ctx context.Context, client *rawHTTP, id, etag string, want int) error {
	header := ""
	if etag != "" {
		header = "If-None-Match: " + etag + "\r\n"
	}
	status, n, err := client.do(ctx, http.MethodGet, "/v1/download/status/"+id, header, nil)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("status of %s answered %d, want %d", id, status, want)
	}
	if want == http.StatusOK && n < 200 {
		return fmt.Errorf("status of %s: a body of %d bytes", id, n)
	}
	return nil
}
