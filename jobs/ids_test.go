package jobs_test

import (
	"testing"

	"github.com/longhaul-dev/longhaul/jobs"
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
