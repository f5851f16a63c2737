package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrKeyReused: the idempotency key was used before with a different request.
var ErrKeyReused = errors.New("idempotency key used with a different request")

// idempotencyKey is where a client's Idempotency-Key is kept. The key is hashed: clients
// choose it, so it may hold anything printable, at any length the API allows.
func idempotencyKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "longhaul:idempotency:" + hex.EncodeToString(sum[:])
}

// fingerprint names a request by its file ids, in order, after de-duplication.
func fingerprint(fileIDs []int64) string {
	var b strings.Builder
	for _, id := range fileIDs {
		b.WriteString(strconv.FormatInt(id, 10))
		b.WriteByte(',')
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:16])
}

// CreateIdempotent creates a job like Create, unless the idempotency key names a job
// already: then it returns that job's id and created is false. Concurrent calls with one
// key create one job between them. A key used before with other file ids gives
// ErrKeyReused. The key expires with its job.
func (s *Store) CreateIdempotent(ctx context.Context, id string, fileIDs []int64, key string) (jobID string, created bool, err error) {
	ik, fp := idempotencyKey(key), fingerprint(fileIDs)
	for range 10 {
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			held, err := tx.Get(ctx, ik).Result()
			if err == nil {
				jobID, created = held, false
				return nil
			} else if !errors.Is(err, redis.Nil) {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, ik, id+" "+fp, s.activeTTL)
				s.queueCreate(ctx, p, id, fileIDs, ik)
				return nil
			})
			jobID, created = id, true
			return err
		}, ik)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		return "", false, fmt.Errorf("create job with idempotency key: %w", err)
	}
	if !created {
		held, heldFP, _ := strings.Cut(jobID, " ")
		if heldFP != fp {
			return "", false, ErrKeyReused
		}
		jobID = held
	}
	return jobID, created, nil
}

// expireIdempotencyKey gives a finished job's idempotency key, if it has one, the
// retention of the job.
func (s *Store) expireIdempotencyKey(ctx context.Context, id string) error {
	ik, err := s.rdb.HGet(ctx, jobKey(id), "idempotency_key").Result()
	if errors.Is(err, redis.Nil) {
		return nil
	} else if err != nil {
		return err
	}
	return s.rdb.Expire(ctx, ik, s.retention).Err()
}
