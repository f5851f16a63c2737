package main

import "testing"

func TestContainerMemory(t *testing.T) {
	cases := []struct {
		text string
		want int64
		ok   bool
	}{
		{"536870912\n", 536870912, true},
		{"max\n", 0, false},
		{"9223372036854771712\n", 0, false}, // cgroup v1 without a limit
		{"", 0, false},
		{"-1", 0, false},
	}
	for _, c := range cases {
		if got, ok := containerMemory(c.text); got != c.want || ok != c.ok {
			t.Errorf("containerMemory(%q) = %d, %v; want %d, %v", c.text, got, ok, c.want, c.ok)
		}
	}
}
