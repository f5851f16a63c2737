package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/redis/go-redis/v9"
)

// rig is what every stage of the benchmark runs on: a fresh directory of its own, a
// redis-server in it with a client, and the processes the stage starts, all stopped when
// it ends. Only the stage's goroutine uses it.
type rig struct {
	b     *bench
	dir   string
	redis *devbin.Redis
	// rdb has the pool the longhaul processes use (64 connections).
	rdb   *redis.Client
	procs []*devbin.Process // every process started, stopped last first
}

// newRig makes the directory of the stage name and starts its Redis, configured as the
// tests' (internal/redistest): no persistence, noeviction.
func (b *bench) newRig(ctx context.Context, name string) (*rig, error) {
	dir, err := b.stageDir(name)
	if err != nil {
		return nil, err
	}
	rs, err := devbin.StartRedis(ctx, devbin.RedisOptions{Dir: filepath.Join(dir, "redis"),
		Args: []string{"--maxclients", "1000"}})
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), PoolSize: 64, DialTimeout: 2 * time.Second})
	return &rig{b: b, dir: dir, redis: rs, rdb: rdb, procs: []*devbin.Process{rs.Process()}}, nil
}

// close stops every process of the stage, last started first.
func (s *rig) close() {
	s.rdb.Close()
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Stop(10 * time.Second)
	}
}

// start starts a client process of the stage, in its directory.
func (s *rig) start(spec devbin.Spec) (*devbin.Process, error) {
	spec.Dir = s.dir
	p, err := devbin.Start(spec)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	return p, nil
}

// longhaulSettings are the settings of every longhaul process of the benchmark: files take
// no time and are small, logs are warnings only.
func longhaulSettings(redisURL, storage string) map[string]string {
	return map[string]string{
		"REDIS_URL":              redisURL,
		"LONGHAUL_STORAGE_DIR":   storage,
		"LONGHAUL_FILE_TIME_MIN": "0",
		"LONGHAUL_FILE_TIME_MAX": "0",
		"LONGHAUL_FILE_SIZE_MAX": "4KiB",
		"LONGHAUL_LOG_LEVEL":     "warn",
	}
}

// longhaul is a running `longhaul api` or `longhaul worker`.
type longhaul struct {
	*devbin.Longhaul
	// Pprof is the base URL of its net/http/pprof handlers, when built for profiling.
	Pprof string
}

// longhaul runs `longhaul mode` on the stage's Redis with extra settings, and waits until
// it serves (api) and, when profiling, until it prints the address of its pprof handlers.
func (s *rig) longhaul(ctx context.Context, mode string, extra map[string]string) (*longhaul, error) {
	settings := longhaulSettings(s.redis.URL(), filepath.Join(s.dir, "files"))
	maps.Copy(settings, extra)
	if s.b.profiling() {
		settings[pprofEnv] = "127.0.0.1:0"
	}
	pprof := make(chan string, 1)
	lh, err := devbin.StartLonghaul(ctx, devbin.LonghaulSpec{Bin: s.b.bin, Mode: mode, Dir: s.b.root,
		Settings: settings, Log: filepath.Join(s.dir, fmt.Sprintf("longhaul-%s-%d.log", mode, time.Now().UnixNano())),
		OnLine: func(line string) {
			if url, ok := strings.CutPrefix(line, pprofBanner); ok {
				select {
				case pprof <- url:
				default:
				}
			}
		}})
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, lh.Process)
	p := &longhaul{Longhaul: lh}
	if !s.b.profiling() {
		return p, nil
	}
	select {
	case p.Pprof = <-pprof:
		return p, nil
	case <-lh.Done():
		return nil, lh.ExitError()
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s printed no pprof address in 30s:\n%s", lh.Name(), lh.Tail(10))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// rssBytes is a process's resident set (VmRSS).
func rssBytes(p *devbin.Process) (int64, error) {
	kib, err := p.MemoryKiB("VmRSS")
	return kib << 10, err
}

// cpuTime is the CPU time a process has used (utime + stime in /proc/PID/stat).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after its closing parenthesis do not.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// raiseFileLimit lifts the soft open-files limit to the hard one: thousands of WebSockets
// need as many descriptors.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// cpuMeter reads the CPU time of a set of processes, to tell what each costs.
type cpuMeter struct {
	names []string
	pids  []int
}

// add meters process pid under name; several processes may share a name.
func (m *cpuMeter) add(name string, pid int) {
	m.names, m.pids = append(m.names, name), append(m.pids, pid)
}

// start reads every process's CPU time; the function it returns gives what each name used
// since.
func (m *cpuMeter) start() func() map[string]time.Duration {
	if m == nil {
		return func() map[string]time.Duration { return nil }
	}
	before := make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		before[i], _ = cpuTime(pid)
	}
	return func() map[string]time.Duration {
		used := map[string]time.Duration{}
		for i, pid := range m.pids {
			if after, err := cpuTime(pid); err == nil {
				used[m.names[i]] += after - before[i]
			}
		}
		return used
	}
}
