package api

import "testing"

func TestReleaserGivesMemoryBackOnceAWaveOfConnectionsClosed(t *testing.T) {
	var r releaser
	steps := []struct {
		open int64
		want bool
	}{
		{0, false}, {5000, false}, {10_000, false}, // a crowd arrives
		{9500, false},              // a few leave: not worth a collection
		{8999, true},               // 1,001 closed since the most
		{8500, false},              // counted from the release
		{7999, true},               // another 1,001
		{12_000, false}, {0, true}, // a storm comes and goes
		{0, false}, // nothing more to give
	}
	for i, s := range steps {
		if got := r.after(s.open); got != s.want {
			t.Errorf("step %d: after(%d) = %v, want %v", i, s.open, got, s.want)
		}
	}
}
