package main

import (
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
)

// The files that hold a container's memory limit: cgroup v2's, then cgroup v1's.
var memoryLimitFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// limitMemory gives the Go runtime a soft memory limit of 90 % of the container's, unless
// GOMEMLIMIT sets one (the runtime reads it itself) or the container has none. Near the limit
// the collector runs sooner and returns freed memory to the system at once, so that a storm
// of connections that ends leaves the process well within its container rather than at its
// peak until the next collection; the other 10 % is for what the runtime does not count.
func limitMemory(getenv func(string) string, readFile func(string) ([]byte, error), log *slog.Logger) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	for _, path := range memoryLimitFiles {
		data, err := readFile(path)
		if err != nil {
			continue
		}
		if limit, ok := containerMemory(string(data)); ok {
			debug.SetMemoryLimit(limit / 10 * 9)
			log.Info("memory limit set from the container's", "limit_bytes", limit/10*9, "container_bytes", limit, "from", path)
		}
		return
	}
}

// containerMemory reads a cgroup memory limit: "max" (v2) or a huge number (v1, near
// 2^63) say there is none.
func containerMemory(text string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}
