// Package auth keeps longhaul's API keys and live-channel tickets in Redis, so that every
// API instance sees a new key, a revocation or a used ticket at once.
//
// A key is shown once, when it is made; Redis holds only its SHA-256. Keys are 256-bit
// random strings, so a fast hash is enough: there is nothing to guess from it. Keys do not
// expire on their own (unlike everything else longhaul writes): an operator revokes them.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Role is what a key may do.
type Role string

// The roles: a client sees its own jobs; an admin sees every job, the dashboard and the
// metrics.
const (
	RoleClient Role = "client"
	RoleAdmin  Role = "admin"
)

// ParseRole reads a role by its name.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case RoleClient, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("no role %q: a key is a client or an admin", s)
}

// Key is an API key as longhaul keeps it: everything but the secret.
type Key struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// Errors of the key store.
var (
	// ErrUnknownKey: no such key, or it was revoked.
	ErrUnknownKey = errors.New("unknown or revoked API key")
)

// keyPrefix starts every key, so that a key found in a log or a repository is recognised.
const keyPrefix = "lh_"

// Keys is the store of API keys. It is safe for concurrent use.
type Keys struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewKeys returns the key store on rdb.
func NewKeys(rdb redis.UniversalClient) *Keys {
	return &Keys{rdb: rdb, now: time.Now}
}

// Every key of the store shares one hash tag, so that one transaction changes them together
// in a Redis Cluster too: the index of keys by id, and each key's record by its hash.
const indexKey = "longhaul:{auth}:keys"

func recordKey(hash string) string { return "longhaul:{auth}:key:" + hash }

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// stored is what the index holds of a key: the key and the hash that finds its record.
type stored struct {
	Key
	Hash string `json:"hash"`
}

// Create makes a new key and returns it with its secret, which is never shown again.
func (k *Keys) Create(ctx context.Context, name string, role Role) (Key, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return Key{}, "", errors.New("a key needs a name of 1 to 100 characters, to tell it apart")
	}
	if _, err := ParseRole(string(role)); err != nil {
		return Key{}, "", err
	}
	key := Key{ID: newKeyID(), Name: name, Role: role, CreatedAt: k.now().UTC().Truncate(time.Second)}
	secret := keyPrefix + key.ID + "_" + newSecret()
	entry, _ := json.Marshal(stored{Key: key, Hash: hashOf(secret)})
	record, _ := json.Marshal(key)
	_, err := k.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, indexKey, key.ID, entry)
		p.Set(ctx, recordKey(hashOf(secret)), record, 0)
		return nil
	})
	if err != nil {
		return Key{}, "", fmt.Errorf("store API key: %w", err)
	}
	return key, secret, nil
}

// newKeyID is a key's public name: short and lower case, as people read it out and type
// it (`longhaul keys revoke ID`).
func newKeyID() string {
	b := make([]byte, 5)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// newSecret is 256 bits from crypto/rand, as unpadded base64url.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Lookup returns the key whose secret this is, or ErrUnknownKey. It is one Redis read, so
// a revocation holds at once on every instance.
func (k *Keys) Lookup(ctx context.Context, secret string) (Key, error) {
	if !strings.HasPrefix(secret, keyPrefix) || len(secret) > 200 {
		return Key{}, ErrUnknownKey
	}
	raw, err := k.rdb.Get(ctx, recordKey(hashOf(secret))).Bytes()
	if errors.Is(err, redis.Nil) {
		return Key{}, ErrUnknownKey
	} else if err != nil {
		return Key{}, fmt.Errorf("look up API key: %w", err)
	}
	var key Key
	if err := json.Unmarshal(raw, &key); err != nil {
		return Key{}, fmt.Errorf("read API key: %w", err)
	}
	return key, nil
}

// Get returns the key with this id, or ErrUnknownKey.
func (k *Keys) Get(ctx context.Context, id string) (Key, error) {
	s, err := k.get(ctx, id)
	return s.Key, err
}

func (k *Keys) get(ctx context.Context, id string) (stored, error) {
	raw, err := k.rdb.HGet(ctx, indexKey, id).Bytes()
	if errors.Is(err, redis.Nil) {
		return stored{}, ErrUnknownKey
	} else if err != nil {
		return stored{}, fmt.Errorf("read API key %s: %w", id, err)
	}
	var s stored
	if err := json.Unmarshal(raw, &s); err != nil {
		return stored{}, fmt.Errorf("read API key %s: %w", id, err)
	}
	return s, nil
}

// List returns every key, oldest first.
func (k *Keys) List(ctx context.Context) ([]Key, error) {
	all, err := k.rdb.HGetAll(ctx, indexKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	keys := make([]Key, 0, len(all))
	for id, raw := range all {
		var s stored
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return nil, fmt.Errorf("read API key %s: %w", id, err)
		}
		keys = append(keys, s.Key)
	}
	sort.Slice(keys, func(i, j int) bool {
		if !keys[i].CreatedAt.Equal(keys[j].CreatedAt) {
			return keys[i].CreatedAt.Before(keys[j].CreatedAt)
		}
		return keys[i].ID < keys[j].ID
	})
	return keys, nil
}

// Revoke ends the key with this id at once, on every instance. An unknown id gives
// ErrUnknownKey.
func (k *Keys) Revoke(ctx context.Context, id string) error {
	s, err := k.get(ctx, id)
	if err != nil {
		return err
	}
	_, err = k.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, recordKey(s.Hash))
		p.HDel(ctx, indexKey, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke API key %s: %w", id, err)
	}
	return nil
}
