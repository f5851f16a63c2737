package jobs

import (
	"regexp"
	"testing"
)

// hashTag is the part of a key that Redis Cluster hashes to find its slot.
var hashTag = regexp.MustCompile(`\{([^}]*)\}`)

func tagOf(t *testing.T, key string) string {
	t.Helper()
	m := hashTag.FindStringSubmatch(key)
	if m == nil || m[1] == "" {
		t.Fatalf("key %q has no hash tag", key)
	}
	return m[1]
}

// TestKeysOfAJobShareASlot checks that every key one script or transaction touches carries
// one hash tag, so that the script runs on a Redis Cluster: the record, its channel, its
// audit, its group's index, and the idempotency key that names it.
func TestKeysOfAJobShareASlot(t *testing.T) {
	s := &Store{}
	for _, principal := range []string{"", "key_1", "addr:203.0.113.9"} {
		for _, k := range []string{"order-42", "x", "a much longer key with spaces and / slashes"} {
			ik, g := idemKeyOf(principal, k)
			id := newIDInGroup(g)
			if !ValidID(id) {
				t.Fatalf("id %s in group %s is malformed", id, g)
			}
			want := tagOf(t, ik)
			for _, key := range append(s.keys(id), jobKey(id)) {
				if got := tagOf(t, key); got != want {
					t.Errorf("key %s has tag %q, its idempotency key %s has %q", key, got, ik, want)
				}
			}
		}
	}
}
