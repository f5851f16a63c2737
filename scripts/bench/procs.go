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
// no time and are small, logs are warnings only, and keys and limits are off.
func longhaulSettings(redisURL, storage string) map[string]string {
	return devbin.Unguarded(map[string]string{
		"REDIS_URL":              redisURL,
		"LONGHAUL_STORAGE_DIR":   storage,
		"LONGHAUL_FILE_TIME_MIN": "0",
		"LONGHAUL_FILE_TIME_MAX": "0",
		"LONGHAUL_FILE_SIZE_MAX": "4KiB",
		"LONGHAUL_LOG_LEVEL":     "warn",
	})
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
	onLine, pprof := firstURL(func(line string) (string, bool) { return strings.CutPrefix(line, pprofBanner) })
	lh, err := devbin.StartLonghaul(ctx, devbin.LonghaulSpec{Bin: s.b.bin, Mode: mode, Dir: s.b.root,
		Settings: settings, Log: filepath.Join(s.dir, fmt.Sprintf("longhaul-%s-%d.log", mode, time.Now().UnixNano())),
		OnLine: onLine})
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, lh.Process)
	p := &longhaul{Longhaul: lh}
	if !s.b.profiling() {
		return p, nil
	}
	if p.Pprof, err = awaitURL(ctx, lh.Process, pprof, "pprof address"); err != nil {
		return nil, err
	}
	return p, nil
}

// firstURL returns a handler of a process's lines that hands the first URL that parse
// finds in them to the channel it returns.
func firstURL(parse func(line string) (string, bool)) (func(line string), <-chan string) {
	urls := make(chan string, 1)
	return func(line string) {
		if url, ok := parse(line); ok {
			select {
			case urls <- url:
			default:
			}
		}
	}, urls
}

// awaitURL waits, at most 30 s, for the URL that process p prints (see firstURL).
func awaitURL(ctx context.Context, p *devbin.Process, urls <-chan string, what string) (string, error) {
	select {
	case url := <-urls:
		return url, nil
	case <-p.Done():
		return "", p.ExitError()
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("%s printed no %s in 30s:\n%s", p.Name(), what, p.Tail(10))
	case <-ctx.Done():
		return "", ctx.Err()
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

// raiseFileLimit lifts the open-files limit of this process, and so of the processes it
// starts, to want or, where the hard limit is lower and may not be raised (that needs
// CAP_SYS_RESOURCE), to the hard limit: tens of thousands of WebSockets need as many
// descriptors. It returns the soft limit now in force.
func raiseFileLimit(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if want > lim.Max {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return want, nil
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// The roles whose CPU time a cpuMeter reads.
const (
	roleServer = "server" // the process that serves: a longhaul API or a peer
	roleRedis  = "redis"
	roleClient = "client" // the client processes (HTTP load, WebSocket clients)
	roleBench  = "bench"  // this process: raw Redis operations, the event source
	// roleMachine is every process of the machine together, this benchmark's and others'.
	roleMachine = "machine"
)

// cpuMeter reads the CPU time of a set of processes, and of the whole machine, to tell what
// each costs and how much else was running.
type cpuMeter struct {
	names []string
	pids  []int
}

// add meters process pid under name; several processes may share a name.
func (m *cpuMeter) add(name string, pid int) {
	m.names, m.pids = append(m.names, name), append(m.pids, pid)
}

// meter meters the stage's Redis, this process, the whole machine, and server and client
// when they are not nil.
func (s *rig) meter(server *devbin.Process, client *httpLoad) *cpuMeter {
	m := &cpuMeter{}
	if server != nil {
		m.add(roleServer, server.PID())
	}
	if client != nil {
		m.add(roleClient, client.proc.PID())
	}
	m.add(roleRedis, s.redis.Process().PID())
	m.add(roleBench, os.Getpid())
	return m
}

// start reads every process's CPU time; the function it returns gives what each name, and
// the machine (roleMachine), used since.
func (m *cpuMeter) start() func() map[string]time.Duration {
	before := make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		before[i], _ = cpuTime(pid)
	}
	machine0, _ := machineBusy()
	return func() map[string]time.Duration {
		used := map[string]time.Duration{}
		for i, pid := range m.pids {
			if after, err := cpuTime(pid); err == nil {
				used[m.names[i]] += after - before[i]
			}
		}
		if machine1, err := machineBusy(); err == nil && machine0 > 0 {
			used[roleMachine] = machine1 - machine0
		}
		return used
	}
}

// machineBusy is the CPU time all processes of the machine have used since it started: the
// busy fields of the first line of /proc/stat (user, nice, system, irq, softirq, steal).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	const perSecond = 100 // USER_HZ on Linux
	return time.Duration(ticks) * time.Second / perSecond, nil
}
