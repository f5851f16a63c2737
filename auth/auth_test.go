package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestKeysAreShownOnceAndStoredAsAHash(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	keys := auth.NewKeys(rdb)
	ctx := context.Background()
	ci, ciSecret, err := keys.Create(ctx, "ci", auth.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	ops, opsSecret, err := keys.Create(ctx, "ops", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ciSecret, "lh_"+ci.ID+"_") || len(ciSecret) < 40 || ciSecret == opsSecret {
		t.Errorf("secrets %q and %q: want lh_<id>_ and 256 random bits each", ciSecret, opsSecret)
	}
	for _, secret := range []string{ciSecret, opsSecret} {
		if where := findInRedis(t, rdb, secret[len("lh_"+ci.ID+"_"):]); where != "" {
			t.Errorf("the secret is stored in Redis, in %s; only its hash may be", where)
		}
	}
	got, err := keys.Lookup(ctx, opsSecret)
	if err != nil || got != ops {
		t.Errorf("lookup = %+v, %v; want %+v", got, err, ops)
	}
	list, err := keys.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := cmpopts.SortSlices(func(a, b auth.Key) bool { return a.ID < b.ID })
	if diff := cmp.Diff([]auth.Key{ci, ops}, list, byID); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}

	if err := keys.Revoke(ctx, ci.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Lookup(ctx, ciSecret); !errors.Is(err, auth.ErrUnknownKey) {
		t.Errorf("a revoked key looks up as %v, want ErrUnknownKey", err)
	}
	if err := keys.Revoke(ctx, ci.ID); !errors.Is(err, auth.ErrUnknownKey) {
		t.Errorf("revoking twice = %v, want ErrUnknownKey", err)
	}
	for _, bad := range []string{"", "lh_", ciSecret + "x", "Bearer " + opsSecret, strings.Repeat("lh_x", 100)} {
		if _, err := keys.Lookup(ctx, bad); !errors.Is(err, auth.ErrUnknownKey) {
			t.Errorf("lookup of %q = %v, want ErrUnknownKey", bad, err)
		}
	}
	if _, _, err := keys.Create(ctx, "", auth.RoleClient); err == nil {
		t.Error("a key without a name was made")
	}
	if _, _, err := keys.Create(ctx, "x", auth.Role("root")); err == nil {
		t.Error("a key with an unknown role was made")
	}
}

// findInRedis returns where s appears in any key or value of Redis, or "".
func findInRedis(t *testing.T, rdb *redis.Client, s string) string {
	t.Helper()
	ctx := context.Background()
	names, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.Contains(name, s) {
			return "key " + name
		}
		dump, err := rdb.Dump(ctx, name).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(dump, s) {
			return "the value of " + name
		}
	}
	return ""
}

func TestTicketsWorkOnceForOneJobWithinTheirTime(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	tickets := auth.NewTickets(rdb, time.Second)
	ctx := context.Background()
	const job, other = "dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB", "dl_01JH3W7ZK8Q4X9V2N6M5R0T8YC"

	ticket, expires, err := tickets.Issue(ctx, job, "key1")
	if err != nil {
		t.Fatal(err)
	}
	if until := time.Until(expires); until > time.Second || until < -time.Second {
		t.Errorf("expires in %v, want about 1s", until)
	}
	if key, err := tickets.Redeem(ctx, job, ticket); err != nil || key != "key1" {
		t.Fatalf("redeem = %q, %v; want key1", key, err)
	}
	if _, err := tickets.Redeem(ctx, job, ticket); !errors.Is(err, auth.ErrBadTicket) {
		t.Errorf("a used ticket = %v, want ErrBadTicket", err)
	}

	forOther, _, _ := tickets.Issue(ctx, other, "key1")
	if _, err := tickets.Redeem(ctx, job, forOther); !errors.Is(err, auth.ErrBadTicket) {
		t.Errorf("another job's ticket = %v, want ErrBadTicket", err)
	}
	late, _, _ := tickets.Issue(ctx, job, "key1")
	time.Sleep(1100 * time.Millisecond) // Redis expires the ticket itself
	if _, err := tickets.Redeem(ctx, job, late); !errors.Is(err, auth.ErrBadTicket) {
		t.Errorf("an expired ticket = %v, want ErrBadTicket", err)
	}
	for _, bad := range []string{"", "lh_someones_key", "lht_made_up"} {
		if _, err := tickets.Redeem(ctx, job, bad); !errors.Is(err, auth.ErrBadTicket) {
			t.Errorf("ticket %q = %v, want ErrBadTicket", bad, err)
		}
	}
}
