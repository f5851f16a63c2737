// Command chaos runs longhaul under faults and checks that no job is lost, stuck or
// produced twice.
//
//	go -C scripts run ./chaos -jobs 200 -files 4 -duration 60s   # from the repository root
//
// It builds longhaul from this module (or runs -bin), starts its own redis-server with AOF
// on a free port (or, with -redis cluster, a Redis Cluster of 3 masters and 3 replicas on
// free ports), one `longhaul api` and two `longhaul worker` processes that share a
// storage directory (or, with -storage s3, a bucket of an S3 server it starts: moto_server),
// and posts the jobs (every file id divisible by 7, so every file is
// available, and all of them distinct). For -duration it then SIGKILLs or SIGTERMs a random
// worker every couple of seconds, starting a replacement each time, and kills and restarts
// Redis once (in a Cluster: a master, whose replica takes over before it comes back as a
// replica). SIGKILLs come only in the first part of that phase (-sigkill-window): asynq
// gives a crashed worker's job to another one only after one to two minutes.
//
// At the end it waits for the jobs to drain and checks that every job completed, that every
// file is ready and was made ready exactly once by the audit kept in Redis, that nothing is
// left queued or running in the job store or in asynq, that the workers stopped with SIGTERM
// exited cleanly and that no process died by itself. It prints the counts, including how
// many kills landed while a file of a job on the victim was in progress, and exits non-zero
// when a check fails; the logs of every process are then kept and their folder printed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "chaos: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "chaos: %v\n", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// The places -storage names.
const (
	storageDir = "dir"
	storageS3  = "s3"
)

// options are the settings of one run; parseFlags documents them.
type options struct {
	jobs, files        int
	duration, timeout  time.Duration
	sigkillWindow      time.Duration
	killEvery          time.Duration
	minKillsInProgress int
	bin                string
	race               bool
	workers            int
	workerConcurrency  int
	fileConcurrency    int
	fileTimeMin        time.Duration
	fileTimeMax        time.Duration
	shutdownTimeout    time.Duration
	seed               uint64
	keep               bool
	storage            string
	redis              string
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&o.jobs, "jobs", 200, "jobs to post")
	fs.IntVar(&o.files, "files", 4, "files per job")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "length of the chaos phase (kills and the Redis restart)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound of the whole run, build included")
	fs.DurationVar(&o.sigkillWindow, "sigkill-window", 0, "kills in this first part of the chaos phase may be SIGKILL, later ones are SIGTERM (default a third of -duration)")
	fs.DurationVar(&o.killEvery, "kill-every", 2*time.Second, "mean time between kills")
	fs.IntVar(&o.minKillsInProgress, "min-kills-in-progress", 1, "fail unless at least this many kills hit a worker while a file of its jobs was in progress")
	fs.StringVar(&o.bin, "bin", "", "longhaul binary to run (default: build ./cmd/longhaul of this module)")
	fs.BoolVar(&o.race, "race", false, "build longhaul with the race detector (fails the run on a data race)")
	fs.IntVar(&o.workers, "workers", 2, "worker processes running at once")
	fs.IntVar(&o.workerConcurrency, "worker-concurrency", 2, "LONGHAUL_WORKER_CONCURRENCY of each worker")
	fs.IntVar(&o.fileConcurrency, "file-concurrency", 2, "LONGHAUL_FILE_CONCURRENCY")
	fs.DurationVar(&o.fileTimeMin, "file-time-min", 300*time.Millisecond, "LONGHAUL_FILE_TIME_MIN")
	fs.DurationVar(&o.fileTimeMax, "file-time-max", time.Second, "LONGHAUL_FILE_TIME_MAX")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 2*time.Second, "LONGHAUL_SHUTDOWN_TIMEOUT of the workers")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the random choices (default: from the clock)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder (logs, Redis data, files) even when every check passes")
	fs.StringVar(&o.storage, "storage", storageDir, "where files are kept: dir (a directory the processes share) or s3 (a bucket of an S3 server the run starts)")
	fs.StringVar(&o.redis, "redis", redisSingle, "the Redis the run starts: single (one server, killed and restarted once) or cluster (a Redis Cluster of 3 masters and 3 replicas, one master killed once)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if o.sigkillWindow == 0 {
		o.sigkillWindow = o.duration / 3
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	var bad []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			bad = append(bad, fmt.Errorf(format, args...))
		}
	}
	check(o.jobs >= 1, "-jobs must be at least 1")
	check(o.files >= 1 && o.files <= 100000, "-files must be from 1 to 100000")
	check(o.duration > 0, "-duration must be above 0")
	check(o.timeout > o.duration, "-timeout must be longer than -duration")
	check(o.sigkillWindow >= 0 && o.sigkillWindow <= o.duration, "-sigkill-window must be from 0 to -duration")
	check(o.killEvery > 0, "-kill-every must be above 0")
	check(o.minKillsInProgress >= 0, "-min-kills-in-progress must not be negative")
	check(o.workers >= 1, "-workers must be at least 1")
	check(o.workerConcurrency >= 1 && o.fileConcurrency >= 1, "-worker-concurrency and -file-concurrency must be at least 1")
	check(o.fileTimeMin >= 0 && o.fileTimeMax >= o.fileTimeMin, "-file-time-max must be at least -file-time-min, both not negative")
	check(o.shutdownTimeout > 0, "-shutdown-timeout must be above 0")
	check(o.storage == storageDir || o.storage == storageS3, "-storage must be %s or %s", storageDir, storageS3)
	check(o.redis == redisSingle || o.redis == redisCluster, "-redis must be %s or %s", redisSingle, redisCluster)
	if err := errors.Join(bad...); err != nil {
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	return o, nil
}

// run is the whole program: it starts the cluster, posts the jobs, wreaks the chaos, waits
// for the jobs to drain and checks the result. It returns an error when a check fails.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	out := newPrinter(stdout)
	out.printf("longhaul chaos: %d jobs x %d files, %d workers, files in %s, %s Redis, chaos %v (SIGKILL in the first %v), seed %d",
		o.jobs, o.files, o.workers, o.storage, o.redis, o.duration, o.sigkillWindow, o.seed)

	dir, err := os.MkdirTemp("", "longhaul-chaos-")
	if err != nil {
		return err
	}
	keep := o.keep
	defer func() {
		if keep {
			out.printf("logs, Redis data and files kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()

	c, err := startCluster(ctx, o, dir, out)
	if err != nil {
		keep = true
		return err
	}
	defer c.stop()
	ids, err := c.postJobs(ctx)
	if err != nil {
		keep = true
		return err
	}
	st := c.chaos(ctx, ids)
	drained := c.drain(ctx, ids)
	r := c.verify(ids, st, drained)
	r.print(out)
	if len(r.failures) > 0 {
		keep = true
		return fmt.Errorf("%d check(s) failed", len(r.failures))
	}
	return nil
}
