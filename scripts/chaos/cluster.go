package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/redis/go-redis/v9"
)

// cluster is everything a run starts: Redis, the API and the workers, and the clients that
// watch them. Only run's goroutine uses it.
type cluster struct {
	o       options
	dir     string // the work folder: logs/, redis/, files/
	out     *printer
	started time.Time

	bin          string
	redis        *devbin.Redis   // with -redis single
	redisCluster *devbin.Cluster // with -redis cluster
	s3           *devbin.S3      // with -storage s3
	files        storage.Store   // where the processes keep files, as the checks read them
	rdb          redis.UniversalClient
	store        *jobs.Store
	insp         *asynq.Inspector
	settings     map[string]string // the environment of every longhaul process
	apiURL       string
	http         *http.Client

	api      *devbin.Longhaul
	workers  []*devbin.Longhaul // the live ones
	procs    []*devbin.Longhaul // every longhaul process ever started
	nWorkers int                // workers started so far, for their names
}

// startCluster builds longhaul if needed and starts Redis, the API and the workers.
func startCluster(ctx context.Context, o options, dir string, out *printer) (*cluster, error) {
	c := &cluster{o: o, dir: dir, out: out, started: time.Now(), http: &http.Client{Timeout: 10 * time.Second}}
	for _, sub := range []string{"logs", "redis", "files"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	var err error
	if c.bin, err = buildLonghaul(ctx, o, dir, out); err != nil {
		return nil, err
	}
	c.settings = longhaulSettings(o, filepath.Join(dir, "files"))
	if err := c.startRedis(ctx); err != nil {
		c.stop()
		return nil, err
	}
	c.store = jobs.NewStore(c.rdb, jobs.Options{Sharded: c.redisCluster != nil})
	c.insp = asynq.NewInspectorFromRedisClient(c.rdb)
	if err := c.openStorage(ctx); err != nil {
		c.stop()
		return nil, err
	}

	if err := c.startAPI(ctx); err != nil {
		c.stop()
		return nil, err
	}
	for range o.workers {
		if _, err := c.startWorker(ctx); err != nil {
			c.stop()
			return nil, err
		}
	}
	out.printf("%s, api %s, workers %s; work folder %s",
		c.redisSummary(), c.apiURL, c.workerPIDs(), dir)
	return c, nil
}

// The bucket of a run with -storage s3, and the folder of it files go under.
const (
	chaosBucket = "longhaul-chaos"
	chaosPrefix = "files"
)

// openStorage opens the storage of the run, starting an S3 server with a bucket for
// -storage s3, and points the settings at it.
func (c *cluster) openStorage(ctx context.Context) error {
	if c.o.storage != storageS3 {
		files, err := storage.NewDir(c.settings["LONGHAUL_STORAGE_DIR"])
		c.files = files
		return err
	}
	var err error
	c.s3, err = devbin.StartS3(ctx, devbin.S3Options{Log: filepath.Join(c.dir, "logs", "s3.log")})
	if err != nil {
		return err
	}
	if err := c.s3.MakeBucket(ctx, chaosBucket); err != nil {
		return err
	}
	delete(c.settings, "LONGHAUL_STORAGE_DIR")
	maps.Copy(c.settings, c.s3.Settings(chaosBucket, chaosPrefix))
	cfg := c.s3.BucketConfig(chaosBucket)
	cfg.Prefix, cfg.ReadOnly = chaosPrefix, true
	c.files, err = storage.NewBucket(ctx, cfg)
	if err != nil {
		return err
	}
	c.out.printf("files in bucket %s of %s", chaosBucket, c.s3.Endpoint())
	return nil
}

// longhaulSettings are the run's settings of every longhaul process but Redis's, which
// startRedis adds.
func longhaulSettings(o options, storage string) map[string]string {
	return devbin.Unguarded(map[string]string{
		"LONGHAUL_STORAGE_DIR":        storage,
		"LONGHAUL_FILE_TIME_MIN":      o.fileTimeMin.String(),
		"LONGHAUL_FILE_TIME_MAX":      o.fileTimeMax.String(),
		"LONGHAUL_FILE_SIZE_MAX":      "64KiB",
		"LONGHAUL_MAX_FILES":          strconv.Itoa(max(o.files, 1000)),
		"LONGHAUL_WORKER_CONCURRENCY": strconv.Itoa(o.workerConcurrency),
		"LONGHAUL_FILE_CONCURRENCY":   strconv.Itoa(o.fileConcurrency),
		"LONGHAUL_SHUTDOWN_TIMEOUT":   o.shutdownTimeout.String(),
		"LONGHAUL_LOG_LEVEL":          "warn",
		"GORACE":                      "halt_on_error=0 exitcode=66",
	})
}

// buildLonghaul returns -bin, or builds ./cmd/longhaul of the module around the working
// directory into dir.
func buildLonghaul(ctx context.Context, o options, dir string, out *printer) (string, error) {
	if o.bin != "" {
		abs, err := filepath.Abs(o.bin)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("-bin: %w", err)
		}
		return abs, nil
	}
	root, err := devbin.ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("%w (or pass -bin)", err)
	}
	bin := filepath.Join(dir, "longhaul")
	var flags []string
	if o.race {
		flags = append(flags, "-race")
	}
	begin := time.Now()
	if err := devbin.Build(ctx, root, bin, flags...); err != nil {
		return "", err
	}
	out.printf("built longhaul in %v", time.Since(begin).Round(100*time.Millisecond))
	return bin, nil
}

// startAPI starts `longhaul api` and waits until it answers /healthz.
func (c *cluster) startAPI(ctx context.Context) error {
	p, err := c.startLonghaul(ctx, "api", "api")
	if err != nil {
		return err
	}
	c.api, c.apiURL = p, p.URL
	return nil
}

// startWorker starts one more `longhaul worker`.
func (c *cluster) startWorker(ctx context.Context) (*devbin.Longhaul, error) {
	c.nWorkers++
	p, err := c.startLonghaul(ctx, fmt.Sprintf("worker-%d", c.nWorkers), "worker")
	if err != nil {
		return nil, err
	}
	c.workers = append(c.workers, p)
	return p, nil
}

func (c *cluster) startLonghaul(ctx context.Context, name, mode string) (*devbin.Longhaul, error) {
	p, err := devbin.StartLonghaul(ctx, devbin.LonghaulSpec{Bin: c.bin, Mode: mode, Name: name,
		Settings: c.settings, Log: filepath.Join(c.dir, "logs", name+".log")})
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

func (c *cluster) workerPIDs() string {
	pids := make([]string, len(c.workers))
	for i, w := range c.workers {
		pids[i] = strconv.Itoa(w.PID())
	}
	return strings.Join(pids, ", ")
}

// stop ends every process the cluster started: longhaul with SIGTERM, all at once (SIGKILL
// after a while), Redis with SIGKILL.
func (c *cluster) stop() {
	for _, p := range c.procs {
		p.Signal(syscall.SIGTERM)
	}
	for _, p := range c.procs {
		p.Stop(c.o.shutdownTimeout + 10*time.Second)
	}
	c.stopRedis()
	if c.s3 != nil {
		c.s3.Kill()
	}
}

// printer writes the run's report, each line stamped with the time since the start.
type printer struct {
	mu    sync.Mutex // orders lines written from more than one goroutine
	w     io.Writer
	start time.Time
}

func newPrinter(w io.Writer) *printer { return &printer{w: w, start: time.Now()} }

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%6.1fs  %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
