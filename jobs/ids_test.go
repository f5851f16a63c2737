package jobs_test

import (
	"math/big"
	"testing"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/oklog/ulid/v2"
)

func TestValidID(t *testing.T) {
	cases := map[string]bool{
		jobs.NewID():                       true,
		"dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB":    true,
		"dl_01jh3w7zk8q4x9v2n6m5r0t8yb":    false, // lower case
		"dl_81JH3W7ZK8Q4X9V2N6M5R0T8YB":    false, // beyond 128 bits
		"dl_01JH3W7ZK8Q4X9V2N6M5R0T8YI":    false, // I is not Crockford base32
		"dl_01JH3W7ZK8Q4X9V2N6M5R0T8Y":     false,
		"01JH3W7ZK8Q4X9V2N6M5R0T8YB":       false,
		"dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB/..": false,
		"../../etc/passwd":                 false,
		"":                                 false,
	}
	for id, want := range cases {
		if got := jobs.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestParseFileID(t *testing.T) {
	cases := map[string]bool{
		"7": true, "70000": true, "9007199254740991": true,
		"9007199254740992": false, "0": false, "07": false, "-7": false, "+7": false, "7.0": false,
		"": false, "..%2f": false, "1e3": false, " 7": false,
	}
	for s, want := range cases {
		if _, got := jobs.ParseFileID(s); got != want {
			t.Errorf("ParseFileID(%q) ok = %v, want %v", s, got, want)
		}
	}
}

// TestIDsAreUnpredictable makes ids within one millisecond the way a busy API does and
// checks that none follows from the one before: a ULID made monotonic, or drawn from a
// seeded math/rand, steps by a small amount (or repeats its seed's sequence), and a
// stranger's job id can then be guessed from one's own.
func TestIDsAreUnpredictable(t *testing.T) {
	seen := map[string]bool{}
	prev := jobs.NewID()
	sameMilli := 0
	for range 5000 {
		id := jobs.NewID()
		if seen[id] || !jobs.ValidID(id) {
			t.Fatalf("id %s repeats or is malformed", id)
		}
		seen[id] = true
		a, b := ulid.MustParse(prev[3:]), ulid.MustParse(id[3:])
		if a.Time() == b.Time() {
			sameMilli++
			ea, eb := new(big.Int).SetBytes(a.Entropy()), new(big.Int).SetBytes(b.Entropy())
			if step := new(big.Int).Abs(new(big.Int).Sub(eb, ea)); step.BitLen() < 48 {
				t.Fatalf("%s follows %s by %v: the next id can be guessed from the last", id, prev, step)
			}
		}
		prev = id
	}
	if sameMilli < 100 {
		t.Fatalf("only %d pairs of ids shared a millisecond; the test needs more to mean anything", sameMilli)
	}
}
