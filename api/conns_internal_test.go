package api

import "testing"

func TestReleaserGivesMemoryBackOnceAWaveOfConnectionsSettled(t *testing.T) {
	var r releaser
	steps := []struct {
		open int64
		want bool
	}{
		{0, false}, {5000, false}, // a crowd arrives
		{10_000, false},       // still arriving
		{10_050, true},        // it has settled: what the upgrades left goes back
		{10_050, false},       // nothing more to give
		{9500, false},         // a few leave: not worth a collection
		{9450, false},         // and settle
		{8999, false},         // 1,051 closed since the most, still leaving
		{8990, true},          // settled
		{8500, false},         // counted from the release
		{7990, false},         // another 1,000, still leaving
		{7980, true},          // settled
		{12_000, false},       // a storm comes
		{0, false}, {0, true}, // and goes
		{0, false},                                // nothing more to give
		{600, false}, {1100, false}, {1100, true}, // slow arrivals add up
	}
	for i, s := range steps {
		if got := r.after(s.open); got != s.want {
			t.Errorf("step %d: after(%d) = %v, want %v", i, s.open, got, s.want)
		}
	}
}
